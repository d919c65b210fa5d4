"""Dynamic evaluation (Krause et al. 2018), of the head: the model adapts to the text it reads.

After each word, one gradient step on the head's weights (the dense layer from the last LSTM
layer to the predicted vector) towards the word that really came: a novel's next page shares
its people and phrasing with the page before, and the adapted head predicts them better.
Only the head adapts (its gradient is closed-form, so this runs in numpy without a training
framework, and costs about one extra product with the vocabulary a word); the LSTM layers and
the vectors stay as trained, and the model's files are never written.
"""

from __future__ import annotations

import numpy as np

from .stepmodel import StepModel


def _head_gradient(h, y, unit_t, unit, log_prior, tau, target):
    """d(-log p(target)) / d(kernel, bias) of the prior decoding, for one position."""
    norm = max(float(np.linalg.norm(y)), 1e-8)
    yhat = (y / norm).astype(np.float32)
    z = (yhat @ unit_t) * np.float32(1 / tau) + log_prior
    z = z - z.max()
    p = np.exp(z)
    p /= p.sum()
    g_hat = ((p @ unit - unit[target]) / tau).astype(np.float64)  # d loss / d yhat
    yhat = yhat.astype(np.float64)
    g_y = (g_hat - yhat * float(yhat @ g_hat)) / norm
    return np.outer(h, g_y), g_y, float(np.log(max(p[target], 1e-300)))


def dynamic_logprobs(step: StepModel, decoder, ids: np.ndarray, targets: np.ndarray,
                     lr: float) -> tuple[np.ndarray, np.ndarray]:
    """(log p of every target, outputs) reading `ids` in order as one stream, the head
    adapted after every scored word with learning rate `lr`. The prior decoding only (the
    vector head's default)."""
    logp, outputs, _, _ = _read(step, decoder, ids, targets, lr)
    return logp, outputs


def adapt_head(step: StepModel, decoder, ids, lr: float, most: int = 1024):
    """(kernel, bias) of the head after reading `ids` (at most their last `most`) with
    dynamic evaluation: what generation uses after a user's prompt (it adapts to the user's
    text, never to its own words)."""
    ids = np.asarray(list(ids)[-(most + 1):], np.int64)
    if lr <= 0 or len(ids) < 2:
        return step.dense_kernel, step.dense_bias
    unk = step.embedding.shape[0] - 1
    targets = np.where(ids[1:] >= unk, -1, ids[1:])
    _, _, kernel, bias = _read(step, decoder, ids, targets, lr)
    return kernel.astype(np.float32), bias.astype(np.float32)


def _read(step: StepModel, decoder, ids, targets, lr: float):
    """Read `ids` as one stream, one SGD step on the head after every scored target:
    (log p of each target, outputs, final kernel, final bias). The model is not changed."""
    kernel, bias = step.dense_kernel.astype(np.float64), step.dense_bias.astype(np.float64)
    unit_t = np.ascontiguousarray(decoder.unit_t, np.float32)
    unit = np.ascontiguousarray(unit_t.T)
    prior = np.asarray(decoder.log_prior, np.float32)
    tau = float(decoder.tau)
    n = len(targets)
    logp = np.full(n, np.nan)
    outputs = np.zeros((n, kernel.shape[1]), np.float32)
    state = step.zero_state(1)
    for t in range(n):
        h, state = step.hidden(np.array([ids[t]], np.int64), state)
        h = h[0].astype(np.float64)
        y = h @ kernel + bias
        outputs[t] = y
        if targets[t] < 0:
            continue
        gk, gb, logp[t] = _head_gradient(h, y, unit_t, unit, prior, tau, int(targets[t]))
        kernel -= lr * gk
        bias -= lr * gb
    return logp, outputs, kernel, bias


LEARNING_RATES = (0.003, 0.01, 0.03)


def fit_dynamic_lr(step: StepModel, decoder, ids: np.ndarray, unk: int,
                   rates=LEARNING_RATES) -> float:
    """The learning rate (0: none helps) that gives the best log-likelihood on a stretch of
    training text `ids` read as one stream."""
    from .progress import step as progress_step

    targets = np.where(ids[1:] == unk, -1, ids[1:])
    ok = targets >= 0
    with progress_step("fitting dynamic evaluation", len(rates) + 1, "rates") as advance:
        best = float(np.nanmean(dynamic_logprobs(step, decoder, ids, targets, 0.0)[0][ok]))
        best_lr = 0.0
        advance()
        for lr in rates:
            ll = float(np.nanmean(dynamic_logprobs(step, decoder, ids, targets, lr)[0][ok]))
            advance()
            if ll > best:
                best, best_lr = ll, float(lr)
    return best_lr
