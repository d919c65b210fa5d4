"""Sampling settings and the choice of one word from one row of log-probabilities.

`SamplingConfig` holds every setting (validated when made; the CLI's and the API's defaults
come from it); `choose` samples from the decoder's distribution (at temperature 1.0 exactly
it), within top-k, the nucleus (top-p), min-p and typical-p, with the DRY rule
(dry.History) and the optional n-gram block and repetition penalty against loops; `preferred`
narrows a choice to preferred words (a rhyme) when the model finds them likely enough. The loop
that calls it is generate.Streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import UserError
from .numeric import logsumexp

if TYPE_CHECKING:
    from .dry import History

MAX_NATS = 1000.0  # biases and penalties beyond this are no softer than a ban, and overflow
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0  # below, logp / temperature overflows (greedy
# is "none"); above, every word is as likely as any other
MAX_DRY_BASE = 10.0  # DRY's growth a repeated token: 10**64 at its longest match, still finite


@dataclass
class SamplingConfig:
    """How the next word is chosen from the model's log-probabilities."""

    greedy: bool = False  # always the most likely word (no sampling)
    # The defaults are what the reader panel scored best (bench/RESULTS.md, "Readers"):
    # temperature 0.6 with min-p 0.05 read 0.4 points better than the model's own distribution
    # (1.0), and the stronger DRY below keeps it from looping over a long text.
    temperature: float = 0.6  # 1.0 samples the model's own distribution; lower is safer
    top_k: int = 0  # sample among the k likeliest words only (0: all)
    top_p: float = 0.95  # nucleus: the likeliest words holding this much probability
    min_p: float = 0.05  # min-p: only words at least this share of the likeliest one's
    # probability (after temperature; 0: off)
    typical_p: float = 1.0  # locally typical sampling (Meister et al. 2023): the words whose
    # surprisal is closest to the distribution's entropy, holding this much mass (1: off)
    dry_multiplier: float = 4.0  # DRY: penalty in nats on a word that would extend a repeat
    dry_base: float = 1.75  # ... growing by this factor for every further repeated token
    dry_allowed: int = 1  # ... repeats up to this many tokens are free; at temperature 0.6
    # the issue-10 setting (0.8 nats, 2 free) let 600 characters loop (repeated 4-grams 18%)
    dry_range: int = 1024  # ... looking this many tokens back (constant work per word)
    dry_breakers: str = ""  # ... and no repeat runs across these marks (always: a paragraph
    # end). DRY's own defaults, the colon and quote marks ("：“”"), let "道：“" open speech
    # freely, but alone they let dialogue loop (bench/writing.py: repeated 4-grams 5.5%,
    # band 3.2%); readers scored neither setting higher (round 7), so off
    paragraph_bias: float = 0.0  # nats added to a paragraph end's log-probability, and
    punct_bias: float = -1.0  # ... to each punctuation mark's. Left to itself the model
    # drifts towards punctuation in its own text (bench/writing.py: 17-18% against the
    # novel's 14.5%; at temperature 1 also to paragraph ends, which took -1.5). Prose only:
    # lines and poems end, and place their marks, where the model or the verse form says.
    no_repeat_ngram: int = 0  # never repeat an n-gram of this size (0: off)
    repetition_penalty: float = 0.0  # nats off every word used in the last `penalty_window`
    penalty_window: int = 20
    context: str = "carry"  # carry LSTM state word to word (as generation always ran), or
    # "window": re-read the last `window` words from a zero state for every word
    min_count: int = 3  # never write a word seen fewer times in training (encoding debris),
    # unless the prompt has it (guards.Guards; 0: off)
    other_scripts: bool = False  # letters of another script than the vocabulary's main one
    # (Latin or Cyrillic in a Chinese novel) only where the prompt has that script
    headings: bool = False  # let a continuation write a chapter heading (第N回)
    quotes: bool = True  # keep quotes whole: no paragraph end or second opening mark
    # inside an open quote, no closing mark without one (guards.Guards.quote_ban). Readers
    # scored the same (round 8: the same 150-character texts); over 600 characters it keeps
    # paragraph breaks, punctuation and quote faults inside the novel's bands (bench/writing.py)
    rerank: int = 0  # sample this many candidates for each next clause and keep the one the
    # model scores best (mean log-probability a word); 0: word by word (generate.Reranker)
    clause_words: int = 24  # a clause candidate ends at a clause mark or after this many words
    rerank_pmi: float = 0.0  # ... scored by log p(w | text) - this x log p(w): against bland,
    # generic clauses ("我也不知道"), the anti-language-model score of Li et al. (2016)
    cache: bool = False  # mix in the model's continuous cache of the text's own recent words,
    # if it has one fitted (cache.NeuralCache; config.json decoder.cache). Off: readers
    # scored text written with it lower (it pulls the prompt's words back in: "我宝玉听了"),
    # though it lowers held-out bits/char (evaluate uses it)
    ngram: bool = False  # mix in the model's word n-gram of its training text, if it has one
    # (ngram.WordNgram; config.json decoder.ngram), at its fitted weight or `ngram_weight`.
    # Off: readers scored text written with it lower (round 8: 1.72 against 1.99), though it
    # lowers held-out bits/char (evaluate uses it)
    ngram_weight: float = -1.0  # the n-gram's share of the mixture instead (-1: the fitted one)
    adapt: bool = False  # adapt the head to the prompt first (dynamic evaluation, if the model
    # has a fitted learning rate: config.json decoder.dynamic_lr); never to its own words

    def __post_init__(self):
        """Errors name the fields in backticks (`top_p`): the CLI says them as its flags
        (--top-p), the server as its JSON fields."""
        import math

        if not (math.isfinite(self.temperature) and MIN_TEMPERATURE <= self.temperature <= MAX_TEMPERATURE):
            raise UserError(f"`temperature` must be a number from {MIN_TEMPERATURE:g} to "
                            f"{MAX_TEMPERATURE:g} (for none, `greedy`)")
        if not (0 < self.top_p <= 1):
            raise UserError("`top_p` must be in (0, 1]")
        if not (0 <= self.min_p < 1):
            raise UserError("`min_p` must be in [0, 1)")
        if not (0 < self.typical_p <= 1):
            raise UserError("`typical_p` must be in (0, 1]")
        if self.min_count < 0:
            raise UserError("`min_count` must not be negative")
        if not (0 <= self.rerank <= 64) or not (1 <= self.clause_words <= 256):
            raise UserError("`rerank` must be in 0-64 candidates and `clause_words` in 1-256")
        if not (math.isfinite(self.rerank_pmi) and 0 <= self.rerank_pmi <= 1):
            raise UserError("`rerank_pmi` must be in [0, 1]")
        if self.top_k < 0 or self.no_repeat_ngram < 0 or self.dry_allowed < 0 \
                or self.dry_range < 1 or self.penalty_window < 1:
            raise UserError("`top_k`, `no_repeat_ngram` and `dry_allowed` must not be negative, "
                            "`dry_range` and `penalty_window` at least 1")
        if not all(math.isfinite(b) and abs(b) <= MAX_NATS
                   for b in (self.paragraph_bias, self.punct_bias)):
            raise UserError(f"`paragraph_bias` and `punct_bias` must be numbers within "
                            f"±{MAX_NATS:g} nats")
        for name, hi in (("dry_multiplier", MAX_NATS), ("dry_base", MAX_DRY_BASE),
                         ("repetition_penalty", MAX_NATS)):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 <= v <= hi):
                raise UserError(f"`{name}` must be a number from 0 to {hi:g}")
        if not (self.ngram_weight == -1.0 or 0 <= self.ngram_weight < 1):
            raise UserError("`ngram_weight` must be in [0, 1) (or -1: the model's fitted weight)")
        if self.context not in ("carry", "window"):
            raise UserError(f"`context` {self.context!r}: choose window or carry")


def _banned_by_ngram(history: list[int], n: int, lookback: int = 1024) -> set[int]:
    """Words that would complete an n-gram already present in the recent history."""
    if n <= 0 or len(history) < n - 1:
        return set()
    if n == 1:
        return set(history[-lookback:])
    h = history[-lookback:]
    prefix = tuple(h[len(h) - n + 1:])
    banned = set()
    for i in range(len(h) - n + 1):
        if tuple(h[i:i + n - 1]) == prefix:
            banned.add(h[i + n - 1])
    return banned


def choose(logp: np.ndarray, history: History, cfg: SamplingConfig, rng,
           allowed: np.ndarray | None = None, banned: np.ndarray | None = None) -> int:
    """Pick one word id from one row of log-probabilities, only among `allowed` ids if given,
    never a `banned` one (guards.Guards) unless nothing else is allowed.

    Loop control (DRY, and the optional n-gram block and repetition penalty) gives way when it
    would rule out every allowed word.
    """
    s = logp.astype(np.float64)
    if allowed is not None:
        s = np.full_like(s, -np.inf)
        s[allowed] = logp[allowed]
    if banned is not None and len(banned):
        kept = s.copy()
        kept[banned] = -np.inf
        if np.isfinite(kept).any():
            s = kept
    fallback = s.copy()
    for word, penalty in history.dry(cfg).items():
        s[word] -= penalty
    tokens = history.tokens
    if cfg.repetition_penalty and tokens:
        s[np.array(tokens[-cfg.penalty_window:])] -= cfg.repetition_penalty
    repeats = _banned_by_ngram(tokens, cfg.no_repeat_ngram)
    if repeats:
        s[np.array(sorted(repeats))] = -np.inf
    if not np.isfinite(s).any():
        s = fallback
    if cfg.min_p > 0:
        s = np.where(s >= s.max() + np.log(cfg.min_p) * cfg.temperature, s, -np.inf)
    if cfg.typical_p < 1 and not cfg.greedy:
        s = _typical(s, cfg.temperature, cfg.typical_p)
    if cfg.greedy:
        return int(np.argmax(s))
    finite = int(np.isfinite(s).sum())
    k = min(cfg.top_k if cfg.top_k > 0 else finite, finite)
    # The nucleus rarely needs more than a few hundred words: sort those, fall back to all.
    m = min(k, 512)
    while True:
        top = np.argpartition(-s, m - 1)[:m] if m < len(s) else np.arange(len(s))
        top = top[np.argsort(-s[top])][:k]
        z = (s[top] - s[top[0]]) / cfg.temperature
        p = np.exp(z)
        total = np.exp((s[np.isfinite(s)] - s[top[0]]) / cfg.temperature).sum()
        covered = p.sum() / total
        if covered >= cfg.top_p or m >= k:
            break
        m = min(k, m * 8)
    p /= total
    if cfg.top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(p), cfg.top_p)) + 1
        top, p = top[:keep], p[:keep]
    return int(top[rng.choice(len(top), p=p / p.sum())])


def _typical(s: np.ndarray, temperature: float, mass: float) -> np.ndarray:
    """`s` with -inf for all but the locally typical words: sorted by how far their surprisal
    is from the entropy, the first ones holding `mass` of the probability."""
    z = s / temperature
    finite = np.isfinite(z)
    z = z - z[finite].max()
    p = np.where(finite, np.exp(z), 0.0)
    p /= p.sum()
    logp = np.where(finite, np.log(np.maximum(p, 1e-300)), -np.inf)
    entropy = -(p[finite] * logp[finite]).sum()
    order = np.argsort(np.where(finite, np.abs(-logp - entropy), np.inf))
    keep = order[:int(np.searchsorted(np.cumsum(p[order]), mass)) + 1]
    out = np.full_like(s, -np.inf)
    out[keep] = s[keep]
    return out



PREFER_SHARE = 0.05  # a preference applies when the model gives it this share of the mass


def preferred(logp: np.ndarray, allowed, wanted):
    """`wanted` (within `allowed`) if the model finds it likely enough, else `allowed`: a
    preference must not force a word the model all but rules out."""
    if wanted is None or len(wanted) == 0:
        return allowed
    if allowed is not None:
        wanted = np.intersect1d(wanted, allowed)
        if len(wanted) == 0:
            return allowed
    pool = logp if allowed is None else logp[allowed]
    share = np.exp(float(logsumexp(logp[wanted])) - float(logsumexp(pool)))
    return wanted if share >= PREFER_SHARE else allowed
