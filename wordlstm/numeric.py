"""The small pieces of numpy arithmetic that several modules share, written once.

Decoding, the cache, word neighbours and training all compare vectors as unit rows, every
embedding table ends with the unknown word's zero row, and every distribution is normalised
with log-sum-exp; one definition each keeps them exactly alike (generation is compared
byte for byte across changes).
"""

from __future__ import annotations

import numpy as np

NORM_FLOOR = 1e-8  # a row shorter than this is divided by it: a zero row stays zero


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), C-contiguous float32."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.ascontiguousarray(matrix / np.maximum(norms, NORM_FLOOR), dtype=np.float32)


def with_unknown_row(matrix: np.ndarray) -> np.ndarray:
    """The embedding table of a vocabulary: its vectors, then a zero row for the unknown word
    (id len(vocabulary)), float32."""
    m = np.asarray(matrix, np.float32)
    return np.vstack([m, np.zeros((1, m.shape[1]), np.float32)])


def logsumexp(z: np.ndarray, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(z))) along `axis` (all of `z` for None), shifted by the maximum so that
    it neither overflows nor underflows."""
    m = z.max(axis=axis, keepdims=True)
    out = np.log(np.exp(z - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Each row of logits as log-probabilities, float32."""
    z = z - z.max(axis=-1, keepdims=True)
    return (z - logsumexp(z, axis=-1, keepdims=True)).astype(np.float32)
