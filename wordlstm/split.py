"""Which lines of a segmented file are held out: decided once, the same for every command.

`train-vectors`, `train`, `evaluate` and the benches all call `held_out_lines` with the same
settings, so no held-out text is ever trained on, not even by word2vec. A novel holds out its
tail: the paragraphs from the one that starts at `fraction` of its tokens from the end (whole
paragraphs, so a held-out paragraph can be continued and compared). A line corpus (names,
poems: `lines=True`) holds out a seeded random sample of its lines, since its order may mean
something (an alphabetical list's tail is all names beginning with Y and Z).

Training reads `training_lines`: the other lines, less any that repeat a held-out line word
for word (`COPY_CHARS` characters or more). Downloads repeat text: 红楼梦's file has three
paragraphs of its tail again in chapter 60, and a site banner in both parts; without this
rule every model trained on them had read part of what it is measured on.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from .errors import UserError


@dataclass(frozen=True)
class HoldOut:
    """How the held-out part is chosen; recorded with the vectors and the model."""

    fraction: float = 0.05  # of the tokens (a novel) or of the lines (a line corpus)
    lines: bool = False  # a random sample of lines instead of the tail
    seed: int = 1  # of that sample

    def __post_init__(self):
        if not 0 <= self.fraction < 1:
            raise UserError(f"the held-out fraction must be in [0, 1), not {self.fraction}")

    def to_json(self) -> dict:
        return asdict(self)


def line_token_counts(path: str | os.PathLike) -> np.ndarray:
    """Tokens of each non-empty line of a segmented file (what SegmentedCorpus yields)."""
    counts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            n = len(line.split())
            if n:
                counts.append(n)
    return np.array(counts, dtype=np.int64)


def held_out_lines(counts: np.ndarray, holdout: HoldOut) -> np.ndarray:
    """A boolean per non-empty line: True where the line is held out."""
    n = len(counts)
    mask = np.zeros(n, dtype=bool)
    if holdout.fraction <= 0 or n < 2:
        return mask
    if holdout.lines:
        k = min(n - 1, max(1, int(round(n * holdout.fraction))))
        mask[np.random.default_rng(holdout.seed).choice(n, k, replace=False)] = True
        return mask
    before = np.concatenate([[0], np.cumsum(counts + 1)[:-1]])  # tokens (and </s>) before a line
    cut = (counts.sum() + n) * (1.0 - holdout.fraction)
    first = int(np.searchsorted(before, cut))
    mask[min(max(first, 1), n - 1):] = True  # at least one line on each side
    return mask


COPY_CHARS = 20  # a training line this long that equals a held-out line is not trained on


def line_key(tokens: list[str]) -> str:
    """A line as its text (tokens joined), to compare lines across files."""
    return "".join(tokens)


def held_out_keys(path: str | os.PathLike, held: np.ndarray) -> set[str]:
    """The held-out lines (`held`: held_out_lines' mask) at least COPY_CHARS long, as text."""
    from .vectors import SegmentedCorpus

    return {k for h, tokens in zip(held, SegmentedCorpus(path, eos=False))
            if h and len(k := line_key(tokens)) >= COPY_CHARS}


def training_lines(path: str | os.PathLike, holdout: HoldOut,
                   held: np.ndarray | None = None) -> np.ndarray:
    """A boolean per non-empty line: True where training (word2vec, the network, a joined
    corpus) may read the line: not held out, and not a copy of a held-out line."""
    from .vectors import SegmentedCorpus

    if held is None:
        held = held_out_lines(line_token_counts(path), holdout)
    keep = ~held
    if not held.any():
        return keep
    copies = held_out_keys(path, held)
    for i, tokens in enumerate(SegmentedCorpus(path, eos=False)):
        if keep[i] and line_key(tokens) in copies:
            keep[i] = False
    return keep


def split_paragraphs(path: str | os.PathLike, holdout: HoldOut
                     ) -> tuple[list[list[str]], list[list[str]]]:
    """(training lines, held-out lines) of a segmented file, as token lists: what training
    reads and what it is measured on (for benchmarks: the Markov chain fits the first)."""
    from .vectors import SegmentedCorpus

    held = held_out_lines(line_token_counts(path), holdout)
    keep = training_lines(path, holdout, held=held)
    train, out = [], []
    for i, tokens in enumerate(SegmentedCorpus(path, eos=False)):
        if held[i]:
            out.append(tokens)
        elif keep[i]:
            train.append(tokens)
    return train, out
