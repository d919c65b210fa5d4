"""A character n-gram: the baseline every model card and bench sets the model beside.

Interpolated Witten-Bell, plain Python: a few hundred thousand n-grams fit in dicts, and the
comparison should not depend on a language-model toolkit. `bench/` samples from it (the
Markov chain of the reader panels); model cards score the held-out text with it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict


class CharNgram:
    """Interpolated Witten-Bell character n-gram of `order` (5: four characters of history).

    p(c | h) = (C(hc) + T(h) p(c | h')) / (C(h) + T(h)), T(h) = distinct continuations of h,
    down to a uniform distribution over the characters seen plus one unseen.
    """

    def __init__(self, text: str, order: int = 5):
        from .progress import step

        self.order = order
        self.counts: list[Counter] = [Counter() for _ in range(order + 1)]  # by n-gram length
        self.cont: dict[str, Counter] = defaultdict(Counter)  # history -> next characters
        with step(f"counting a character {order}-gram", 2 * order, "passes") as advance:
            for n in range(1, order + 1):  # Counter.update counts in C: ~3x the plain loop
                self.counts[n].update(text[i:i + n] for i in range(len(text) - n + 1))
                advance()
            for n in range(1, order + 1):
                for gram, c in self.counts[n].items():
                    self.cont[gram[:-1]][gram[-1]] += c
                advance()
        self.ctx_total = {h: sum(c.values()) for h, c in self.cont.items()}
        self.ctx_types = {h: len(c) for h, c in self.cont.items()}
        self.alphabet = len(self.counts[1]) + 1

    def prob(self, history: str, c: str) -> float:
        p = 1.0 / self.alphabet
        history = history[-(self.order - 1):] if self.order > 1 else ""
        for k in range(len(history) + 1):
            h = history[len(history) - k:]
            total = self.ctx_total.get(h)
            if not total:
                break
            types = self.ctx_types[h]
            p = (self.cont[h].get(c, 0) + types * p) / (total + types)
        return p

    def bits_per_char(self, text: str, history: str = "") -> float:
        """Cross-entropy of `text` (after `history`), in bits per character."""
        if not text:
            return float("nan")
        from .progress import step

        full = history + text
        start = len(history)
        bits = 0.0
        with step(f"scoring with the character {self.order}-gram", len(text),
                  "characters") as advance:
            for i in range(start, len(full)):
                bits -= math.log2(self.prob(full[max(0, i - self.order + 1):i], full[i]))
                if (i - start) % 4096 == 4095:
                    advance(4096)
        return bits / len(text)

    def sample(self, prompt: str, n: int, rng) -> str:
        """A Markov chain continuation: each character drawn from the counts of the longest
        history seen in training (the classic n-gram text generator)."""
        out = prompt
        for _ in range(n):
            for k in range(self.order - 1, -1, -1):
                h = out[len(out) - k:] if k else ""
                cont = self.cont.get(h)
                if cont:
                    break
            assert cont, "the empty history always has continuations"
            chars, weights = zip(*cont.items())
            total = sum(weights)
            r = rng.random() * total
            acc = 0
            for ch, w in zip(chars, weights):
                acc += w
                if acc >= r:
                    out += ch
                    break
        return out[len(prompt):]
