"""Training windows built on the fly from one int32 array of word ids.

The corpus becomes a flat id array (paragraphs end with `</s>`); a batch of windows is a
fancy-index into it, so memory is 4 bytes a token, never N x window x dims floats. Words
outside the vocabulary become UNK (id = vocab size, a zero input vector) and are never a
target. The last `val_fraction` of the tokens is the held-out set.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import numpy as np

from .vectors import EOS, SegmentedCorpus


def corpus_ids(path: str, index: dict, eos: bool = True, lines_window: int = 0):
    """Map a segmented file to ids, streaming it; returns (ids, count of UNK tokens, targets).

    With `lines_window` > 0 (line-level corpora: poems, names), each line is its own document:
    it is preceded by `lines_window` `</s>` start markers, so no window reaches into the
    previous line, and `targets` marks which positions may be predicted (the line's tokens and
    the `</s>` that ends it, never the padding). Otherwise `targets` is None.
    """
    unk = len(index)
    ids = array("i")
    targets = array("b") if lines_window else None
    missing = 0
    eos_id = index.get(EOS, unk)
    if lines_window and eos_id == unk:
        from .errors import UserError

        raise UserError("line mode needs the </s> token in the vectors (train them with "
                        "`wordlstm train-vectors`)")
    for tokens in SegmentedCorpus(path, eos=False):
        row = [index.get(t, unk) for t in tokens]
        missing += row.count(unk)
        if lines_window:
            ids.extend([eos_id] * lines_window)
            targets.extend([0] * lines_window)
            ids.extend(row)
            ids.append(eos_id)
            targets.extend([1] * (len(row) + 1))
            continue
        ids.extend(row)
        if eos and eos_id != unk:
            ids.append(eos_id)
    arr = np.frombuffer(ids, dtype=np.int32).copy()
    mask = np.frombuffer(targets, dtype=np.int8).astype(bool) if lines_window else None
    return arr, missing, mask


@dataclass
class Split:
    """Window start positions for training and validation (targets are never UNK)."""

    train: np.ndarray
    val: np.ndarray


def window_starts(ids: np.ndarray, window: int, unk: int, val_fraction: float,
                  targets: np.ndarray | None = None) -> Split:
    """Starts of all windows whose target is a known word, the last `val_fraction` held out."""
    n = len(ids) - window
    if n <= 0:
        return Split(np.zeros(0, np.int64), np.zeros(0, np.int64))
    starts = np.arange(n, dtype=np.int64)
    keep = ids[starts + window] != unk
    if targets is not None:
        keep &= targets[starts + window]
    starts = starts[keep]
    cut = int(len(ids) * (1.0 - val_fraction))
    # A validation window lies wholly in the tail: its first input word is at or after `cut`.
    return Split(train=starts[starts + window < cut], val=starts[starts >= cut])


def make_windows(ids: np.ndarray, starts: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs [B, window] int32, target ids [B] int32) for the given window starts."""
    x = ids[starts[:, None] + np.arange(window)]
    return x, ids[starts + window]


def windows_dataset(ids, starts, window, batch_size, targets, shuffle: bool, seed: int = 0,
                    epoch: int = 0, drop_remainder: bool = False):
    """A keras PyDataset yielding (ids, target) batches; `targets` maps target ids to y.

    `drop_remainder` leaves out the last, smaller batch (data-parallel training needs every
    batch to split evenly across devices).
    """
    from .backend import import_keras

    keras = import_keras()

    class Windows(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.order = starts.copy()
            self.epoch = epoch  # so a resumed run shuffles as the uninterrupted one would
            self._shuffle()

        def _shuffle(self):
            if shuffle:
                np.random.default_rng((seed, self.epoch)).shuffle(self.order)

        def __len__(self):
            if drop_remainder:
                return len(self.order) // batch_size
            return math.ceil(len(self.order) / batch_size)

        def __getitem__(self, i):
            batch = self.order[i * batch_size:(i + 1) * batch_size]
            x, t = make_windows(ids, batch, window)
            return x, targets(t)

        def on_epoch_end(self):
            self.epoch += 1
            self._shuffle()

    return Windows()
