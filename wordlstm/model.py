"""The network: word ids -> embedding -> stacked LSTM -> the next word's vector, at every position.

Plain Keras 3 (`import keras`), so it runs on TensorFlow, JAX or PyTorch. Two parts:

- the **embedding**: one row per vocabulary word (initialised from word2vec) and a last row
  for UNK held at zero. The vocabulary's vectors are both the input and, as unit vectors,
  what the head's output is compared with; with `train_embedding` they are fine-tuned
  jointly with the LSTM (input and target tied) and ship as the model's `vectors.bin`.
- the **core** (`build_core`): dropout, LSTM layers with `return_sequences`, dropout, and a
  dense head: the next word's `dim`-d vector (vector head) or logits over the vocabulary
  (softmax head, the baseline). The core is what `model.keras` holds; generation runs it in
  numpy (stepmodel.StepModel) one step at a time.

The LSTM keeps the settings (tanh/sigmoid, no recurrent dropout, no mask) that let every
backend use its fused cuDNN kernel on a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from .errors import UserError
from .numeric import with_unknown_row

# Losses of the vector head. "contrastive" compares the prediction with other words' vectors
# (the batch's other targets), the rest only with the true word's (bench/RESULTS.md).
LOSSES = ("contrastive", "cosine", "mse", "vmf", "margin")
TARGETS = ("raw", "centered")
HEADS = ("vector", "softmax")
# Each integer setting's bounds, the one place they are stated (training's options and a model
# dir's config.json alike): past them no network trains or loads here. vocab_size 0: not yet
# known (it comes from the vectors).
BOUNDS = {"window": (1, 100_000), "dim": (1, 4096), "vocab_size": (0, 5_000_000),
          "units": (1, 65_536), "layers": (1, 64), "negatives": (1, 1 << 20)}


@dataclass
class ModelConfig:
    """Architecture settings; saved in config.json and used to rebuild the same network."""

    window: int = 32  # tokens per training sequence (every position is a target)
    dim: int = 200  # vector size: from the word2vec vectors
    vocab_size: int = 0  # from the vectors
    units: int = 512  # LSTM size
    layers: int = 2  # stacked LSTMs
    dropout: float = 0.4  # on the embedding, between layers and before the head
    loss: str = "contrastive"  # of the vector head, see LOSSES
    train_embedding: bool = True  # fine-tune the vocabulary's vectors (input and target tied)
    target: str = "centered"  # start from word2vec vectors minus their mean, or "raw"
    head: str = "vector"  # or "softmax": a distribution over the vocabulary (the baseline)
    loss_temperature: float = 0.05  # of the contrastive loss ("temperature" in config.json)
    margin: float = 0.5  # of the margin loss
    negatives: int = 2048  # contrastive loss: in-batch negatives (the batch's first targets)

    def __post_init__(self):
        # Errors name the field (config.json's readers prefix "model.") and the training
        # option that sets it.
        for f, (lo, hi) in BOUNDS.items():
            value = getattr(self, f)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise UserError(f"{_named(f)} must be an integer in [{lo}, {hi:,}], not {value!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0 <= self.dropout < 1:
            raise UserError(f"{_named('dropout')} must be in [0, 1), not {self.dropout!r}")
        for f, choices in (("loss", LOSSES), ("target", TARGETS), ("head", HEADS)):
            if getattr(self, f) not in choices:
                raise UserError(f"{_named(f)} must be one of {', '.join(choices)}, not "
                                f"{getattr(self, f)!r}")
        if not isinstance(self.train_embedding, bool):
            raise UserError(f"{_named('train_embedding')} must be true or false, not "
                            f"{self.train_embedding!r}")
        for f, positive in (("loss_temperature", True), ("margin", False)):
            value = getattr(self, f)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not (value > 0 if positive else value >= 0) or value == float("inf"):
                raise UserError(f"{_named(f)} must be a {'positive' if positive else 'non-negative'}"
                                f" number, not {value!r}")

    def to_json(self) -> dict:
        """config.json's "model" record (its key for the loss temperature: "temperature")."""
        return {_JSON_NAMES.get(k, k): v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> ModelConfig:
        """A "model" record re-typed (as nanoGPT's GPTConfig(**model_args)): missing keys
        take their defaults, an unknown key is refused (it would be a setting this version
        does not build: the network would not be the one saved)."""
        names = {f.name for f in fields(cls)}
        data = {_FIELD_NAMES.get(k, k): v for k, v in data.items()}
        unknown = sorted(str(k) for k in set(data) - names)
        if unknown:
            raise UserError(f"unknown settings {', '.join(unknown)[:80]}")
        return cls(**data)


_JSON_NAMES = {"loss_temperature": "temperature"}  # field -> config.json key (format 2)


def _named(f: str) -> str:
    """A field as errors name it: with the `train` option that sets it (dim and vocab_size
    come from the vectors)."""
    return f if f in ("dim", "vocab_size") else f"{f} (--{f.replace('_', '-')})"
_FIELD_NAMES = {v: k for k, v in _JSON_NAMES.items()}


def initial_embedding(vectors_matrix: np.ndarray, target: str) -> np.ndarray:
    """The embedding table: the word2vec rows (minus their mean for "centered": word2vec
    vectors share a large common direction that makes every prediction look close to many
    words), then a zero row for UNK."""
    m = np.asarray(vectors_matrix, np.float32)
    if target == "centered":
        m = m - m.mean(axis=0, keepdims=True)
    return with_unknown_row(m)


def build_core(cfg: ModelConfig, carry_batch: int | None = None, dtype: str | None = None):
    """Vectors [B, T, dim] -> outputs [B, T, dim or vocab]: what model.keras ships.

    `carry_batch` builds the training variant that carries its LSTM state from one batch to
    the next (truncated backpropagation through time over `carry_batch` streams read in
    order); it has the same weights as the plain core, which is what ships. `dtype`
    "float16" stores the weights at half the size (inference runs in numpy, in float32)."""
    from .backend import import_keras

    keras = import_keras()
    from keras import layers

    if carry_batch:
        x = inp = keras.Input(batch_shape=(carry_batch, None, cfg.dim), name="word_vectors")
    else:
        x = inp = keras.Input(shape=(None, cfg.dim), name="word_vectors")
    if cfg.dropout:
        x = layers.Dropout(cfg.dropout, name="dropout_in")(x)
    # A stored float16 copy gets its weights set right after it is built: zero initialisers
    # (the default orthogonal one needs a QR decomposition JAX has no float16 kernel for).
    init = {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"} if dtype else {}
    for i in range(cfg.layers):
        if carry_batch:
            x = _carried_lstm(keras)(cfg.units, return_sequences=True, stateful=True,
                                     name=f"lstm_{i}")(x)
        else:
            x = layers.LSTM(cfg.units, return_sequences=True, name=f"lstm_{i}", dtype=dtype,
                            **init)(x)
        if cfg.dropout:
            x = layers.Dropout(cfg.dropout, name=f"dropout_{i}")(x)
    # float32 output even under mixed precision: the loss compares unit vectors closely.
    if cfg.head == "softmax":
        out = layers.Dense(cfg.vocab_size, name="to_logits", dtype=dtype or "float32",
                           kernel_initializer="zeros" if dtype else "glorot_uniform")(x)
    else:
        out = layers.Dense(cfg.dim, name="to_vector", dtype=dtype or "float32",
                           kernel_initializer="zeros" if dtype else "glorot_uniform")(x)
    return keras.Model(inp, out, name="core")


_CARRIED: list = []


def _carried_lstm(keras):
    """A stateful LSTM whose state variables are tracked, so that every backend carries them
    from batch to batch: Keras creates them untracked, and JAX's functional training step
    then drops every update (the state stayed zero)."""
    if not _CARRIED:
        class CarriedLSTM(keras.layers.LSTM):
            def _create_state_variables(self, batch_size):
                super()._create_state_variables(batch_size)
                for v in self.states:
                    self._track_variable(v)

        _CARRIED.append(CarriedLSTM)
    return _CARRIED[0]


def reset_carried_state(core) -> None:
    """Zero the carried state of a `carry_batch` core (at the start of each epoch)."""
    for layer in core.layers:
        if layer.name.startswith("lstm_") and getattr(layer, "stateful", False):
            layer.reset_states()


def set_core_weights(core, lstm, kernel, bias) -> None:
    """Put (kernel, recurrent, bias) of each LSTM layer and the head's weights into a core
    (plain or carried: the carried one's state variables are left alone)."""
    cells = [layer.cell for layer in core.layers if layer.name.startswith("lstm_")]
    head = [layer for layer in core.layers if layer.name in ("to_vector", "to_logits")]
    if len(cells) != len(lstm) or len(head) != 1:
        raise UserError("the weights do not fit this network (layers or head differ)")
    for cell, weights in zip(cells, lstm):
        cell.set_weights([np.asarray(w, np.float32) for w in weights])
    head[0].set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])


def core_weights(core) -> tuple[list, np.ndarray, np.ndarray]:
    """(LSTM layers as (kernel, recurrent, bias), head kernel, head bias) of a core model,
    found by the layer names `build_core` gives them (a carried state is not a weight)."""
    lstm = [tuple(np.asarray(w, np.float32) for w in layer.cell.get_weights())
            for layer in core.layers if layer.name.startswith("lstm_")]
    head = [layer for layer in core.layers if layer.name in ("to_vector", "to_logits")]
    if not lstm or len(head) != 1:
        raise UserError("model.keras is not a wordlstm core model (no LSTM layers or head)")
    kernel, bias = head[0].get_weights()
    return lstm, np.asarray(kernel, np.float32), np.asarray(bias, np.float32)


def build_model(cfg: ModelConfig, embedding: np.ndarray | None = None,
                carry_batch: int | None = None):
    """ids [B, T] -> outputs [B, T, ...]: the embedding (vocab + UNK rows) and the core
    (`carry_batch`: the core that carries its state across batches, see build_core)."""
    from .backend import import_keras

    keras = import_keras()
    from keras import layers

    if carry_batch:
        ids = keras.Input(batch_shape=(carry_batch, None), dtype="int32", name="word_ids")
    else:
        ids = keras.Input(shape=(None,), dtype="int32", name="word_ids")
    from .losses import ZeroLastRow

    emb = layers.Embedding(cfg.vocab_size + 1, cfg.dim, trainable=cfg.train_embedding,
                           embeddings_constraint=ZeroLastRow() if cfg.train_embedding else None,
                           name="word_embedding")
    model = keras.Model(ids, build_core(cfg, carry_batch)(emb(ids)), name="wordlstm")
    if embedding is not None:
        if embedding.shape != (cfg.vocab_size + 1, cfg.dim):
            raise ValueError(f"embedding shape {embedding.shape} != {(cfg.vocab_size + 1, cfg.dim)}")
        emb.set_weights([embedding.astype("float32")])
    return model


def compile_model(model, cfg: ModelConfig, learning_rate: float = 1e-3, ema: float = 0.0):
    """Attach the optimizer and the loss; the vector losses read the embedding table itself,
    so with `train_embedding` their gradients reach the target vectors too. With `ema`, the
    optimizer also keeps a moving average of the weights (train.averaged_weights)."""
    from .backend import import_keras

    keras = import_keras()
    optimizer = keras.optimizers.Adam(learning_rate, clipnorm=1.0, use_ema=ema > 0,
                                      ema_momentum=ema or 0.99)
    table = model.get_layer("word_embedding").embeddings
    model.compile(optimizer=optimizer, loss=make_loss(cfg, table))
    return model


def make_loss(cfg: ModelConfig, table):
    """The loss for `cfg`; `table` is the embedding variable (or array), [vocab + 1, dim]."""
    from . import losses

    if cfg.head == "softmax":
        return losses.MaskedSoftmaxLoss()
    if cfg.loss == "contrastive":
        return losses.ContrastiveLoss(table, cfg.vocab_size, cfg.loss_temperature, cfg.negatives)
    if cfg.loss == "margin":
        return losses.MarginLoss(table, cfg.vocab_size, cfg.margin)
    return losses.VectorLoss(table, cfg.vocab_size, cfg.loss, cfg.dim)


def custom_objects() -> dict:
    """The model's own losses and constraint by class name (`losses.CUSTOM_OBJECTS`);
    imported on first use, so that importing this module does not import Keras."""
    from .losses import CUSTOM_OBJECTS

    return CUSTOM_OBJECTS
