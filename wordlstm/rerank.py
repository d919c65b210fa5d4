"""Clause-by-clause generation: sample candidates for each next clause, keep the likeliest."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .generate import Generator, Streams
from .sampling import SamplingConfig
from .vectors import EOS


def _no_check() -> None:
    """No budget: never stops."""


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
                 on_step=None, stop=None, check=None) -> list[int]:
        """Up to `length` ids after `prompt` (one stream); `on_step(i, ids)` sees each word
        kept, `stop(out)` ends it early, `check()` is called once a word (it raises to
        stop: budget.Budget.check)."""
        gen, k = self.gen, cfg.rerank
        check = check if check is not None else _no_check
        rng = np.random.default_rng(seed)
        master = gen.group([prompt], length, replace(cfg, rerank=0), seed=0)
        y, state = gen.model.run(master.prompt_matrix(), check=check,
                                 on_output=master.observe if master.cache else None,
                                 head=master.head)
        shared = None if master.heads is None else [(k, b, np.arange(cfg.rerank))
                                                    for k, b, _ in master.heads]
        out: list[int] = []
        while len(out) < length:
            check()
            room = min(cfg.clause_words, length - len(out))
            group = Streams(gen, [prompt + out] * k, room, cfg, seed=int(rng.integers(2**63)),
                          stop=lambda o: bool(self.ends[o[-1]]), heads=shared)
            group.blocked = [master.blocked[0]] * k  # the prompt's exceptions, not ours
            if master.cache is not None:
                group.cache = master.cache.repeat(k)
            group.score = np.zeros(k)
            ys, st = np.repeat(y, k, axis=0), [(np.repeat(h, k, 0), np.repeat(c, k, 0))
                                               for h, c in state]
            while True:
                check()
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
