"""The generation loop: continuing a batch of prompts word by word.

`Generator` runs the numpy step model (stepmodel.StepModel) over a batch of prompts and
asks its decoder (decoding.make_decoder) for log-probabilities at every step. `carry` (the
default) keeps (h, c) from word to word, one step a word; `window` re-reads the last `window`
words from a zero state for every word. `Streams` is one batch of streams: it mixes in the
cache and the n-gram, applies the biases, guards and verse constraints, and lets
sampling.choose pick each stream's word. A request's time limit is the `check` callback
(budget.Budget.check) the caller passes.
"""

from __future__ import annotations

import numpy as np

from .dry import History
from .sampling import SamplingConfig, choose, preferred
from .stepmodel import StepModel
from .tokens import is_punctuation


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
              seed: int | None = None, stop=None, constrain=None, prefer=None) -> Streams:
        """The streams of `prompts`, to be generated together (see Streams)."""
        return Streams(self, prompts, length, cfg, seed, stop, constrain, prefer)

    def generate(self, prompts: list[list[int]], length: int, cfg: SamplingConfig,
                 seed: int | None = None, on_step=None, stop=None, constrain=None,
                 prefer=None, check=None) -> list[list[int]]:
        """Generate up to `length` ids after each prompt, all prompts as one batch.

        `on_step(i, ids)` sees each step's choices; `stop(out)` ends a stream early;
        `constrain(b, out)` may return the ids allowed next in stream b (None: any);
        `prefer(b, out)` may return ids to choose among when the model gives them at least
        sampling.PREFER_SHARE of the allowed probability (a rhyme, where the model allows
        one); `check()` is called once a word (budget.Budget.check: it raises to stop).
        """
        group = self.group(prompts, length, cfg, seed, stop, constrain, prefer)
        state = None
        if cfg.context == "carry":
            y, state = self.model.run(group.prompt_matrix(), check=check,
                                      on_output=group.observe if group.cache else None,
                                      head=group.head)
        elif group.cache is not None:  # the prompt's own words go into the cache
            self.model.run(group.prompt_matrix(), check=check, on_output=group.observe,
                           head=group.head)
        while not group.finished:
            if check is not None:
                check()
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


class Streams:
    """Streams generated together with one random generator: what `Generator.generate` runs
    and what a server batches with other requests' groups (wordlstm.serve). The caller runs
    the network; `choose` takes the decoder's log-probabilities for the group's rows and
    returns the ids to feed next."""

    def __init__(self, gen: Generator, prompts, length, cfg, seed=None, stop=None,
                 constrain=None, prefer=None, heads=None):
        self.gen, self.length, self.cfg = gen, length, cfg
        self.stop, self.constrain, self.prefer = stop, constrain, prefer
        self.rng = np.random.default_rng(seed)
        self.blocked: list[np.ndarray | None] = [None] * len(prompts)
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
                allowed = preferred(logp[b], allowed, self.prefer(b, out))
            nxt[b] = choose(logp[b], self.history[b], cfg, self.rng, allowed, banned)
            if not self.done[b]:
                if model_logp is not None and self.score is not None:
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
