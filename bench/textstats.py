"""What the writing benches measure: statistics of generated text, set beside the real text's,
and the character n-gram (wordlstm.charngram: reference model and Markov sampler).

Plain Python on purpose: a few hundred thousand n-grams fit in dicts, and the benches should
not depend on a language-model toolkit to say what the product's text looks like.
"""

from __future__ import annotations

import unicodedata

from wordlstm.charngram import CharNgram


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
    def mean(xs):
        return sum(xs) / len(xs) if xs else float("nan")

    return {"samples": len(samples), "chars": chars,
            "breaks_per_1000": 1000 * breaks / chars,
            "punct_share": punct / max(len(body), 1),
            "repeated_4grams": mean(rep4),
            "distinct_bigrams": mean(dist2),
            "quote_faults_per_100": 100 * sum(quote_faults(s) for s in samples) / chars,
            "copied_12grams": mean(copied),
            "ref_bits_per_char": mean(bpc)}
