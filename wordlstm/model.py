"""The network: a window of word ids -> embedding (from word2vec) -> LSTM -> next word's vector.

Plain Keras 3 (`import keras`), so it runs on TensorFlow, JAX or PyTorch. The LSTM keeps the
settings (tanh/sigmoid, no recurrent dropout, no mask) that let every backend use its fused
cuDNN kernel on a GPU. The input embedding has one extra row, UNK, fixed at zero.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import numpy as np

# Losses of the vector head. "contrastive" and "margin" compare the prediction with other
# words' vectors, the rest only with the true word's (see bench/RESULTS.md for what each gives).
LOSSES = ("contrastive", "cosine", "mse", "vmf", "margin")
ID_TARGET_LOSSES = ("contrastive", "margin")  # trained on target ids, not target vectors
TARGETS = ("raw", "centered")
HEADS = ("vector", "softmax")


@dataclass
class ModelConfig:
    """Architecture settings; saved in config.json and used to rebuild the same network."""

    window: int = 20
    dim: int = 200
    vocab_size: int = 0
    units: int = 256
    layers: int = 1
    dropout: float = 0.0
    loss: str = "contrastive"
    train_embedding: bool = False
    target: str = "centered"  # or "raw" unit word vectors (see Vectors.target_space)
    head: str = "vector"  # or "softmax": a distribution over the vocabulary (the baseline)
    temperature: float = 0.05  # of the contrastive loss
    margin: float = 0.5  # of the margin loss

    def to_json(self) -> dict:
        return asdict(self)


def build_model(cfg: ModelConfig, embedding: np.ndarray | None = None):
    """Build (uncompiled) the vector-regression model; `embedding` is [vocab+1, dim]."""
    from .backend import import_keras

    keras = import_keras()
    from keras import layers

    ids = keras.Input(shape=(cfg.window,), dtype="int32", name="word_ids")
    emb = layers.Embedding(cfg.vocab_size + 1, cfg.dim, trainable=cfg.train_embedding,
                           name="word_embedding")
    x = emb(ids)
    for i in range(cfg.layers):
        last = i == cfg.layers - 1
        x = layers.LSTM(cfg.units, return_sequences=not last, name=f"lstm_{i}")(x)
        if cfg.dropout:
            x = layers.Dropout(cfg.dropout, name=f"dropout_{i}")(x)
    # float32 output even under mixed precision: the loss compares unit vectors closely.
    if cfg.head == "softmax":
        out = layers.Dense(cfg.vocab_size, name="to_logits", dtype="float32")(x)
    else:
        out = layers.Dense(cfg.dim, name="to_vector", dtype="float32")(x)
    model = keras.Model(ids, out, name="wordlstm")
    if embedding is not None:
        if embedding.shape != (cfg.vocab_size + 1, cfg.dim):
            raise ValueError(f"embedding shape {embedding.shape} != {(cfg.vocab_size + 1, cfg.dim)}")
        emb.set_weights([embedding.astype("float32")])
    return model


def compile_model(model, cfg: ModelConfig, learning_rate: float = 1e-3,
                  targets: np.ndarray | None = None):
    """Attach optimizer and loss; `targets` are the unit target vectors [vocab, dim]."""
    from .backend import import_keras

    keras = import_keras()

    optimizer = keras.optimizers.Adam(learning_rate, clipnorm=1.0)
    if cfg.head == "softmax":
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])
        return model
    loss = make_loss(cfg, targets)
    metrics = [] if cfg.loss in ID_TARGET_LOSSES else [keras.metrics.CosineSimilarity(name="cos")]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model


def make_loss(cfg: ModelConfig, targets: np.ndarray | None):
    from .backend import import_keras

    keras = import_keras()
    if cfg.loss not in LOSSES:
        raise ValueError(f"unknown loss {cfg.loss!r}")
    if cfg.loss == "cosine":
        return keras.losses.CosineSimilarity(name="cosine")
    if cfg.loss == "mse":
        return keras.losses.MeanSquaredError(name="mse")
    losses = vector_losses()
    if cfg.loss == "vmf":
        return losses["VonMisesFisherLoss"](dim=cfg.dim)
    if cfg.loss == "contrastive":
        return losses["ContrastiveLoss"](targets, temperature=cfg.temperature)
    return losses["MarginLoss"](targets, margin=cfg.margin)


_BOUND_TARGETS: list = []


@contextlib.contextmanager
def bound_targets(targets: np.ndarray | None):
    """While reloading a compiled checkpoint: the target matrix for losses that need one
    (it is not saved with the loss's config; it comes from the vectors). Also registers the
    loss classes, which a fresh process has not defined yet."""
    vector_losses()
    _BOUND_TARGETS.append(targets)
    try:
        yield
    finally:
        _BOUND_TARGETS.pop()


def _targets_or_bound(targets):
    if targets is None and _BOUND_TARGETS:
        targets = _BOUND_TARGETS[-1]
    if targets is None:
        raise ValueError("this loss needs the target vectors (model.bound_targets)")
    return np.asarray(targets, np.float32)


_LOSSES = {}


def vector_losses() -> dict:
    """The vector head's own losses, written with `keras.ops` so every backend runs them.

    Defined on first use, so that importing this module does not import Keras.
    """
    if _LOSSES:
        return _LOSSES
    from .backend import import_keras

    keras = import_keras()
    from keras import ops

    def unit(y):
        return y / ops.sqrt(ops.sum(y * y, axis=-1, keepdims=True) + 1e-12)

    class ContrastiveLoss(keras.losses.Loss):
        """Cross-entropy of the true word against the other targets of the batch, on cosines
        divided by `temperature` (InfoNCE with in-batch negatives).

        The negatives are the batch's other target words, so they are drawn from the word
        frequencies: the cosine learns how much likelier a word is after this context than
        in general, and decoding adds the log frequency back (generate.PriorDecoder). It costs
        one [batch, batch] product, nothing per vocabulary word. `y_true` are word ids.
        """

        def __init__(self, targets=None, temperature=0.05, name="contrastive", **kwargs):
            super().__init__(name=name, **kwargs)
            self.table = ops.convert_to_tensor(_targets_or_bound(targets))  # once, not per step
            self.temperature = float(temperature)

        def call(self, y_true, y_pred):
            ids = ops.cast(ops.reshape(y_true, (-1,)), "int32")
            pred = unit(y_pred)
            true = ops.take(self.table, ids, axis=0)
            cos = ops.matmul(pred, ops.transpose(true)) / self.temperature  # [B, B]
            # The same word elsewhere in the batch is not a negative.
            same = ops.equal(ids[:, None], ids[None, :])
            mine = ops.eye(ops.shape(cos)[0]) > 0
            logits = ops.where(ops.logical_and(same, ops.logical_not(mine)), -1e4, cos)
            positive = ops.sum(pred * true, axis=-1) / self.temperature
            return ops.logsumexp(logits, axis=-1) - positive

        def get_config(self):
            return {"name": self.name, "temperature": self.temperature}

    class MarginLoss(keras.losses.Loss):
        """Max-margin against the most similar wrong word of the whole vocabulary:
        max(0, margin + cos(pred, wrong) - cos(pred, true)). The search for the wrong word
        is one [batch, vocab] product without gradient. `y_true` are word ids."""

        def __init__(self, targets=None, margin=0.5, name="margin", **kwargs):
            super().__init__(name=name, **kwargs)
            targets = _targets_or_bound(targets)
            self.table = ops.convert_to_tensor(targets)
            self.vocab = int(targets.shape[0])
            self.margin = float(margin)

        def call(self, y_true, y_pred):
            ids = ops.cast(ops.reshape(y_true, (-1,)), "int32")
            table = self.table
            pred = unit(y_pred)
            cos = ops.matmul(ops.stop_gradient(pred), ops.transpose(table))
            cos = ops.where(ops.one_hot(ids, self.vocab) > 0, -2.0, cos)
            wrong = ops.take(table, ops.argmax(cos, axis=-1), axis=0)
            true = ops.take(table, ids, axis=0)
            return ops.relu(self.margin + ops.sum(pred * wrong, -1) - ops.sum(pred * true, -1))

        def get_config(self):
            return {"name": self.name, "margin": self.margin}

    class VonMisesFisherLoss(keras.losses.Loss):
        """Negative log-likelihood of the true unit vector under a von Mises-Fisher
        distribution whose mean direction and concentration (its norm) are the prediction,
        with both regularisers of Kumar & Tsvetkov (ICLR 2019):
        -log C_m(k) - l2 * pred.true + l1 * k, and their approximation of log C_m."""

        def __init__(self, dim=200, l1=0.02, l2=0.1, name="vmf", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dim, self.l1, self.l2 = int(dim), float(l1), float(l2)

        def call(self, y_true, y_pred):
            kappa = ops.sqrt(ops.sum(y_pred * y_pred, axis=-1) + 1e-12)
            v = self.dim / 2 - 1
            root = ops.sqrt((v + 1) ** 2 + kappa ** 2)
            neg_log_c = root - (v - 1) * ops.log(v - 1 + root)  # up to a constant
            return neg_log_c - self.l2 * ops.sum(y_pred * y_true, -1) + self.l1 * kappa

        def get_config(self):
            return {"name": self.name, "dim": self.dim, "l1": self.l1, "l2": self.l2}

    for cls in (ContrastiveLoss, MarginLoss, VonMisesFisherLoss):
        _LOSSES[cls.__name__] = keras.saving.register_keras_serializable("wordlstm")(cls)
    return _LOSSES


def input_embedding(vectors_matrix: np.ndarray) -> np.ndarray:
    """The embedding table: word2vec rows, then a zero row for UNK."""
    dim = vectors_matrix.shape[1]
    return np.vstack([vectors_matrix, np.zeros((1, dim), np.float32)]).astype(np.float32)
