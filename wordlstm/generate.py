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
from dataclasses import dataclass, replace

import numpy as np

from .errors import UserError
from .stepmodel import StepModel
from .tokens import is_punctuation
from .vectors import EOS

MAX_NATS = 1000.0  # biases and penalties beyond this are no softer than a ban, and overflow


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
        import math

        if not (math.isfinite(self.temperature) and 0.01 <= self.temperature <= 100):
            raise UserError("temperature must be a number from 0.01 to 100 (use greedy for none)")
        if not (0 < self.top_p <= 1):
            raise UserError("top-p must be in (0, 1]")
        if not (0 <= self.min_p < 1):
            raise UserError("min-p must be in [0, 1)")
        if not (0 < self.typical_p <= 1):
            raise UserError("typical-p must be in (0, 1]")
        if self.min_count < 0:
            raise UserError("min-count must not be negative")
        if not (0 <= self.rerank <= 64) or not (1 <= self.clause_words <= 256):
            raise UserError("rerank must be in 0-64 candidates and clause-words in 1-256")
        if not (math.isfinite(self.rerank_pmi) and 0 <= self.rerank_pmi <= 1):
            raise UserError("rerank-pmi must be in [0, 1]")
        if self.top_k < 0 or self.no_repeat_ngram < 0 or self.dry_allowed < 0 \
                or self.dry_range < 1 or self.penalty_window < 1:
            raise UserError("top-k, no-repeat-ngram and the DRY settings must not be negative")
        if not all(math.isfinite(b) and abs(b) <= MAX_NATS
                   for b in (self.paragraph_bias, self.punct_bias)):
            raise UserError(f"paragraph-bias and punct-bias must be numbers within "
                            f"±{MAX_NATS:g} nats")
        for name, hi in (("dry_multiplier", MAX_NATS), ("dry_base", 10.0),
                         ("repetition_penalty", MAX_NATS)):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 <= v <= hi):
                raise UserError(f"{name.replace('_', '-')} must be a number from 0 to {hi:g}")
        if not (self.ngram_weight == -1.0 or 0 <= self.ngram_weight < 1):
            raise UserError("ngram-weight must be in [0, 1) (or -1: the model's fitted weight)")
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
    banned = _banned_by_ngram(tokens, cfg.no_repeat_ngram)
    if banned:
        s[np.array(sorted(banned))] = -np.inf
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


class Generator:
    """Continue prompts word by word with a StepModel and a decoder."""

    def __init__(self, step_model: StepModel, words: list[str], decoder, window: int,
                 eos_id: int | None = None, guards=None, cache=None, dynamic_lr: float = 0.0,
                 ngram=None):
        self.model = step_model
        self.ngram = ngram  # (ngram.NgramConfig, ngram.WordNgram) of the model, or None
        self.dynamic_lr = dynamic_lr  # head adaptation to each prompt (dynamic.adapt_head)
        self.guards = guards  # guards.Guards: what a continuation may not write
        self.cache = cache  # cache.CacheConfig of the model, if it has a fitted cache
        self.words = words
        self.window = window
        self.eos_id = eos_id
        self.unk = len(words)
        self.decoder = decoder
        self.pad = eos_id if eos_id is not None else self.unk
        # A repeat does not run on across a paragraph end (and SamplingConfig.dry_breakers).
        self.breakers = frozenset() if eos_id is None else frozenset({eos_id})
        self._breakers: dict[str, frozenset] = {}
        self.punct_ids = np.array([i for i, w in enumerate(words) if is_punctuation(w)], np.int64)

    # What a caller stepping the network itself (a server's batcher) asks the generator for.
    def logprobs(self, y: np.ndarray) -> np.ndarray:
        """The decoder's log-probabilities over the vocabulary for outputs `y` [rows, dim]."""
        return self.decoder.logprobs(y)

    def zero_state(self, rows: int) -> list:
        return self.model.zero_state(rows)

    def hidden(self, ids: np.ndarray, state) -> tuple:
        """One network step: (the last layer's h, the new state) after reading `ids`."""
        return self.model.hidden(ids, state)

    def breakers_for(self, marks: str) -> frozenset:
        """DRY's sequence breakers: the paragraph end and the words that are one of `marks`."""
        if marks not in self._breakers:
            self._breakers[marks] = self.breakers | frozenset(
                i for i, w in enumerate(self.words) if len(w) == 1 and w in marks)
        return self._breakers[marks]

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
            y, state = self.model.run(group.prompt_matrix(), check=check_time_limit,
                                      on_output=group.observe if group.cache else None,
                                      head=group.head)
        elif group.cache is not None:  # the prompt's own words go into the cache
            self.model.run(group.prompt_matrix(), on_output=group.observe, head=group.head)
        while not group.finished:
            check_time_limit()
            if cfg.context == "window":
                y, _ = self.model.run(group.windows(), head=group.head)
            nxt = group.choose(self.decoder.logprobs(y), y)
            if on_step is not None:
                on_step(group.steps - 1, nxt)
            if group.finished:
                break
            if cfg.context == "carry":
                h, state = self.model.hidden(nxt, state)
                y = group.output(h)
        return group.out


class Group:
    """Streams generated together with one random generator: what `Generator.generate` runs
    and what a server batches with other requests' groups (wordlstm.serve). The caller runs
    the network; `choose` takes the decoder's log-probabilities for the group's rows and
    returns the ids to feed next."""

    def __init__(self, gen: Generator, prompts, length, cfg, seed=None, stop=None,
                 constrain=None, prefer=None, heads=None):
        self.gen, self.length, self.cfg = gen, length, cfg
        self.stop, self.constrain, self.prefer = stop, constrain, prefer
        self.rng = np.random.default_rng(seed)
        self.blocked = [None] * len(prompts)
        if gen.guards is not None and (cfg.min_count or not cfg.other_scripts):
            made: dict[tuple, np.ndarray] = {}
            for b, p in enumerate(prompts):
                if tuple(p) not in made:
                    made[tuple(p)] = gen.guards.blocked(p, cfg.min_count, not cfg.other_scripts)
                self.blocked[b] = made[tuple(p)]
        self.ctx = [gen.start(p) for p in prompts]
        breakers = gen.breakers_for(cfg.dry_breakers)
        self.history = [History(p, breakers) for p in prompts]
        self.out: list[list[int]] = [[] for _ in prompts]
        self.done = [False] * len(prompts)
        self.steps = 0
        self.cache = None
        self._matrix: np.ndarray | None = None  # prompt_matrix(), while the prompt is read
        self.score: np.ndarray | None = None  # set by Reranker: summed model log-probs
        # The head each stream reads through: adapted to its prompt (dynamic evaluation),
        # [(kernel, bias, rows)], or None for the model's own.
        self.heads = heads if heads is not None else self._adapted_heads(prompts)
        if cfg.cache and gen.cache is not None and gen.cache.weight > 0:
            from .cache import NeuralCache

            self.cache = NeuralCache(gen.cache, len(prompts), gen.model.dense_kernel.shape[1])

    def __len__(self) -> int:
        return len(self.out)

    def _adapted_heads(self, prompts):
        gen = self.gen
        if not (self.cfg.adapt and gen.dynamic_lr > 0 and hasattr(gen.decoder, "log_prior")):
            return None
        from .dynamic import adapt_head

        by_prompt: dict[tuple, list[int]] = {}
        for b, p in enumerate(prompts):
            by_prompt.setdefault(tuple(p), []).append(b)
        return [(*adapt_head(gen.model, gen.decoder, gen.start(list(p)), gen.dynamic_lr),
                 np.array(rows)) for p, rows in by_prompt.items()]

    @property
    def head(self):
        """`output` when the streams read through adapted heads, else None (the model's)."""
        return None if self.heads is None else self.output

    def output(self, h: np.ndarray) -> np.ndarray:
        """The outputs of the last layer's `h` [streams, units] through each stream's head."""
        if self.heads is None:
            return h @ self.gen.model.dense_kernel + self.gen.model.dense_bias
        y = np.empty((len(h), self.gen.model.dense_kernel.shape[1]), np.float32)
        for kernel, bias, rows in self.heads:
            y[rows] = h[rows] @ kernel + bias
        return y

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

    def observe(self, t: int, y: np.ndarray) -> None:
        """The network's outputs `y` after column `t` of prompt_matrix(): into the cache, with
        the prompt word that followed (padding left out)."""
        if self.cache is None:
            return
        if self._matrix is None:
            self._matrix = self.prompt_matrix()
        m = self._matrix
        if t + 1 >= m.shape[1]:
            return
        rows = [b for b, c in enumerate(self.ctx) if t >= m.shape[1] - len(c)
                and m[b, t + 1] < self.gen.unk]
        self.cache.add(y[rows], m[rows, t + 1], np.array(rows, np.int64))

    def _mix_ngram(self, logp: np.ndarray) -> np.ndarray:
        """The rows mixed with the word n-gram's p(w | each stream's last words)."""
        from .ngram import mix_rows

        ngcfg, ngram = self.gen.ngram
        weight = ngcfg.weight if self.cfg.ngram_weight < 0 else self.cfg.ngram_weight
        if weight <= 0:
            return logp
        k = ngram.order - 1
        pad = [self.gen.pad] * k
        hist = np.array([(pad + h.tokens[-k:])[-k:] for h in self.history], np.int64)
        return mix_rows(logp, ngram.probs(hist), weight)

    def choose(self, logp: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """One step: the next id of every stream from its row of log-probabilities (a stream
        that has stopped still draws, so a seed gives the same text in any batch); `y`, the
        network's outputs that gave them, is what the cache matches."""
        gen, cfg = self.gen, self.cfg
        if self.cache is not None and y is not None:
            logp = self.cache.mix(logp, y)
        if cfg.ngram and gen.ngram is not None:
            logp = self._mix_ngram(logp)
        model_logp = logp.copy() if self.score is not None else None
        if cfg.paragraph_bias and gen.eos_id is not None:
            logp[:, gen.eos_id] += cfg.paragraph_bias
        if cfg.punct_bias and len(gen.punct_ids):
            logp[:, gen.punct_ids] += cfg.punct_bias
        nxt = np.empty(len(self.out), dtype=np.int64)
        for b, out in enumerate(self.out):
            banned = self.blocked[b]
            if gen.guards is not None:
                rules = [gen.guards.quote_ban(self.history[b].tokens)] if cfg.quotes else []
                if not cfg.headings:
                    rules.append(gen.guards.heading_ban(self.history[b].tokens))
                for ban in rules:
                    if ban is not None and len(ban):
                        banned = ban if banned is None else np.concatenate([banned, ban])
            allowed = self.constrain(b, out) if self.constrain is not None else None
            if self.prefer is not None:
                allowed = _preferred(logp[b], allowed, self.prefer(b, out))
            nxt[b] = choose(logp[b], self.history[b], cfg, self.rng, allowed, banned)
            if not self.done[b]:
                if model_logp is not None:
                    self.score[b] += model_logp[b, nxt[b]]
                out.append(int(nxt[b]))
                self.history[b].append(int(nxt[b]))
                if cfg.context == "window":
                    self.ctx[b].append(int(nxt[b]))
                if self.stop is not None and self.stop(out):
                    self.done[b] = True
        if self.cache is not None and y is not None:
            self.cache.add(y, nxt)
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


CLAUSE_MARKS = frozenset("，。！？；：”…")  # a clause candidate ends with one of these


class Reranker:
    """Clause by clause instead of word by word: from the state after the text so far, sample
    `cfg.rerank` candidates for the next clause (up to a clause mark or `cfg.clause_words`
    words) with the usual settings, keep the one with the best mean model log-probability a
    word (cache included, biases not), and carry on from it. A search over what the sampler
    would write, so each clause is one the model itself finds likely; `rerank` times the work."""

    def __init__(self, gen: Generator):
        self.gen = gen
        words = gen.words
        self.ends = np.array([w == EOS or (bool(w) and w[-1] in CLAUSE_MARKS) for w in words]
                             + [False])
        prior = getattr(gen.decoder, "log_prior", None)  # the word frequencies, if known
        self.log_prior = None if prior is None else np.asarray(prior, np.float64)

    def generate(self, prompt: list[int], length: int, cfg: SamplingConfig, seed=None,
                 on_step=None, stop=None) -> list[int]:
        """Up to `length` ids after `prompt` (one stream); `on_step(i, ids)` sees each word
        kept, `stop(out)` ends it early."""
        gen, k = self.gen, cfg.rerank
        rng = np.random.default_rng(seed)
        master = gen.group([prompt], length, replace(cfg, rerank=0), seed=0)
        y, state = gen.model.run(master.prompt_matrix(), check=check_time_limit,
                                 on_output=master.observe if master.cache else None,
                                 head=master.head)
        shared = None if master.heads is None else [(k, b, np.arange(cfg.rerank))
                                                    for k, b, _ in master.heads]
        out: list[int] = []
        while len(out) < length:
            check_time_limit()
            budget = min(cfg.clause_words, length - len(out))
            group = Group(gen, [prompt + out] * k, budget, cfg, seed=int(rng.integers(2**63)),
                          stop=lambda o: bool(self.ends[o[-1]]), heads=shared)
            group.blocked = [master.blocked[0]] * k  # the prompt's exceptions, not ours
            if master.cache is not None:
                group.cache = master.cache.repeat(k)
            group.score = np.zeros(k)
            ys, st = np.repeat(y, k, axis=0), [(np.repeat(h, k, 0), np.repeat(c, k, 0))
                                               for h, c in state]
            while True:
                check_time_limit()
                nxt = group.choose(gen.decoder.logprobs(ys), ys)
                if group.finished:
                    break
                h, st = gen.model.hidden(nxt, st)
                ys = group.output(h)
            score = group.score
            if cfg.rerank_pmi and self.log_prior is not None:
                score = score - cfg.rerank_pmi * np.array([self.log_prior[o].sum()
                                                           for o in group.out])
            best = int(np.argmax(score / np.maximum([len(o) for o in group.out], 1)))
            for tok in group.out[best]:
                out.append(tok)
                if master.cache is not None:
                    master.cache.add(y, np.array([tok]))
                h, state = gen.model.hidden(np.array([tok], np.int64), state)
                y = master.output(h)
                if on_step is not None:
                    on_step(len(out) - 1, np.array([tok]))
                if stop is not None and stop(out):
                    return out
        return out
