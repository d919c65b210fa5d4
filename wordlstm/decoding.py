"""Scoring: the model's outputs as log-probabilities over the vocabulary (decoders).

The vector head's output is compared with every word's unit vector: cosine / tau, plus (the
"prior" decoding, the default) the log word frequency weighted by `prior_scale`, both fitted
by maximum likelihood after training (`fit_decoding`); `--decode cosine` uses the cosine
alone. The softmax head's outputs are logits already. `make_decoder` is the one factory that
training's validation, evaluation and generation all use.
"""

from __future__ import annotations

import numpy as np

from .errors import UserError
from .numeric import log_softmax, logsumexp, unit_rows

DECODINGS = ("prior", "cosine")  # of the vector head (`train --decode`, `evaluate --decode`)


class CosineDecoder:
    """The vector head's output compared with every vocabulary word: cosine / tau, one matrix
    product against pre-normalised unit vectors. This alone is the classic nearest-neighbour
    decoding (`--decode cosine`); `tau` turns it into a distribution (fitted, see fit_tau)."""

    def __init__(self, unit_vectors: np.ndarray, tau: float = 1.0):
        self.unit_t = np.ascontiguousarray(unit_vectors.T)  # [dim, vocab]: one GEMM per step
        self.tau = float(tau)

    def cosines(self, y: np.ndarray) -> np.ndarray:
        return unit_rows(y) @ self.unit_t

    def logits(self, y: np.ndarray) -> np.ndarray:
        return self.cosines(y) / np.float32(self.tau)

    def logprobs(self, y: np.ndarray) -> np.ndarray:
        """log p(word | context) for every vocabulary word, [batch, vocab]."""
        return log_softmax(self.logits(y))


class PriorDecoder(CosineDecoder):
    """Cosine evidence combined with how often each word occurs (Bayes' rule):
    log p(w | context) = cos(prediction, w) / tau + prior_scale * log p(w) + const.

    The contrastive loss learns the cosine as an evidence ratio against frequency-drawn
    negatives, so the log frequency completes it; plain nearest neighbour treats 的 and a
    name seen twice as equally likely a priori. `tau` and `prior_scale` (1 in theory, a
    little less in practice: it measured better on held-out text) are fitted by maximum
    likelihood on training text after training (`fit_decoding`).
    """

    def __init__(self, unit_vectors: np.ndarray, log_prior: np.ndarray, tau: float,
                 prior_scale: float = 1.0):
        super().__init__(unit_vectors, tau)
        self.log_prior = np.asarray(prior_scale * np.asarray(log_prior), np.float32)

    def logits(self, y: np.ndarray) -> np.ndarray:
        return self.cosines(y) / np.float32(self.tau) + self.log_prior


class SoftmaxDecoder:
    """For the softmax head: its outputs are logits already."""

    def logprobs(self, y: np.ndarray) -> np.ndarray:
        return log_softmax(np.asarray(y, np.float32))


def log_prior(target_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """log p(w) of each word among the training targets, add-one smoothed."""
    target_ids = target_ids[(target_ids >= 0) & (target_ids < vocab_size)]
    counts = np.bincount(target_ids, minlength=vocab_size).astype(np.float64) + 1.0
    return np.log(counts / counts.sum()).astype(np.float32)


def _nll(cosines, truth, log_prior_, tau: float, scale: float, rows: int = 2048) -> float:
    """Mean negative log-likelihood of the true words under softmax(cos / tau + scale log p)."""
    idx = np.arange(len(truth))
    prior = np.float32(scale) * np.asarray(log_prior_, np.float32)
    total = 0.0
    for i in range(0, len(truth), rows):
        z = cosines[i:i + rows] * np.float32(1.0 / tau) + prior
        total += float((logsumexp(z, axis=1) - z[idx[i:i + rows] - i, truth[i:i + rows]]).sum())
    return total / max(len(truth), 1)


def fit_tau(cosines: np.ndarray, truth: np.ndarray, log_prior_: np.ndarray,
            bounds=(0.005, 1.0), steps: int = 14, scale: float = 1.0,
            advance=lambda n=1: None) -> float:
    """The tau that maximises the likelihood of the true words under
    softmax(cos / tau + scale log p(w)): golden-section search on log tau (the likelihood is
    unimodal in it), in row chunks so memory stays at 2,048 x vocabulary. `advance()` is
    called once a pass over `cosines` (steps + 2 of them)."""
    lo, hi = np.log(bounds[0]), np.log(bounds[1])

    def nll(x):
        advance()
        return _nll(cosines, truth, log_prior_, np.exp(x), scale)

    return float(np.exp(_golden(nll, lo, hi, steps)))


def fit_decoding(cosines: np.ndarray, truth: np.ndarray, log_prior_: np.ndarray,
                 steps: int = 12) -> tuple[float, float]:
    """(tau, prior_scale) by maximum likelihood: tau, then the prior's weight, then tau
    again (coordinate search; each is unimodal)."""
    from .progress import step

    with step(f"fitting the decoding on {len(truth):,} positions", 3 * (steps + 2),
              "passes") as advance:
        tau = fit_tau(cosines, truth, log_prior_, steps=steps, advance=advance)

        def nll(b):
            advance()
            return _nll(cosines, truth, log_prior_, tau, b)

        scale = _golden(nll, 0.3, 1.5, steps)
        tau = fit_tau(cosines, truth, log_prior_, steps=steps, scale=scale, advance=advance)
    return tau, float(scale)


def _golden(f, lo: float, hi: float, steps: int) -> float:
    """The minimum of a unimodal function on [lo, hi] by golden-section search."""
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(steps):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    return float(a if fa < fb else b)


def make_decoder(decoding: dict | None, matrix: np.ndarray, log_prior_: np.ndarray | None = None,
                 head: str = "vector", kind: str | None = None):
    """How a model's outputs become log-probabilities over its vocabulary: the one factory
    for generation, evaluation and training's validation.

    `decoding` is config.json's "decoder" record ({"kind", "tau", "prior_scale",
    "cosine_tau"}); `matrix` the vocabulary's vectors (the model's own: vectors.bin), whose
    unit rows the vector head is compared with. `kind` overrides the decoding the model was
    trained with ("cosine" or "prior"), to compare them; "prior" needs `log_prior_`.
    """
    if head == "softmax":
        return SoftmaxDecoder()
    unit = unit_rows(matrix)
    decoding = dict(decoding or {"kind": "cosine"})
    kind = kind or decoding["kind"]
    if kind == "cosine":
        return CosineDecoder(unit, decoding.get("cosine_tau", 1.0))
    if kind != "prior" or log_prior_ is None or "tau" not in decoding:
        raise UserError(f"this model has no {kind!r} decoding (it was trained with "
                        f"{decoding['kind']!r})")
    return PriorDecoder(unit, log_prior_, decoding["tau"], decoding.get("prior_scale", 1.0))
