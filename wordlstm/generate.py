"""Sampling: choosing each next word from the decoder's log-probabilities, word by word.

`Generator` runs the numpy step model (stepmodel.StepModel) over a batch of prompts and
asks its decoder (decoding.make_decoder) for log-probabilities at every step. `carry` (the
default) keeps (h, c) from word to word, one step a word; `window` re-reads the last `window`
words from a zero state for every word. `choose` samples at temperature 1.0 from exactly the
decoder's distribution, within the nucleus (top-p), with the DRY rule against loops; verse
plans constrain which words may come where (regular poems, acrostics) and prefer rhymes.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .stepmodel import StepModel
from .tokens import is_punctuation


@dataclass
class SamplingConfig:
    """How the next word is chosen from the model's log-probabilities."""

    greedy: bool = False  # always the most likely word (no sampling)
    temperature: float = 1.0  # 1.0 samples the model's own distribution; lower is safer
    top_k: int = 0  # sample among the k likeliest words only (0: all)
    top_p: float = 0.95  # nucleus: the likeliest words holding this much probability
    dry_multiplier: float = 0.8  # DRY: penalty in nats on a word that would extend a repeat
    dry_base: float = 1.75  # ... growing by this factor for every further repeated token
    dry_allowed: int = 2  # ... repeats up to this many tokens are free (宝玉 道 is text)
    dry_range: int = 1024  # ... looking this many tokens back (constant work per word)
    paragraph_bias: float = -1.5  # nats added to a paragraph end's log-probability, and
    punct_bias: float = -1.0  # ... to each punctuation mark's. Left to itself the model
    # drifts towards both in its own text (bench/writing.py: 5 breaks per 1,000 characters
    # and 17-18% punctuation, against the novel's 1.6 and 14.5%). Prose only: lines and poems
    # end, and place their marks, where the model or the verse form says.
    no_repeat_ngram: int = 0  # never repeat an n-gram of this size (0: off)
    repetition_penalty: float = 0.0  # nats off every word used in the last `penalty_window`
    penalty_window: int = 20
    context: str = "carry"  # carry LSTM state word to word (as generation always ran), or
    # "window": re-read the last `window` words from a zero state for every word

    def __post_init__(self):
        import math

        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise UserError("temperature must be a positive number (use greedy for none)")
        if not (0 < self.top_p <= 1):
            raise UserError("top-p must be in (0, 1]")
        if self.top_k < 0 or self.no_repeat_ngram < 0 or self.dry_allowed < 0 \
                or self.dry_range < 1 or self.penalty_window < 1:
            raise UserError("top-k, no-repeat-ngram and the DRY settings must not be negative")
        if not (math.isfinite(self.paragraph_bias) and math.isfinite(self.punct_bias)):
            raise UserError("paragraph-bias and punct-bias must be numbers")
        for name in ("dry_multiplier", "dry_base", "repetition_penalty"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise UserError(f"{name.replace('_', '-')} must be a number >= 0")
        if self.context not in ("carry", "window"):
            raise UserError(f"unknown context mode {self.context!r}; choose window or carry")


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


class History:
    """One stream's tokens, with an index of where each token occurred, so the DRY rule looks
    only at earlier occurrences of the last token within `dry_range` (constant work a word)."""

    def __init__(self, tokens, breakers=frozenset()):
        self.tokens: list[int] = []
        self.where: dict[int, list[int]] = {}
        self.breakers = breakers
        for t in tokens:
            self.append(t)

    def append(self, token: int) -> None:
        self.where.setdefault(token, []).append(len(self.tokens))
        self.tokens.append(token)

    def dry(self, cfg: SamplingConfig, max_match: int = 64) -> dict[int, float]:
        """DRY ("don't repeat yourself"): for each word that would extend a token sequence
        already seen, a penalty growing with the length of that repeat. Unlike a penalty on
        recent words, it leaves a word free unless it continues a repeat, so it cannot tip
        probability onto punctuation; punctuation is penalised by the same rule."""
        h, n = self.tokens, len(self.tokens)
        if not cfg.dry_multiplier or n < 2:
            return {}
        last = h[-1]
        if last in self.breakers:
            return {}
        penalties: dict[int, float] = {}
        positions = self.where.get(last, ())
        lo = n - cfg.dry_range
        for j in reversed(positions):
            if j < lo:
                break
            if j >= n - 1:
                continue
            length = 1
            while (length < max_match and j - length >= 0 and j - length > lo
                   and h[j - length] == h[n - 1 - length] and h[j - length] not in self.breakers):
                length += 1
            if length >= cfg.dry_allowed:
                nxt = h[j + 1]
                p = cfg.dry_multiplier * cfg.dry_base ** (length - cfg.dry_allowed)
                if p > penalties.get(nxt, 0.0):
                    penalties[nxt] = p
        return penalties


def choose(logp: np.ndarray, history: History, cfg: SamplingConfig, rng,
           allowed: np.ndarray | None = None) -> int:
    """Pick one word id from one row of log-probabilities, only among `allowed` ids if given.

    Loop control (DRY, and the optional n-gram block and repetition penalty) gives way when it
    would rule out every allowed word.
    """
    s = logp.astype(np.float64)
    if allowed is not None:
        s = np.full_like(s, -np.inf)
        s[allowed] = logp[allowed]
    fallback = s.copy()
    for word, penalty in history.dry(cfg).items():
        s[word] -= penalty
    tokens = history.tokens
    if cfg.repetition_penalty and tokens:
        s[np.array(tokens[-cfg.penalty_window:])] -= cfg.repetition_penalty
    banned = _banned_by_ngram(tokens, cfg.no_repeat_ngram)
    if banned:
        s[np.array(sorted(banned))] = -np.inf
    if not np.isfinite(s).any():
        s = fallback
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


class Generator:
    """Continue prompts word by word with a StepModel and a decoder."""

    def __init__(self, step_model: StepModel, words: list[str], decoder, window: int,
                 eos_id: int | None = None):
        self.model = step_model
        self.words = words
        self.window = window
        self.eos_id = eos_id
        self.unk = len(words)
        self.decoder = decoder
        self.pad = eos_id if eos_id is not None else self.unk
        # A repeat does not run on across a paragraph end (DRY's sequence breakers).
        self.breakers = frozenset() if eos_id is None else frozenset({eos_id})
        self.punct_ids = np.array([i for i, w in enumerate(words) if is_punctuation(w)], np.int64)

    def start(self, prompt: list[int]) -> list[int]:
        """What the network reads for `prompt`: every training paragraph starts after a
        single </s>, so does every prompt."""
        return list(prompt) if prompt[:1] == [self.pad] else [self.pad] + list(prompt)

    def group(self, prompts: list[list[int]], length: int, cfg: SamplingConfig,
              seed: int | None = None, stop=None, constrain=None, prefer=None) -> Group:
        """The streams of `prompts`, to be generated together (see Group)."""
        return Group(self, prompts, length, cfg, seed, stop, constrain, prefer)

    def generate(self, prompts: list[list[int]], length: int, cfg: SamplingConfig,
                 seed: int | None = None, on_step=None, stop=None, constrain=None,
                 prefer=None) -> list[list[int]]:
        """Generate up to `length` ids after each prompt, all prompts as one batch.

        `on_step(i, ids)` sees each step's choices; `stop(out)` ends a stream early;
        `constrain(b, out)` may return the ids allowed next in stream b (None: any);
        `prefer(b, out)` may return ids to choose among when the model gives them at least
        PREFER_SHARE of the allowed probability (a rhyme, where the model allows one).
        """
        group = self.group(prompts, length, cfg, seed, stop, constrain, prefer)
        state = None
        if cfg.context == "carry":
            y, state = self.model.run(group.prompt_matrix(), check=check_time_limit)
        while not group.finished:
            check_time_limit()
            if cfg.context == "window":
                y, _ = self.model.run(group.windows())
            nxt = group.choose(self.decoder.logprobs(y))
            if on_step is not None:
                on_step(group.steps - 1, nxt)
            if group.finished:
                break
            if cfg.context == "carry":
                y, state = self.model.step(nxt, state)
        return group.out


class Group:
    """Streams generated together with one random generator: what `Generator.generate` runs
    and what a server batches with other requests' groups (wordlstm.serve). The caller runs
    the network; `choose` takes the decoder's log-probabilities for the group's rows and
    returns the ids to feed next."""

    def __init__(self, gen: Generator, prompts, length, cfg, seed=None, stop=None,
                 constrain=None, prefer=None):
        self.gen, self.length, self.cfg = gen, length, cfg
        self.stop, self.constrain, self.prefer = stop, constrain, prefer
        self.rng = np.random.default_rng(seed)
        self.ctx = [gen.start(p) for p in prompts]
        self.history = [History(p, gen.breakers) for p in prompts]
        self.out: list[list[int]] = [[] for _ in prompts]
        self.done = [False] * len(prompts)
        self.steps = 0

    def __len__(self) -> int:
        return len(self.out)

    @property
    def finished(self) -> bool:
        return self.steps >= self.length or all(self.done)

    def prompt_matrix(self) -> np.ndarray:
        """The prompts left-padded with </s>, so that all streams end them at the same step."""
        longest = max(len(c) for c in self.ctx)
        return np.array([[self.gen.pad] * (longest - len(c)) + c for c in self.ctx], np.int64)

    def windows(self) -> np.ndarray:
        """The last `window` tokens of each stream (context "window")."""
        w = self.gen.window
        return np.array([([self.gen.pad] * w + c)[-w:] for c in self.ctx], dtype=np.int64)

    def choose(self, logp: np.ndarray) -> np.ndarray:
        """One step: the next id of every stream from its row of log-probabilities (a stream
        that has stopped still draws, so a seed gives the same text in any batch)."""
        gen, cfg = self.gen, self.cfg
        if cfg.paragraph_bias and gen.eos_id is not None:
            logp[:, gen.eos_id] += cfg.paragraph_bias
        if cfg.punct_bias and len(gen.punct_ids):
            logp[:, gen.punct_ids] += cfg.punct_bias
        nxt = np.empty(len(self.out), dtype=np.int64)
        for b, out in enumerate(self.out):
            allowed = self.constrain(b, out) if self.constrain is not None else None
            if self.prefer is not None:
                allowed = _preferred(logp[b], allowed, self.prefer(b, out))
            nxt[b] = choose(logp[b], self.history[b], cfg, self.rng, allowed)
            if not self.done[b]:
                out.append(int(nxt[b]))
                self.history[b].append(int(nxt[b]))
                if cfg.context == "window":
                    self.ctx[b].append(int(nxt[b]))
                if self.stop is not None and self.stop(out):
                    self.done[b] = True
        self.steps += 1
        return nxt


class Stopped(UserError):
    """A generation stopped from outside: its time ran out, or its request went away."""


class TimeLimitExceeded(Stopped):
    """A generation ran past its time limit (a server's, per request)."""

    def __init__(self, seconds: float):
        super().__init__(f"stopped at the time limit ({seconds:g} s a request); ask for fewer "
                         "words or samples, or try again when the server is less busy")
        self.seconds = seconds


class Cancelled(Stopped):
    """The request went away (its client disconnected) before it finished."""


class Budget:
    """A deadline and a cancel flag for one request's generation, set by whoever serves it."""

    def __init__(self, seconds: float | None = None):
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.cancelled = False  # set from any thread

    def check(self, now: float | None = None) -> None:
        if self.cancelled:
            raise Cancelled("cancelled")
        if self.deadline is not None and (now or time.monotonic()) > self.deadline:
            raise TimeLimitExceeded(self.seconds)


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("wordlstm_budget",
                                                                        default=None)


@contextlib.contextmanager
def budget(b: Budget | None):
    """Every generation in this context (this thread, or a task that copied it) checks `b`
    once a word and stops with its exception."""
    token = _BUDGET.set(b)
    try:
        yield b
    finally:
        _BUDGET.reset(token)


def check_time_limit() -> None:
    b = _BUDGET.get()
    if b is not None:
        b.check()


PREFER_SHARE = 0.05  # a preference applies when the model gives it this share of the mass


def _preferred(logp: np.ndarray, allowed, preferred):
    """`preferred` (within `allowed`) if the model finds it likely enough, else `allowed`."""
    if preferred is None or len(preferred) == 0:
        return allowed
    if allowed is not None:
        preferred = np.intersect1d(preferred, allowed)
        if len(preferred) == 0:
            return allowed
    pool = logp if allowed is None else logp[allowed]
    lse = lambda z: float(z.max() + np.log(np.exp(z - z.max()).sum()))
    share = np.exp(lse(logp[preferred]) - lse(pool))
    return preferred if share >= PREFER_SHARE else allowed


def verse_plan(clause_length: int, clauses: int, body: np.ndarray, ends: list[int],
               eos: int | None, offset: int = 0, heads: list[np.ndarray] | None = None):
    """A `constrain` function for regular verse: `clauses` clauses of `clause_length`
    characters, each closed by `ends` in turn (，then 。), then the line end.

    `offset` tokens of the poem are already written (a first line given as the prompt);
    `heads[i]`, if given, holds the ids that may start clause i (an acrostic, 藏头诗).
    """
    per_clause = clause_length + 1
    total = per_clause * clauses

    def constrain(b, out):
        pos = offset + len(out)
        if pos >= total:
            return np.array([eos]) if eos is not None else None
        k, j = divmod(pos, per_clause)
        if j == clause_length:
            return np.array([ends[k % len(ends)]])
        if j == 0 and heads is not None and k < len(heads):
            return heads[k]
        return body

    return constrain, total - offset


def rhyme_preference(clause_length: int, classes: dict, prompt: list[int], offset: int = 0):
    """A `prefer` function: the last character of every even clause after the second one
    rhymes with the second clause's (ids grouped by rhyme class in `classes`: id -> ids)."""
    per_clause = clause_length + 1
    first = clause_length + per_clause - 1  # position of the second clause's last character

    def prefer(b, out):
        pos = offset + len(out)
        k, j = divmod(pos, per_clause)
        if j != clause_length - 1 or k % 2 == 0 or k < 3:
            return None
        poem = prompt + out
        return classes.get(poem[first]) if first < len(poem) else None

    return prefer
