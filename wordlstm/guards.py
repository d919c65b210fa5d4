"""What a continuation may write, whatever the model's probabilities say.

Readers flagged two kinds of junk in the model's text, both learned from the downloaded file
rather than from the novel: letters of other scripts ("贾е", "l起小人": encoding debris in the
download) and chapter headings made up inside a continuation ("且听下回分解。⏎第八十二回王凤姐
宝玉点九来积…"). `Guards` rules them out at the cause, per stream:

- **rare tokens**: a word or character seen fewer than `min_count` times in training is not
  written (junk characters occur once or twice; the novel's own words, which the vocabulary
  kept, far more often), unless the prompt has it;
- **other scripts**: a token with a letter of a script other than the vocabulary's main one
  (Han for a Chinese novel, Latin for dinosaur names) is not written unless the prompt has a
  letter of that script;
- **chapter headings**: a continuation does not start a paragraph with 第 (in the novels a
  paragraph that starts so is a chapter heading, 第N回 + a couplet: 123 of 123 in 红楼梦), and
  a paragraph that starts 第 + numerals (a prompt's) is not completed by 回.
"""

from __future__ import annotations

import unicodedata

import numpy as np

NUMERALS = set("一二三四五六七八九十百千零〇两廿卅")


def script(c: str) -> str | None:
    """The script of a letter ("han", "latin", "cyrillic", ...), None for anything else."""
    if not unicodedata.category(c).startswith("L"):
        return None
    name = unicodedata.name(c, "")
    if name.startswith("CJK") or "IDEOGRAPH" in name:
        return "han"
    if "LATIN" in name:  # also FULLWIDTH LATIN
        return "latin"
    return name.split(" ")[0].lower() or None


def token_scripts(token: str, eos: str = "</s>") -> set[str]:
    return set() if token == eos else {s for s in map(script, token) if s is not None}


def training_counts(log_prior: np.ndarray | None, targets: int | None) -> np.ndarray | None:
    """Each word's count among the `targets` training targets, from the add-one smoothed log
    frequencies that ship as prior.npy: log((count + 1) / (targets + vocabulary))."""
    if log_prior is None or len(log_prior) == 0 or not targets:
        return None
    lp = np.asarray(log_prior, np.float64)
    return np.rint(np.exp(lp) * (targets + len(lp)) - 1.0)


OPEN, CLOSE = ("“", "「"), ("”", "」")


class Guards:
    """The ids a continuation may not write (`blocked(prompt)`), and the chapter-heading rule
    (`heading_ban(tokens)`), for one vocabulary."""

    def __init__(self, words: list[str], log_prior: np.ndarray | None = None,
                 targets: int | None = None, eos: str = "</s>"):
        self.words = words
        scripts = [token_scripts(w, eos) for w in words]
        tally: dict[str, int] = {}
        for s in scripts:
            for name in s:
                tally[name] = tally.get(name, 0) + 1
        self.main = max(tally, key=lambda name: tally[name]) if tally else None
        self.foreign = {i: s - {self.main} for i, s in enumerate(scripts) if s - {self.main}}
        self.counts = training_counts(log_prior, targets)
        self._rare: dict[int, set[int]] = {}
        self.di = [i for i, w in enumerate(words) if w == "第"]
        self.di_words = np.array([i for i, w in enumerate(words) if w.startswith("第")], np.int64)
        self.numeral = {i for i, w in enumerate(words) if w and set(w) <= NUMERALS}
        self.hui = np.array([i for i, w in enumerate(words) if w.startswith("回")], np.int64)
        self.eos = {i for i, w in enumerate(words) if w == eos}
        # Quote marks, as (opened - closed) per id: a paragraph does not end inside a quote.
        self.quote = {i: sum(w.count(o) for o in OPEN) - sum(w.count(c) for c in CLOSE)
                      for i, w in enumerate(words) if any(q in w for q in OPEN + CLOSE)}
        self.eos_ids = np.array(sorted(self.eos), np.int64)
        self.closers = np.array([i for i, d in self.quote.items() if d < 0], np.int64)
        self.openers = np.array([i for i, d in self.quote.items() if d > 0], np.int64)
        self.inside = np.concatenate([self.eos_ids, self.openers])

    def rare(self, min_count: int) -> set[int]:
        """Ids seen fewer than `min_count` times in training (none if the counts are unknown)."""
        if self.counts is None or min_count <= 0:
            return set()
        if min_count not in self._rare:
            self._rare[min_count] = {int(i) for i in np.nonzero(self.counts < min_count)[0]
                                     if int(i) not in self.eos}
        return self._rare[min_count]

    def blocked(self, prompt_ids, min_count: int = 3, scripts: bool = True) -> np.ndarray:
        """Ids not to write after this prompt: rare ids and other-script ids the prompt lacks."""
        prompt = {int(i) for i in prompt_ids}
        seen_scripts = set().union(*(token_scripts(self.words[i]) for i in prompt
                                     if i < len(self.words))) if prompt else set()
        out = self.rare(min_count) - prompt
        if scripts:
            out |= {i for i, s in self.foreign.items() if not s <= seen_scripts and i not in prompt}
        return np.array(sorted(out), np.int64)

    def quote_ban(self, tokens: list[int], lookback: int = 2048) -> np.ndarray | None:
        """Ids that would break the current paragraph's quotes: its end or a second opening
        mark while a quote is open (97% of 红楼梦's paragraphs close theirs; quotes inside
        quotes are ‘’), a closing mark while none is."""
        if not self.quote:
            return None
        depth = 0
        for t in reversed(tokens[-lookback:]):
            if t in self.eos:
                break
            depth += self.quote.get(t, 0)
        if depth > 0:
            return self.inside
        if depth == 0:
            return self.closers
        return None

    def heading_ban(self, tokens: list[int]) -> np.ndarray | None:
        """Ids that would begin or complete a chapter heading after `tokens`: words starting
        with 第 at a paragraph start, 回 after a paragraph-initial 第 + numerals."""
        if tokens and tokens[-1] in self.eos and len(self.di_words):
            return self.di_words
        if not self.di or not len(self.hui):
            return None
        k = len(tokens) - 1
        while k >= 0 and tokens[k] in self.numeral:
            k -= 1
        if k == len(tokens) - 1 or k < 0 or tokens[k] not in self.di:
            return None
        if k > 0 and tokens[k - 1] not in self.eos:
            return None
        return self.hui
