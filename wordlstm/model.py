"""The network: a window of word ids -> embedding (from word2vec) -> LSTM -> next word's vector.

Plain Keras 3 (`import keras`), so it runs on TensorFlow, JAX or PyTorch. The LSTM keeps the
settings (tanh/sigmoid, no recurrent dropout, no mask) that let every backend use its fused
cuDNN kernel on a GPU. The input embedding has one extra row, UNK, fixed at zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

LOSSES = ("cosine", "mse")
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
    loss: str = "cosine"
    train_embedding: bool = False
    target: str = "raw"  # "raw" or "centered" unit word vectors (see Vectors.target_space)
    head: str = "vector"  # or "softmax": a distribution over the vocabulary (the baseline)

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


def compile_model(model, cfg: ModelConfig, learning_rate: float = 1e-3):
    from .backend import import_keras

    keras = import_keras()

    optimizer = keras.optimizers.Adam(learning_rate, clipnorm=1.0)
    if cfg.head == "softmax":
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])
        return model
    if cfg.loss not in LOSSES:
        raise ValueError(f"unknown loss {cfg.loss!r}")
    loss = (keras.losses.CosineSimilarity(name="cosine") if cfg.loss == "cosine"
            else keras.losses.MeanSquaredError(name="mse"))
    model.compile(optimizer=optimizer, loss=loss,
                  metrics=[keras.metrics.CosineSimilarity(name="cos")])
    return model


def input_embedding(vectors_matrix: np.ndarray) -> np.ndarray:
    """The embedding table: word2vec rows, then a zero row for UNK."""
    dim = vectors_matrix.shape[1]
    return np.vstack([vectors_matrix, np.zeros((1, dim), np.float32)]).astype(np.float32)
