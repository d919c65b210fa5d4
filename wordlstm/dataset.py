"""Training text as int32 id streams, and batches of sequences cut from them on the fly.

A segmented file becomes two streams of ids, training and held-out (split.held_out_lines):
`</s> p1 </s> p2 </s> ...`, so every paragraph or line starts after a `</s>` and ends with
one. Words outside the vocabulary are spelled with their characters (vectors.token_ids);
a character the vocabulary lacks becomes UNK (id = vocabulary size: a zero input, never a
target). Memory is 4 bytes a token; batches are fancy-indexes into the stream.

Training predicts at every position of a sequence, the way char-rnn and every language model
trains: a batch holds B sequences of T tokens and their T next tokens, B x T targets, each
seen once an epoch (the sequences start at a random offset each epoch).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .errors import UserError
from .split import HoldOut, held_out_lines, line_token_counts, training_lines
from .vectors import EOS, SegmentedCorpus, token_ids

MASKED = -1  # target id of positions that are not scored (UNK)


@dataclass
class CorpusIds:
    """The training and held-out id streams of a segmented file, with what scoring needs."""

    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    train_unknown: int = 0  # UNK positions (unknown characters) in the training stream
    val_words: int = 0  # segmented tokens (and </s>) in the held-out stream
    val_spelled: int = 0  # of those, words the vocabulary lacks as a unit (spelled or UNK)
    val_unknown_chars: list = field(default_factory=list)  # each held-out UNK's character
    char_counts: Counter = field(default_factory=Counter)  # characters of the training text
    held_out_lines: int = 0
    # Scoring another file (evaluate --whole-file) with no training stream at hand: the
    # model's own training figures stand in for it (evaluate.training_stats_of).
    train_positions: int | None = None  # training targets
    train_word_counts: np.ndarray | None = None  # each word's count among them

    @property
    def unk(self) -> int:
        return self.vocab_size


def corpus_ids(path: str, index: dict, holdout: HoldOut | None = None,
               whole: bool = False) -> CorpusIds:
    """Map a segmented file to id streams, streaming it once.

    `holdout` defaults to HoldOut(). `whole` puts every line in the held-out stream (to score
    another file entirely).
    """
    if holdout is None:
        holdout = HoldOut()
    unk = len(index)
    eos = index.get(EOS)
    if eos is None:
        raise UserError("the vectors have no </s> token (paragraph end); train them with "
                        "`wordlstm train-vectors`")
    counts = line_token_counts(path)
    mask = np.ones(len(counts), bool) if whole else held_out_lines(counts, holdout)
    train_ok = training_lines(path, holdout, held=mask)  # less copies of held-out lines
    streams = {False: array("i", [eos]), True: array("i", [eos])}
    chars: Counter = Counter()
    unknown_chars: list[str] = []
    val_words = val_spelled = train_unknown = 0
    for i, tokens in enumerate(SegmentedCorpus(path, eos=False)):
        held = bool(mask[i])
        if not held and not train_ok[i]:
            continue
        ids = token_ids(tokens, index, unk)
        streams[held].extend(ids)
        streams[held].append(eos)
        if held:
            val_words += len(tokens) + 1
            val_spelled += sum(1 for t in tokens if t not in index)
            if unk in ids:
                unknown_chars.extend(c for t in tokens for c in t
                                     if t not in index and c not in index)
        else:
            train_unknown += ids.count(unk)
            for t in tokens:
                chars.update(t)
    train = np.frombuffer(streams[False], dtype=np.int32).copy()
    val = np.frombuffer(streams[True], dtype=np.int32).copy()
    return CorpusIds(train=train if len(train) > 1 else train[:0], val=val if len(val) > 1
                     else val[:0], vocab_size=unk, train_unknown=train_unknown,
                     val_words=val_words, val_spelled=val_spelled, val_unknown_chars=unknown_chars,
                     char_counts=chars,
                     held_out_lines=int(mask.sum()))


def targets_of(next_ids: np.ndarray, unk: int) -> np.ndarray:
    """Target ids with UNK masked out."""
    return np.where(next_ids == unk, MASKED, next_ids).astype(np.int32)


def sequence_starts(n_tokens: int, length: int, rng) -> np.ndarray:
    """Non-overlapping sequence starts covering the stream from a random offset."""
    if n_tokens < length + 1:
        return np.zeros(0, np.int64)
    offset = int(rng.integers(0, min(length, n_tokens - length)))
    return np.arange(offset, n_tokens - length, length, dtype=np.int64)


def make_sequences(ids: np.ndarray, starts: np.ndarray, length: int, unk: int):
    """(inputs [B, T], targets [B, T]) for sequences starting at `starts`."""
    idx = starts[:, None] + np.arange(length)
    return ids[idx], targets_of(ids[idx + 1], unk)


def check_trainable(ids: np.ndarray, length: int, what: str) -> None:
    if len(ids) < length + 1:
        raise UserError(f"{what}: too little text to train on: {len(ids)} tokens for "
                        f"sequences of {length}; use a larger corpus or a smaller --window")


def lane_starts(n_tokens: int, length: int, lanes: int, rng) -> tuple[np.ndarray, int]:
    """(start of each lane, batches an epoch) for reading the stream in order as `lanes`
    consecutive stretches side by side; a random offset each epoch moves the cuts."""
    offset = int(rng.integers(0, length)) if n_tokens > 2 * length else 0
    lane = (n_tokens - 1 - offset) // lanes
    return offset + lane * np.arange(lanes, dtype=np.int64), lane // length


def lanes_dataset(ids: np.ndarray, length: int, batch_size: int, unk: int, seed: int = 0,
                  epoch: int = 0):
    """A keras PyDataset for training that carries the LSTM state across batches
    (truncated backpropagation through time, as char-rnn/torch-rnn and AWD-LSTM train): the
    stream is cut into `batch_size` lanes, row b of batch i holds lane b's tokens
    [i * length, (i + 1) * length), so each row continues the row before it and the network
    learns from context far longer than one sequence, as generation uses it."""
    from .backend import import_keras

    keras = import_keras()

    class Lanes(keras.utils.PyDataset):  # type: ignore[name-defined]  # keras is lazy here
        def __init__(self):
            super().__init__()
            self.epoch = epoch
            self._arrange()

        def _arrange(self):
            rng = np.random.default_rng((seed, self.epoch))
            self.starts, self.batches = lane_starts(len(ids), length, batch_size, rng)

        def __len__(self):
            return max(1, self.batches)

        def __getitem__(self, i):
            return make_sequences(ids, self.starts + i * length, length, unk)

        def on_epoch_end(self):
            self.epoch += 1
            self._arrange()

    return Lanes()


def sequences_dataset(ids: np.ndarray, length: int, batch_size: int, unk: int, seed: int = 0,
                      epoch: int = 0, drop_remainder: bool = False):
    """A keras PyDataset of (inputs, targets) batches of sequences, reshuffled every epoch.

    `drop_remainder` leaves out the last, smaller batch (data-parallel training needs every
    batch to split evenly across devices).
    """
    from .backend import import_keras

    keras = import_keras()

    class Sequences(keras.utils.PyDataset):  # type: ignore[name-defined]  # keras is lazy here
        def __init__(self):
            super().__init__()
            self.epoch = epoch  # so a resumed run sees the data as the uninterrupted one would
            self._arrange()

        def _arrange(self):
            rng = np.random.default_rng((seed, self.epoch))
            self.starts = sequence_starts(len(ids), length, rng)
            rng.shuffle(self.starts)

        def __len__(self):
            if drop_remainder:
                return max(1, len(self.starts) // batch_size)
            return max(1, math.ceil(len(self.starts) / batch_size))

        def __getitem__(self, i):
            return make_sequences(ids, self.starts[i * batch_size:(i + 1) * batch_size],
                                  length, unk)

        def on_epoch_end(self):
            self.epoch += 1
            self._arrange()

    return Sequences()
