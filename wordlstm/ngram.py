"""A word n-gram of the training text, mixed with the network (Mikolov et al. 2011).

The network knows which words suit a scene; it is weak on the short phrases around them ("吃了
两口衣裳": each word the novel's, the phrase no one's). An interpolated Kneser-Ney n-gram of the
same word ids is strong exactly there, and the two are mixed in probability:

    p(w) = (1 - weight) p_network(w) + weight p_ngram(w | the last order-1 words)

The counts are kept as sorted arrays of integer keys (the n-gram's ids as digits of base
vocab + 1), so the followers of a context are one contiguous slice found by binary search:
one dense [vocab] row a stream and word, nothing per n-gram. Stored as `ngram.npz` (numpy
arrays, loaded with allow_pickle=False) in the model directory; its weight is fitted by
maximum likelihood on training text the counts were not taken from (`fit_ngram`), and kept in
config.json's decoder record (decoder.ngram). Weight 0 is the plain model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError

ORDERS = (2, 3, 4)


@dataclass
class NgramConfig:
    """The n-gram's settings (config.json: decoder.ngram)."""

    order: int = 3  # words of context + 1 (3: a trigram)
    weight: float = 0.0  # the n-gram's share of the mixture (0: off)

    def __post_init__(self):
        if self.order not in ORDERS:
            raise UserError(f"ngram order must be one of {', '.join(map(str, ORDERS))}")
        if not (np.isfinite(self.weight) and 0 <= self.weight < 1):
            raise UserError("ngram weight must be in [0, 1)")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> NgramConfig | None:
        if not data:
            return None
        return cls(int(data["order"]), float(data["weight"]))


class _Level:
    """The k-grams of one order: sorted keys, their counts, and per context (the first k-1
    ids) where its followers start, how many there are and their total count."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray, base: int):
        self.keys = keys
        self.counts = counts.astype(np.float64)
        ctx = keys // base
        self.ctx, self.start, self.n = np.unique(ctx, return_index=True, return_counts=True)
        self.total = np.add.reduceat(self.counts, self.start) if len(keys) else self.counts
        n1 = float((counts == 1).sum())
        n2 = float((counts == 2).sum())
        # Ney's estimate of the absolute discount, kept inside (0, 1).
        self.discount = min(max(n1 / (n1 + 2 * n2), 0.05), 0.95) if n1 else 0.5

    def find(self, ctx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of each context in self.ctx, and whether it is there."""
        j = np.searchsorted(self.ctx, ctx)
        j = np.minimum(j, max(len(self.ctx) - 1, 0))
        return j, (self.ctx[j] == ctx) if len(self.ctx) else np.zeros(len(ctx), bool)


class WordNgram:
    """An interpolated Kneser-Ney n-gram over word ids 0..vocab-1 (contexts may hold the
    unknown-word id `vocab`, which is never predicted)."""

    def __init__(self, vocab: int, order: int, grams: dict[int, tuple[np.ndarray, np.ndarray]],
                 unigram: np.ndarray):
        if order not in ORDERS:
            raise UserError(f"ngram order must be one of {', '.join(map(str, ORDERS))}")
        self.vocab, self.order, self.base = int(vocab), int(order), int(vocab) + 1
        if float(self.base) ** order >= 2.0 ** 62:
            raise UserError(f"a vocabulary of {vocab:,} words is too large for an order-{order} "
                            "n-gram's integer keys; use a lower order")
        self.levels = {k: _Level(keys, counts, self.base) for k, (keys, counts) in grams.items()}
        self.unigram = np.asarray(unigram, np.int64)[:vocab]  # continuation counts
        u = self.unigram + 0.5  # every word some mass
        self.p1 = u / u.sum()

    @classmethod
    def fit(cls, ids: np.ndarray, vocab: int, order: int = 3) -> WordNgram:
        """Counts of the token stream `ids` (paragraph ends are tokens like any other): real
        counts at the highest order, continuation counts (distinct left neighbours) below."""
        ids = np.asarray(ids, np.int64)
        base = vocab + 1
        if len(ids) < order:
            raise UserError("too little text for an n-gram")
        key = np.zeros(len(ids) - order + 1, np.int64)
        for i in range(order):
            key = key * base + ids[i:len(ids) - order + 1 + i]
        key = key[ids[order - 1:] < vocab]  # the unknown word is never a target
        keys, counts = np.unique(key, return_counts=True)
        grams = {order: (keys, counts)}
        for k in range(order - 1, 1, -1):
            keys, counts = np.unique(keys % base ** k, return_counts=True)
            grams[k] = (keys, counts)
        unigram = np.bincount(keys % base, minlength=vocab)
        return cls(vocab, order, grams, unigram)

    def _contexts(self, history: np.ndarray, k: int) -> np.ndarray:
        """The key of each row's last k-1 ids ([rows, >= order-1] history)."""
        c = np.zeros(len(history), np.int64)
        for i in range(k - 1, 0, -1):
            c = c * self.base + history[:, -i]
        return c

    def probs(self, history: np.ndarray) -> np.ndarray:
        """p(w | the last order-1 ids of each row of `history`) for every word, [rows, vocab]
        (history rows left-padded by the caller to at least order-1 ids)."""
        history = np.asarray(history, np.int64)
        p = np.tile(self.p1, (len(history), 1))
        for k in range(2, self.order + 1):
            lv = self.levels[k]
            j, found = lv.find(self._contexts(history, k))
            for b in np.flatnonzero(found):
                s, n, tot = lv.start[j[b]], lv.n[j[b]], lv.total[j[b]]
                w = lv.keys[s:s + n] % self.base
                p[b] *= lv.discount * n / tot
                p[b, w] += np.maximum(lv.counts[s:s + n] - lv.discount, 0) / tot
        return p

    def target_probs(self, ids: np.ndarray) -> np.ndarray:
        """p(ids[i+1] | ids[..i]) for every i (aligned with dataset.targets_of(ids[1:])); the
        unknown word gets probability 0 (it is masked wherever it is scored)."""
        ids = np.asarray(ids, np.int64)
        pad = np.concatenate([np.full(self.order - 2, ids[0], np.int64), ids])
        target = ids[1:]
        known = target < self.vocab
        t = np.where(known, target, 0)
        p = self.p1[t].copy()
        n = len(target)
        hist = np.lib.stride_tricks.sliding_window_view(pad[:n + self.order - 2],
                                                        self.order - 1)
        for k in range(2, self.order + 1):
            lv = self.levels[k]
            ctx = self._contexts(hist, k)
            j, found = lv.find(ctx)
            want = ctx * self.base + t
            i = np.minimum(np.searchsorted(lv.keys, want), max(len(lv.keys) - 1, 0))
            cnt = np.where(lv.keys[i] == want, lv.counts[i], 0.0)
            tot, nn = lv.total[j], lv.n[j]
            mixed = np.maximum(cnt - lv.discount, 0) / tot + lv.discount * nn / tot * p
            p = np.where(found, mixed, p)
        return np.where(known, p, 0.0)

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {"vocab": np.array(self.vocab), "order": np.array(self.order),
                  "unigram": self.unigram.astype(np.int32)}
        for k, lv in self.levels.items():
            arrays[f"keys{k}"] = lv.keys
            arrays[f"counts{k}"] = lv.counts.astype(np.int32)
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: Path, vocab: int, data: bytes | None = None) -> WordNgram:
        """Read `ngram.npz` (no pickles), checked against the model's vocabulary size; from
        `data` (its bytes, as checked by modeldir.load) when given, `path` naming it."""
        import io
        import zipfile

        try:
            with np.load(io.BytesIO(data) if data is not None else path,
                         allow_pickle=False) as z:
                if not hasattr(z, "files"):
                    raise ValueError("not an .npz archive")
                order = int(z["order"])
                if order not in ORDERS:
                    raise ValueError(f"order {order}")
                if int(z["vocab"]) != vocab:
                    raise UserError(f"{path}: an n-gram of {int(z['vocab']):,} words for a "
                                    f"{vocab:,}-word model; copy the whole model directory")
                grams = {k: (z[f"keys{k}"].astype(np.int64), z[f"counts{k}"].astype(np.int64))
                         for k in range(2, order + 1)}
                unigram = z["unigram"]
        except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: not a readable n-gram file ({exc})") from None
        for k, (keys, counts) in grams.items():
            if keys.shape != counts.shape or (len(keys) > 1 and (np.diff(keys) <= 0).any()) \
                    or (counts < 1).any():
                raise UserError(f"{path}: the {k}-gram table is damaged")
        return cls(vocab, order, grams, unigram)


def mix_rows(logp: np.ndarray, p_ngram: np.ndarray, weight: float) -> np.ndarray:
    """log((1 - weight) p_model + weight p_ngram), every word of every row."""
    if weight <= 0:
        return logp
    p = (1 - weight) * np.exp(np.asarray(logp, np.float64)) + weight * p_ngram
    return np.log(np.maximum(p, 1e-300)).astype(np.float32)


WEIGHTS = tuple(round(0.05 * k, 2) for k in range(19))  # 0 .. 0.9


def fit_weight(logp_model: np.ndarray, p_ngram: np.ndarray, ok: np.ndarray) -> float:
    """The mixture weight by maximum likelihood on text the n-gram did not count (a grid)."""
    lm, pn = logp_model[ok].astype(np.float64), p_ngram[ok]
    best = max(WEIGHTS, key=lambda w: float(np.mean(np.log((1 - w) * np.exp(lm) + w * pn
                                                           + 1e-300))))
    return float(best)
