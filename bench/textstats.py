"""What the writing benches measure: a character n-gram (reference model and Markov sampler)
and statistics of generated text, set beside the real text's.

Plain Python on purpose: a few hundred thousand n-grams fit in dicts, and the benches should
not depend on a language-model toolkit to say what the product's text looks like.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter, defaultdict


class CharNgram:
    """Interpolated Witten-Bell character n-gram of `order` (5: four characters of history).

    p(c | h) = (C(hc) + T(h) p(c | h')) / (C(h) + T(h)), T(h) = distinct continuations of h,
    down to a uniform distribution over the characters seen plus one unseen.
    """

    def __init__(self, text: str, order: int = 5):
        self.order = order
        self.counts: list[Counter] = [Counter() for _ in range(order + 1)]  # by n-gram length
        self.cont: dict[str, Counter] = defaultdict(Counter)  # history -> next characters
        for n in range(1, order + 1):
            grams = self.counts[n]
            for i in range(len(text) - n + 1):
                grams[text[i:i + n]] += 1
        for n in range(1, order + 1):
            for gram, c in self.counts[n].items():
                self.cont[gram[:-1]][gram[-1]] += c
        self.ctx_total = {h: sum(c.values()) for h, c in self.cont.items()}
        self.ctx_types = {h: len(c) for h, c in self.cont.items()}
        self.alphabet = len(self.counts[1]) + 1

    def prob(self, history: str, c: str) -> float:
        p = 1.0 / self.alphabet
        history = history[-(self.order - 1):] if self.order > 1 else ""
        for k in range(0, len(history) + 1):
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
        full = history + text
        start = len(history)
        bits = 0.0
        for i in range(start, len(full)):
            bits -= math.log2(self.prob(full[max(0, i - self.order + 1):i], full[i]))
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


def is_punct(c: str) -> bool:
    return unicodedata.category(c).startswith("P")


def quote_faults(text: str) -> int:
    """ASCII quotes, and curly quotes that close nothing or are left open at a paragraph end."""
    faults = sum(text.count(q) for q in "\"'`")
    for para in text.split("\n"):
        depth = 0
        for c in para:
            if c == "“":
                if depth:
                    faults += 1  # opened again before closing
                depth = 1
            elif c == "”":
                if not depth:
                    faults += 1
                depth = 0
        faults += depth
    return faults


def ngram_set(text: str, n: int = 12) -> set:
    return {hash(text[i:i + n]) for i in range(len(text) - n + 1)}


def text_stats(samples: list[str], train_grams: set, reference: CharNgram | None = None,
               histories: list[str] | None = None, n: int = 12) -> dict:
    """The writing statistics over a list of continuations (each judged on its own)."""
    chars = sum(len(s) for s in samples) or 1
    breaks = sum(s.count("\n") for s in samples)
    body = "".join(samples).replace("\n", "")
    punct = sum(1 for c in body if is_punct(c))
    rep4, dist2, copied, bpc = [], [], [], []
    for i, s in enumerate(samples):
        s4 = [s[j:j + 4] for j in range(len(s) - 3)]
        rep4.append(1 - len(set(s4)) / len(s4) if s4 else 0.0)
        s2 = [s[j:j + 2] for j in range(len(s) - 1)]
        dist2.append(len(set(s2)) / len(s2) if s2 else 0.0)
        grams = [hash(s[j:j + n]) for j in range(len(s) - n + 1)]
        copied.append(sum(g in train_grams for g in grams) / len(grams) if grams else 0.0)
        if reference is not None:
            bpc.append(reference.bits_per_char(s, histories[i] if histories else ""))
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return {"samples": len(samples), "chars": chars,
            "breaks_per_1000": 1000 * breaks / chars,
            "punct_share": punct / max(len(body), 1),
            "repeated_4grams": mean(rep4),
            "distinct_bigrams": mean(dist2),
            "quote_faults_per_100": 100 * sum(quote_faults(s) for s in samples) / chars,
            "copied_12grams": mean(copied),
            "ref_bits_per_char": mean(bpc)}
