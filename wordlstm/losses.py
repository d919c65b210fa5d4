"""The model's own losses and embedding constraint, in `keras.ops` so every backend runs them.

Every loss gets target ids [B, T] (-1 where nothing is scored) and returns a loss per
position; masked positions cost 0. This module imports Keras: `model` imports it only when a
network is built or compiled, so commands that need no network never load Keras.

Not registered with Keras: only the core (no loss, no constraint) is ever saved whole;
checkpoints hold weights, and a resumed run builds its losses with the table
(`model.make_loss`). `CUSTOM_OBJECTS` names them by class name (`model.custom_objects`).
"""

from __future__ import annotations

from typing import Any

from .backend import import_keras

keras: Any = import_keras()  # chooses the backend first
ops = keras.ops


def _unit(y):
    """Rows scaled to unit length (in keras.ops: inside the loss graph)."""
    return y / ops.sqrt(ops.sum(y * y, axis=-1, keepdims=True) + 1e-12)


def _flat(y_true, y_pred, width):
    """(ids with masked positions at 0, which positions count, predictions) as flat rows."""
    ids = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    valid = ids >= 0
    return ops.where(valid, ids, 0), valid, ops.reshape(y_pred, (-1, width))


def _per_position(loss, valid, y_true):
    """The flat loss back in the targets' shape, masked positions at 0."""
    return ops.reshape(ops.where(valid, loss, 0.0), ops.shape(y_true))


class ZeroLastRow(keras.constraints.Constraint):
    """Keeps the embedding's last row (UNK) at zero while the rest trains."""

    def __call__(self, w):
        keep = ops.concatenate([ops.ones((ops.shape(w)[0] - 1, 1), w.dtype),
                                ops.zeros((1, 1), w.dtype)], axis=0)
        return w * keep

    def get_config(self):
        return {}


class ContrastiveLoss(keras.losses.Loss):
    """Cross-entropy of the true word against in-batch negatives, on cosines divided by
    `temperature` (InfoNCE; a sampled softmax).

    The negatives are the batch's first `negatives` target words, so they are drawn by
    word frequency: the cosine learns how much likelier a word is after this context than
    in general (the log-frequency correction of sampled softmax), and decoding adds the
    log frequency back (decoding.PriorDecoder). It costs one [B*T, negatives] product,
    nothing per vocabulary word.
    """

    def __init__(self, table=None, vocab_size=0, temperature=0.05, negatives=2048,
                 name="contrastive", **kwargs):
        super().__init__(name=name, **kwargs)
        self.table = table
        self.vocab_size = int(vocab_size)
        self.temperature = float(temperature)
        self.negatives = int(negatives)

    def call(self, y_true, y_pred):
        ids, valid, pred = _flat(y_true, y_pred, ops.shape(y_pred)[-1])
        pred = _unit(pred)
        true = _unit(ops.take(self.table, ids, axis=0))
        # The batch's sequences come shuffled, so its first positions are a random sample
        # of whole sequences (a slice works for any batch shape on every backend).
        neg_ids, neg = ids[:self.negatives], true[:self.negatives]
        logits = ops.matmul(pred, ops.transpose(neg)) / self.temperature  # [N, K]
        # The true word among the negatives is not a negative.
        logits = ops.where(ops.equal(ids[:, None], neg_ids[None, :]), -1e4, logits)
        positive = ops.sum(pred * true, axis=-1) / self.temperature
        both = ops.concatenate([positive[:, None], logits], axis=-1)
        return _per_position(ops.logsumexp(both, axis=-1) - positive, valid, y_true)

    def get_config(self):
        return {"name": self.name, "vocab_size": self.vocab_size,
                "temperature": self.temperature, "negatives": self.negatives}


class MarginLoss(keras.losses.Loss):
    """Max-margin against the most similar wrong word of the whole vocabulary:
    max(0, margin + cos(pred, wrong) - cos(pred, true)); the search for the wrong word is
    one [B*T, vocab] product without gradient."""

    def __init__(self, table=None, vocab_size=0, margin=0.5, name="margin", **kwargs):
        super().__init__(name=name, **kwargs)
        self.table, self.vocab_size, self.margin = table, int(vocab_size), float(margin)

    def call(self, y_true, y_pred):
        ids, valid, pred = _flat(y_true, y_pred, ops.shape(y_pred)[-1])
        pred = _unit(pred)
        table = _unit(self.table[:self.vocab_size])
        cos = ops.matmul(ops.stop_gradient(pred), ops.transpose(ops.stop_gradient(table)))
        cos = ops.where(ops.one_hot(ids, self.vocab_size) > 0, -2.0, cos)
        wrong = ops.take(table, ops.argmax(cos, axis=-1), axis=0)
        true = ops.take(table, ids, axis=0)
        loss = ops.relu(self.margin + ops.sum(pred * wrong, -1) - ops.sum(pred * true, -1))
        return _per_position(loss, valid, y_true)

    def get_config(self):
        return {"name": self.name, "vocab_size": self.vocab_size, "margin": self.margin}


class VectorLoss(keras.losses.Loss):
    """The losses that look only at the true word's unit vector: "cosine" (the classic
    recipe), "mse", and "vmf", the von Mises-Fisher NLL of Kumar & Tsvetkov (ICLR 2019)
    with both their regularisers: -log C_m(k) - l2 * pred.true + l1 * k."""

    def __init__(self, table=None, vocab_size=0, kind="cosine", dim=200, l1=0.02, l2=0.1,
                 name="vector", **kwargs):
        super().__init__(name=name, **kwargs)
        self.table, self.vocab_size, self.kind = table, int(vocab_size), kind
        self.dim, self.l1, self.l2 = int(dim), float(l1), float(l2)

    def call(self, y_true, y_pred):
        ids, valid, pred = _flat(y_true, y_pred, ops.shape(y_pred)[-1])
        true = _unit(ops.take(self.table, ids, axis=0))
        if self.kind == "cosine":
            loss = -ops.sum(_unit(pred) * true, -1)
        elif self.kind == "mse":
            loss = ops.mean(ops.square(pred - true), -1)
        else:
            kappa = ops.sqrt(ops.sum(pred * pred, axis=-1) + 1e-12)
            v = self.dim / 2 - 1
            root = ops.sqrt((v + 1) ** 2 + kappa ** 2)
            neg_log_c = root - (v - 1) * ops.log(v - 1 + root)  # up to a constant
            loss = neg_log_c - self.l2 * ops.sum(pred * true, -1) + self.l1 * kappa
        return _per_position(loss, valid, y_true)

    def get_config(self):
        return {"name": self.name, "vocab_size": self.vocab_size, "kind": self.kind,
                "dim": self.dim, "l1": self.l1, "l2": self.l2}


class MaskedSoftmaxLoss(keras.losses.Loss):
    """Cross-entropy of the softmax head's logits, per position, masked targets free."""

    def __init__(self, name="softmax", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        ids, valid, logits = _flat(y_true, y_pred, ops.shape(y_pred)[-1])
        true = ops.take_along_axis(logits, ids[:, None], axis=-1)[:, 0]
        return _per_position(ops.logsumexp(logits, axis=-1) - true, valid, y_true)


CUSTOM_OBJECTS = {cls.__name__: cls for cls in (ZeroLastRow, ContrastiveLoss, MarginLoss,
                                                  VectorLoss, MaskedSoftmaxLoss)}
