"""Growing a base model's vocabulary with a novel's own words (`train --from base`).

The base knows every character of its pretraining text and its frequent words; a user's
novel brings names and phrases the base spells with characters. Its words seen at least
`min_count` times in the novel's training part (never its held-out tail) join the vocabulary
after the base's words, which keep their vectors. The base's words of two or more characters
that the novel never uses are left out: a model of this novel should not write the other
novels' words (their cost, the user's novel never pays back), and they would make the model
directory a fifth larger. Every base character stays, so any text can still be spelled. A new
word starts from the mean of its characters' vectors (what the base read it as until now,
spelled); a character the base never saw starts from the mean of all vectors. Fine-tuning
moves them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .split import HoldOut, training_lines
from .vectors import EOS, SegmentedCorpus, Vectors, word_fits

MIN_COUNT = 3  # as train-vectors: rarer words stay spelled with their characters


@dataclass
class Extension:
    """The grown vocabulary and what was added to it."""

    vectors: Vectors  # the base's words the novel uses (in the base's order), then the new
    new_words: list[str]  # words of two or more characters
    new_chars: list[str]  # characters the base never saw
    unknown_share: float  # of the novel's training characters, the share the base would
    # read as unknown (not in its vocabulary, alone or inside a word)
    traditional_share: float  # of its characters, the share OpenCC t2s would change
    dropped: int = 0  # base words of two or more characters the novel never uses


def extend_vocabulary(base: Vectors, segmented: str, holdout: HoldOut | None = None,
                      min_count: int = MIN_COUNT) -> Extension:
    """`base` plus the words of `segmented`'s training lines that it lacks (see the module)."""
    holdout = holdout or HoldOut()
    select = training_lines(segmented, holdout)
    counts: Counter = Counter()
    for tokens in SegmentedCorpus(segmented, eos=False, select=select):
        counts.update(tokens)
    index = {w: i for i, w in enumerate(base.words)}
    chars: Counter = Counter()  # characters as the base reads the text: of words it spells
    total = 0
    for word, n in counts.items():
        total += n * len(word)
        if word not in index:
            for c in word:
                chars[c] += n
    new_chars = sorted(c for c in chars if c not in index and c != EOS)
    new_words = sorted((w for w, n in counts.items()
                        if n >= min_count and len(w) > 1 and w not in index and w != EOS
                        and word_fits(w)),  # a word no vectors file can hold is spelled
                       key=lambda w: (-counts[w], w))
    matrix = base.matrix
    mean = matrix.mean(axis=0)
    kept = [i for i, w in enumerate(base.words) if len(w) == 1 or w == EOS or counts[w] > 0]
    rows = [mean for _ in new_chars]
    for w in new_words:
        known = [matrix[index[c]] for c in w if c in index]
        rows.append(np.mean(known, axis=0) if known else mean)
    grown = np.vstack([matrix[kept]] + ([np.asarray(rows, np.float32)] if rows else []))
    unknown = sum(chars[c] for c in new_chars)
    return Extension(Vectors([base.words[i] for i in kept] + new_chars + new_words,
                             np.ascontiguousarray(grown, dtype=np.float32)),
                     new_words, new_chars, unknown / total if total else 0.0,
                     traditional_share(counts), len(base.words) - len(kept))


def traditional_share(counts: Counter) -> float:
    """Of the characters of `counts` (word -> occurrences), the share that OpenCC's t2s
    would change: above a few percent the text is in traditional characters (0 without
    OpenCC installed: then nothing is known)."""
    try:
        import opencc
    except ImportError:
        return 0.0
    chars: Counter = Counter()
    for word, n in counts.items():
        for c in word:
            chars[c] += n
    distinct = list(chars)
    converted = opencc.OpenCC("t2s").convert("\n".join(distinct)).split("\n")
    if len(converted) != len(distinct):
        return 0.0
    total = sum(chars.values())
    changed = sum(chars[c] for c, t in zip(distinct, converted) if c != t)
    return changed / total if total else 0.0
