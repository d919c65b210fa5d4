"""A continuous cache (Grave, Joulin & Usunier, ICLR 2017): the text's own recent words.

A novel reuses its names and words within a scene far more than their overall frequency says.
The cache keeps, for the last `size` positions of a text, the network's output vector there
(the vector head's prediction, as a unit vector) and the word that actually came next; at a
new position it scores every cached position by theta x the cosine of the two predictions,
and spreads a softmax of those scores over the words that followed them:

    p(w) = (1 - weight) p_model(w) + weight sum_{i: next_i = w} softmax(theta cos(y, y_i))_i

One [size x dim] product a word, nothing per vocabulary word except the mixture itself. theta
and weight are fitted by maximum likelihood on training text (`fit_cache`) and kept in
config.json's decoder record; weight 0 is the plain model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import UserError
from .numeric import unit_rows as unit


@dataclass
class CacheConfig:
    """The cache's settings (config.json: decoder.cache)."""

    size: int = 1024  # positions remembered
    theta: float = 10.0  # sharpness of the match between predictions (cosine x theta)
    weight: float = 0.0  # the cache's share of the mixture (0: off)
    gap: int = 16  # the most recent positions left out: matching the model's own last words
    # made generation stutter ("怎么样怎么样"); held out, 16 costs 0.01 bits/char of the 0.2
    # the cache gains (bench/RESULTS.md)

    def __post_init__(self):
        if not (isinstance(self.size, int) and 1 <= self.size <= 1 << 16):
            raise UserError("cache size must be an integer in 1-65536")
        if not (np.isfinite(self.theta) and self.theta >= 0):
            raise UserError("cache theta must be a number >= 0")
        if not 0 <= self.weight < 1:
            raise UserError("cache weight must be in [0, 1)")
        if not (isinstance(self.gap, int) and 0 <= self.gap < self.size):
            raise UserError("cache gap must be an integer in [0, size)")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> CacheConfig | None:
        if not data:
            return None
        return cls(int(data["size"]), float(data["theta"]), float(data["weight"]),
                   int(data.get("gap", 0)))  # written before the gap existed: none


class NeuralCache:
    """The cache of a batch of streams, for generation: `mix` the model's log-probabilities
    with it, then `add` the word chosen (or read) after each prediction."""

    def __init__(self, cfg: CacheConfig, batch: int, dim: int):
        self.cfg = cfg
        self.keys = np.zeros((batch, cfg.size, dim), np.float32)
        self.values = np.zeros((batch, cfg.size), np.int64)
        self.count = np.zeros(batch, np.int64)  # pairs added so far, per stream

    def repeat(self, k: int) -> NeuralCache:
        """A cache of `k` streams, each a copy of this one-stream cache."""
        other = NeuralCache(self.cfg, k, self.keys.shape[2])
        other.keys[:] = self.keys[0]
        other.values[:] = self.values[0]
        other.count[:] = self.count[0]
        return other

    def add(self, y: np.ndarray, next_ids: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Remember (prediction, word that followed) for `rows` (default: every stream)."""
        rows = np.arange(len(self.count)) if rows is None else np.asarray(rows)
        if not len(rows):
            return
        slot = self.count[rows] % self.cfg.size
        self.keys[rows, slot] = unit(y)
        self.values[rows, slot] = next_ids
        self.count[rows] += 1

    def mix(self, logp: np.ndarray, y: np.ndarray) -> np.ndarray:
        """log((1 - weight) p_model + weight p_cache) for every stream's row. Only the words in
        a stream's cache change beyond the factor (1 - weight): a sparse update, with one
        [size x dim] product per stream (the whole buffer, unused slots masked)."""
        w = self.cfg.weight
        size, gap = self.cfg.size, self.cfg.gap
        if w <= 0 or not (self.count > gap).any():
            return logp
        out = np.asarray(logp, np.float32) + np.float32(np.log1p(-w))
        u = unit(y)
        vocab = out.shape[1]
        rows = np.nonzero(self.count > gap)[0]
        # Every stream's match scores in one batched product (no copy of the keys).
        scores = self.cfg.theta * np.matmul(self.keys, u[:, :, None])[:, :, 0]
        age = (self.count[:, None] - 1 - np.arange(size)[None, :]) % size  # 0: the newest
        valid = (age >= gap) & (age < np.minimum(self.count, size)[:, None])
        scores = np.where(valid, scores, -np.inf)
        for b in rows:
            a = np.exp(scores[b] - scores[b].max())
            p_cache = np.bincount(self.values[b], weights=a, minlength=vocab)
            words = np.flatnonzero(p_cache)
            lp = logp[b, words].astype(np.float64)
            out[b, words] = np.log((1 - w) * np.exp(lp) + w * p_cache[words] / a.sum())
        return out


def cache_probs(outputs: np.ndarray, targets: np.ndarray, size: int, theta: float,
                gap: int = 0, rows: int = 512) -> np.ndarray:
    """p_cache(target_t) at every position of a stream (0 where nothing is cached yet): the
    cache of position t holds the `size` positions before it, less the last `gap`. Masked
    targets (< 0) are neither cached nor scored."""
    n = len(targets)
    u = unit(outputs)
    out = np.zeros(n, np.float64)
    for a in range(0, n, rows):
        b = min(a + rows, n)
        lo = max(0, a - size)
        s = theta * (u[a:b] @ u[lo:b].T)  # [b - a, b - lo]
        i = np.arange(a, b)[:, None]
        j = np.arange(lo, b)[None, :]
        ok = (j < i - gap) & (j >= i - size) & (targets[lo:b][None, :] >= 0)
        s = np.where(ok, s, -np.inf)
        m = s.max(axis=1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.where(ok, np.exp(s - m), 0.0)
        total = e.sum(axis=1)
        same = targets[lo:b][None, :] == targets[a:b][:, None]
        hit = (e * same).sum(axis=1)
        out[a:b] = np.divide(hit, total, out=np.zeros_like(hit), where=total > 0)
    return out


def mixed_logprobs(logp_model: np.ndarray, p_cache: np.ndarray, weight: float) -> np.ndarray:
    """log((1 - weight) p_model + weight p_cache) of the targets (NaN stays NaN)."""
    if weight <= 0:
        return logp_model
    return np.log((1 - weight) * np.exp(logp_model) + weight * p_cache)


THETAS = (2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0)
WEIGHTS = tuple(round(0.02 * k, 2) for k in range(1, 31))  # 0.02 .. 0.6


def fit_cache(outputs: np.ndarray, targets: np.ndarray, logp_model: np.ndarray,
              size: int = 1024, gap: int = 16, thetas=THETAS,
              weights=WEIGHTS) -> CacheConfig:
    """theta and weight by maximum likelihood on a stretch of text (a grid: the likelihood is
    smooth in both), the rest of the model fixed."""
    ok = (targets >= 0) & np.isfinite(logp_model)
    best = (float(np.mean(logp_model[ok])), 0.0, 0.0)
    for theta in thetas:
        pc = cache_probs(outputs, targets, size, theta, gap)[ok]
        lm = logp_model[ok]
        for w in weights:
            if w <= 0:
                continue
            ll = float(np.mean(np.log((1 - w) * np.exp(lm) + w * pc)))
            if ll > best[0]:
                best = (ll, float(theta), float(w))
    return CacheConfig(size, best[1] or thetas[0], best[2], gap)
