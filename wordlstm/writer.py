"""Text in, text out: prompts are segmented like the training corpus, ids become text.

`Writer` holds a loaded model dir and offers the generation modes: continuing a prompt,
whole lines (poems, names) with the "only new lines" filter, and acrostic poems (藏头诗).
Each returns a `Generation` (texts, words made, what happened to the prompt); `write` runs
the mode a `Request` (what `continue-text` asks for) names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .errors import UserError
from .generate import Generator, Streams
from .guards import Guards
from .modeldir import LineInfo, load
from .rerank import Reranker
from .segment import Segmenter
from .stepmodel import PrefixCache
from .textio import normalize_line
from .tokens import is_punctuation, line_hash, prompt_ids, render
from .vectors import EOS
from .verse import rhyme_preference, verse_plan

MAX_BATCH = 64  # streams generated together


@dataclass
class Generation:
    """What one generation mode made: the texts, and what happened to the prompt."""

    texts: list[str]  # continuations (without the prompt), whole lines, or an acrostic's lines
    words: list[int] = field(default_factory=list)  # tokens generated for each stream
    unknown: list[str] = field(default_factory=list)  # prompt words skipped (not in vocabulary)
    split: list[str] = field(default_factory=list)  # prompt words spelled with their characters
    dropped: int = 0  # --novel-only: generated lines dropped as training lines


@dataclass
class Request:
    """What `continue-text` asks for, checked when made; the sampling is a SamplingConfig."""

    prompt: str = ""
    length: int = 100  # words to generate (the most per line with n_lines)
    until: str | None = None  # stop once the text ends with this
    seed: int | None = None
    samples: int = 1  # continuations, made as one batch
    prefix: str = ""  # fed to the model first to set the mood, not printed
    acrostic: str | None = None  # 藏头诗: one line per character
    line_length: int | None = None  # words per acrostic line
    n_lines: int | None = None  # whole lines (line models), each from the prompt
    novel_only: bool = False  # with n_lines: only lines not in the training file
    form: str | None = None  # with n_lines on a poem model: "5x4", "7x8", ... or "free"

    def __post_init__(self):
        if self.length < 1 or self.samples < 1 or (self.n_lines is not None and self.n_lines < 1):
            raise UserError("`length`, `samples` and `n_lines` must be positive")
        if (self.novel_only or self.form) and self.n_lines is None:
            raise UserError("`novel_only` and `form` go with `n_lines` (N whole lines)")
        if self.line_length is not None and self.line_length < 2:
            raise UserError("`line_length` must be at least 2")
        check_seed(self.seed)
        for name, text in (("prompt", self.prompt), ("prefix", self.prefix),
                           ("until", self.until), ("acrostic", self.acrostic)):
            check_text(text, name)

    @property
    def streams(self) -> bool:
        """Whether a terminal can show the text word by word (one plain continuation)."""
        return not self.acrostic and self.n_lines is None and self.samples == 1

    def printable(self, log=lambda msg: None) -> Request:
        """This request with control characters removed from the prompt and prefix (an
        escape sequence must not reach the terminal), noting it."""
        return replace(self, prompt=printable(self.prompt, "the prompt", log),
                       prefix=printable(self.prefix, "--prefix", log))


SEED_MAX = 2**32 - 1  # what every engine's generator takes (numpy's, TensorFlow's, gensim's)


def check_seed(seed) -> None:
    """A seed is a whole number 0..SEED_MAX (numpy raises a traceback on a negative one)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed <= SEED_MAX):
        raise UserError(f"`seed` must be a whole number from 0 to {SEED_MAX}, not {seed!r}")


def check_text(text: str | None, name: str) -> None:
    """Text is real Unicode: a lone surrogate (undecodable bytes in a terminal's argv, or
    JSON's "\ud800") cannot be segmented, printed or encoded."""
    if text is None:
        return
    for i, c in enumerate(text):
        if "\ud800" <= c <= "\udfff":
            raise UserError(f"{name}: character {i + 1} is not text (a lone surrogate, "
                            f"U+{ord(c):04X}: bytes this terminal's encoding could not "
                            "decode); give it as UTF-8")


def printable(text: str, what: str, log=lambda msg: None) -> str:
    """`text` without control characters, noting how many were removed."""
    import unicodedata

    clean = "".join(c for c in text if unicodedata.category(c) != "Cc")
    if clean != text:
        log(f"note: removed {len(text) - len(clean)} control character(s) from {what}")
    return clean


def _after_prompt(prompt: str, result: Generation) -> Generation:
    """A continuation's texts as they are answered: each after its prompt."""
    result.texts = [prompt + t for t in result.texts]
    return result


@dataclass
class Batched:
    """A plain continuation's streams (`Writer.batched`) while a batcher steps them: the
    words each adds as they come, and its Generation once they are done."""

    writer: Writer
    prompt: str
    group: Streams
    result: Generation
    _last: dict[int, int] = field(default_factory=dict)  # each stream's last word

    def new_words(self) -> list[tuple[int, str]]:
        """(stream, the text its word adds) for every stream that chose a word this step."""
        out = []
        for b, ids in enumerate(self.group.out):
            if len(ids) == self.group.steps:  # this stream chose a word now
                out.append((b, self.writer.piece(self._last.get(b), ids[-1])))
                self._last[b] = ids[-1]
        return out

    def finish(self) -> Generation:
        return _after_prompt(self.prompt, self.writer.finish(self.result, self.group.out))


class Writer:
    """A loaded model (modeldir.load) and everything needed to turn prompts into text."""

    def __init__(self, loaded, log=lambda msg: None):
        self.loaded = loaded
        self.model_dir, self.config, self.vectors = loaded.model_dir, loaded.config, loaded.vectors
        self.log = log
        self.segment = Segmenter(loaded.segmenter_config())
        self.eos = self.vectors.index.get(EOS)
        self.gen = Generator(loaded.step, self.vectors.words, loaded.decoder, loaded.window,
                             self.eos, guards=Guards(self.vectors.words, loaded.log_prior,
                                           self.config.training.train_targets),
                             cache=loaded.cache, ngram=loaded.ngram,
                             dynamic_lr=self.config.decoder.dynamic_rate)
        self.unit = self.config.segmenter.unit
        self._rhymes = None
        self.prefixes = PrefixCache(loaded.step)  # next_words: read only what was added

    @classmethod
    def load(cls, model_dir=None, log=lambda msg: None, decode: str | None = None) -> Writer:
        """`decode` overrides the model's decoding ("cosine" or "prior"), for comparisons."""
        return cls(load(model_dir, decode), log)

    def sampling(self, cfg, given=frozenset()):
        """`cfg` with the model's own sampling defaults (config.json "sampling", e.g. a line
        model's: the prose defaults suit names and poems badly; checked when it was loaded)
        for every field not in `given` (what the user set)."""
        own = self.config.sampling
        return replace(cfg, **{k: v for k, v in own.items() if k not in given})

    def words(self, ids) -> list[str]:
        return [self.vectors.words[i] for i in ids]

    def text(self, ids) -> str:
        return render(self.words(ids), self.unit)

    def encode(self, text: str, result: Generation | None = None) -> list[int]:
        """Segment text like the corpus and map it to ids, noting words the model lacks (in
        `result` too, if given)."""
        tokens = self.segment(normalize_line(text)) if text.strip() else []
        ids, unknown, split = prompt_ids(tokens, self.vectors.index)
        if split:
            self.log("note: not in the vocabulary, used their characters instead: " + " ".join(split))
        if unknown:
            self.log("note: not in the vocabulary, skipped: " + " ".join(unknown))
        if result is not None:
            result.unknown += unknown
            result.split += split
        if tokens and not ids:
            raise UserError(f"no word of {text!r} is in the model's vocabulary "
                            f"({len(self.vectors):,} words); try words from the training text")
        return ids

    def write(self, request: Request, cfg, on_word=None, check=None) -> Generation:
        """The generation mode `request` asks for; texts as `continue-text` prints them (a
        continuation after its prompt, an acrostic as one text of lines). `check()`, called
        once a word, may raise to stop it (a server's budget.Budget.check), as in every mode."""
        r = request
        if r.acrostic:
            result = self.acrostic(r.acrostic, cfg, r.seed, prefix=r.prefix,
                                   line_length=r.line_length, check=check)
            result.texts = ["\n".join(result.texts)]
        elif r.n_lines is not None:
            result = self.lines(r.prompt, r.n_lines, cfg, r.seed, prefix=r.prefix,
                                max_words=r.length, novel_only=r.novel_only, form=r.form,
                                check=check)
        else:
            result = _after_prompt(r.prompt, self.continue_text(
                r.prompt, r.length, cfg, r.seed, samples=r.samples, prefix=r.prefix,
                until=r.until, on_word=on_word, check=check))
        return result

    def batchable(self, request: Request, cfg) -> bool:
        """Whether `write` would make `request` as one group of streams stepped word by word
        (a plain continuation carrying its state, in one batch): what `batched` makes."""
        return (not request.acrostic and request.n_lines is None and cfg.context == "carry"
                and not cfg.rerank and request.samples <= MAX_BATCH)

    def batched(self, request: Request, cfg) -> Batched:
        """A batchable request's streams, for a batcher that steps the network for many
        requests at once (wordlstm.batcher): alone in its batch, the text `write` makes."""
        result = Generation([])
        ids, until = self.continuation(request.prompt, request.prefix, request.until, result)
        group = self.gen.group([ids] * request.samples, request.length, cfg, request.seed,
                               stop=until)
        return Batched(self, request.prompt, group, result)

    def piece(self, prev: int | None, token: int) -> str:
        """The text `token` adds after `prev` (a space only between two Latin words, as
        render does)."""
        if prev is None:
            return self.text([token])
        return self.text([prev, token])[len(self.text([prev])):]

    def continue_text(self, prompt: str, length: int, cfg, seed=None, samples: int = 1,
                      prefix: str = "", until: str | None = None, on_word=None,
                      check=None) -> Generation:
        """`samples` continuations of `prompt` (texts without the prompt itself)."""
        result = Generation([])
        ids, stop = self.continuation(prompt, prefix, until, result)
        on_step = None
        if on_word is not None:
            def on_step(step, nxt):
                on_word(self.text(nxt[:1]))
        outs = []
        for k, start in enumerate(range(0, samples, MAX_BATCH)):
            # Streams go in batches of MAX_BATCH, so memory stays bounded for any --samples
            # (the log-probabilities alone are a batch x vocabulary array).
            n = min(MAX_BATCH, samples - start)
            outs += self.generate([ids] * n, length, cfg, on_step=on_step, stop=stop,
                                  seed=seed if k == 0 or seed is None else (seed, k), check=check)
        return self.finish(result, outs)

    def generate(self, prompts: list[list[int]], length: int, cfg, seed=None, on_step=None,
                 stop=None, check=None) -> list[list[int]]:
        """Ids after each prompt: word by word as one batch, or clause by clause
        (`cfg.rerank`: rerank.Reranker, one prompt after another)."""
        if not cfg.rerank:
            return self.gen.generate(prompts, length, cfg, seed=seed, on_step=on_step, stop=stop,
                                     check=check)
        rng = np.random.default_rng(seed)
        reranker = Reranker(self.gen)
        return [reranker.generate(p, length, cfg, seed=int(rng.integers(2**63)),
                                  on_step=on_step, stop=stop, check=check)
                for p in prompts]

    def continuation(self, prompt: str, prefix: str = "", until: str | None = None,
                     result: Generation | None = None):
        """(ids to continue, `stop` rule for `until`) of a continuation: what continue_text
        generates, and what a server's batcher turns into `Streams`."""
        ids = self.encode(prefix, result) + self.encode(prompt, result)
        stop = None
        if until:
            def stop(out):
                return self.text(out[-8:]).endswith(until)
        return ids, stop

    def finish(self, result: Generation, outs: list[list[int]]) -> Generation:
        result.words = [len(o) for o in outs]
        result.texts = [self.text(o) for o in outs]
        return result

    def next_words(self, text: str, k: int = 5, prefix: str = "",
                   check=None) -> tuple[list, Generation]:
        """The model's `k` likeliest next words after `text`, as (word as text, probability),
        from the model's own distribution (no sampling settings): what co-writing offers."""
        result = Generation([])
        ids, _ = self.continuation(text, prefix, None, result)
        y = self.prefixes.read(self.gen.start(ids), check=check)
        logp = self.gen.logprobs(y)[0]
        top = np.argsort(-logp)[:k]
        return [(self.text([int(i)]), float(np.exp(logp[i]))) for i in top], result

    def _require_lines(self, what: str):
        if self.eos is None:
            raise UserError(f"{what} needs a model whose vectors have the </s> token")

    def _verse_parts(self):
        """(body ids, clause-end ids alternating ，。, rhyme classes id -> ids) of the vocabulary."""
        words = self.vectors.words
        body = np.array([i for i, w in enumerate(words) if w != EOS and not is_punctuation(w)])
        info = self.config.lines or LineInfo()
        marks = [m for m in ("，", "。") if m in self.vectors.index]
        if len(marks) < 2:
            marks = [p for p in info.clause_ends if p in self.vectors.index][:2]
        if len(body) == 0 or not marks:
            raise UserError("this model's vocabulary has no punctuation for line ends")
        if self._rhymes is None:
            from .rhyme import rhyme_classes

            groups: dict[str, list[int]] = {}
            for i, c in enumerate(rhyme_classes(words)):
                if c is not None:
                    groups.setdefault(c, []).append(i)
            arrays = {c: np.array(ids) for c, ids in groups.items()}
            self._rhymes = {i: arrays[c] for c, ids in groups.items() for i in ids}
        return body, [self.vectors.index[m] for m in marks], self._rhymes

    def verse_form(self, form: str | None, head_tokens: list[str]) -> tuple[int, int] | None:
        """(clause length, clauses) for --lines: `form` ("5x4", "7x8", "free") or the form the
        model learned from its corpus, matched to the prompt's first clause if it has one."""
        if form == "free":
            return None
        if form is not None:
            import re

            m = re.fullmatch(r"([0-9]{1,3})[xX]([0-9]{1,3})", form)
            if not m:
                raise UserError(f"`form` {form!r}: write it as CLAUSE_LENGTHxCLAUSES, e.g. 5x4, "
                                "or free")
            length, clauses = int(m.group(1)), int(m.group(2))
            # A poem is one line: 16 clauses of 16 characters is far past any regular form.
            if not (1 <= length <= 16 and 1 <= clauses <= 16):
                raise UserError("`form`: 1-16 characters a clause, 1-16 clauses")
            return length, clauses
        forms = (self.config.lines or LineInfo()).forms
        if not forms:
            return None
        first = next((i for i, t in enumerate(head_tokens) if is_punctuation(t)), None)
        if first is not None:
            matching = [f for f in forms if f.length == first]
            return (matching[0].length, matching[0].clauses) if matching else None
        return forms[0].length, forms[0].clauses

    def lines(self, prompt: str, n: int, cfg, seed=None, prefix: str = "",
              max_words: int = Request.length, novel_only: bool = False, max_rounds: int = 20,
              form: str | None = None, check=None) -> Generation:
        """N distinct whole lines starting with `prompt` (made as batches), optionally only
        lines that are not in the training file (`dropped` counts the training lines left
        out). A poem model writes its corpus's regular form (or `form`), with
        rhyming even clauses where the model allows."""
        self._require_lines("--lines")
        known = self.loaded.line_hashes() if novel_only else None
        result = Generation([])
        start = self.encode(prefix, result)
        head = self.encode(prompt, result)
        head_tokens = self.segment(normalize_line(prompt)) if prompt.strip() else []
        verse = self.verse_form(form, head_tokens)
        constrain = prefer = None
        if verse is not None:
            if self.unit == "char":  # keep the prompt's positions: an unknown character
                head = [self.vectors.index.get(t, self.gen.unk) for t in head_tokens]  # is UNK
            body, ends, rhymes = self._verse_parts()
            constrain, total = verse_plan(verse[0], verse[1], body, ends, self.eos,
                                          offset=len(head))
            if total < 1:
                raise UserError(f"the prompt is longer than a {verse[0]}x{verse[1]} poem")
            prefer = rhyme_preference(verse[0], rhymes, head, offset=len(head))
            max_words = total + 1
        cfg = replace(cfg, paragraph_bias=0.0, punct_bias=0.0)  # lines end where the model says
        rng = np.random.default_rng(seed)
        kept: list[str] = []
        dropped = 0
        for _ in range(max_rounds):
            outs = self.gen.generate([start + [self.eos] + head] * (n - len(kept)), max_words, cfg,
                                     seed=int(rng.integers(2**31)),
                                     stop=lambda out: out[-1] == self.eos,
                                     constrain=constrain, prefer=prefer, check=check)
            for out in outs:
                result.words.append(len(out))
                body_ids = out[:-1] if out and out[-1] == self.eos else out
                tokens = head_tokens + self.words(body_ids)
                if known is not None:
                    h = np.uint64(line_hash(tokens))
                    i = np.searchsorted(known, h)
                    if i < len(known) and known[i] == h:
                        dropped += 1
                        continue
                line = prompt + self.text(body_ids)
                if line not in kept and len(kept) < n:
                    kept.append(line)
            if len(kept) >= n:
                break
        if len(kept) < n:
            self.log(f"note: only {len(kept)} of {n} lines were new after {max_rounds} rounds")
        result.texts, result.dropped = kept, dropped
        return result

    def acrostic(self, heads: str, cfg, seed=None, prefix: str = "",
                 line_length: int | None = None, check=None) -> Generation:
        """藏头诗: one clause per character of `heads`, each starting with it, of the corpus's
        clause length, closed by ，and 。 in turn, even clauses rhyming where the model allows
        (texts: the clauses, one a line)."""
        head_ids = []
        for ch in heads.strip():
            # A character model has the character itself; a word model heads the line with
            # any word that begins with it.
            starts = [i for i, w in enumerate(self.vectors.words)
                      if w.startswith(ch) and not is_punctuation(w)]
            if not starts:
                raise UserError(f"{ch!r} is not in the model's vocabulary; it cannot head a line")
            head_ids.append(np.array(starts))
        if not head_ids:
            raise UserError("`acrostic` needs at least one character")
        length = line_length or self.config.acrostic_length
        if length < 2:
            raise UserError("`line_length` must be at least 2")
        body, ends, rhymes = self._verse_parts()
        cfg = replace(cfg, paragraph_bias=0.0, punct_bias=0.0)
        constrain, total = verse_plan(length, len(head_ids), body, ends, None, heads=head_ids)
        prefer = rhyme_preference(length, rhymes, [])
        result = Generation([])
        start = self.encode(prefix, result) + ([self.eos] if self.eos is not None else [])
        out = self.gen.generate([start], total, cfg, seed=seed, constrain=constrain,
                                prefer=prefer, check=check)[0]
        result.words = [len(out)]
        per_line = length + 1
        result.texts = [self.text(out[i:i + per_line]) for i in range(0, len(out), per_line)]
        return result
