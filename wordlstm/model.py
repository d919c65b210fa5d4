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
        for f in ("window", "units", "layers", "negatives"):
            if not isinstance(getattr(self, f), int) or not 1 <= getattr(self, f) <= 1 << 20:
                raise UserError(f"--{f} must be a positive integer")
        if not 0 <= self.dropout < 1:
            raise UserError("--dropout must be in [0, 1)")
        if self.loss not in LOSSES or self.target not in TARGETS or self.head not in HEADS:
            raise UserError(f"unknown loss/target/head {self.loss!r}/{self.target!r}/{self.head!r}")
        if not self.loss_temperature > 0:
            raise UserError("--loss-temperature must be positive")
        if not self.margin >= 0:
            raise UserError("--margin must not be negative")

    def to_json(self) -> dict:
        """config.json's "model" record (its key for the loss temperature: "temperature")."""
        return {_JSON_NAMES.get(k, k): v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        data = {_FIELD_NAMES.get(k, k): v for k, v in data.items()}
        return cls(**{k: v for k, v in data.items() if k in names})


_JSON_NAMES = {"loss_temperature": "temperature"}  # field -> config.json key (format 2)
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
    emb = layers.Embedding(cfg.vocab_size + 1, cfg.dim, trainable=cfg.train_embedding,
                           embeddings_constraint=custom_objects()["ZeroLastRow"]()
                           if cfg.train_embedding else None, name="word_embedding")
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
    losses = custom_objects()
    if cfg.head == "softmax":
        return losses["MaskedSoftmaxLoss"]()
    if cfg.loss == "contrastive":
        return losses["ContrastiveLoss"](table, cfg.vocab_size, cfg.loss_temperature,
                                           cfg.negatives)
    if cfg.loss == "margin":
        return losses["MarginLoss"](table, cfg.vocab_size, cfg.margin)
    return losses["VectorLoss"](table, cfg.vocab_size, cfg.loss, cfg.dim)


_CUSTOM: dict = {}


def custom_objects() -> dict:
    """The model's own losses and constraint, written with `keras.ops` so every backend runs
    them. Defined on first use, so that importing this module does not import Keras.

    Every loss gets target ids [B, T] (-1 where nothing is scored) and returns a loss per
    position; masked positions cost 0.
    """
    if _CUSTOM:
        return _CUSTOM
    from .backend import import_keras

    keras = import_keras()
    from keras import ops

    def unit(y):
        return y / ops.sqrt(ops.sum(y * y, axis=-1, keepdims=True) + 1e-12)

    def flat(y_true, y_pred, width):
        ids = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        valid = ids >= 0
        return ops.where(valid, ids, 0), valid, ops.reshape(y_pred, (-1, width))

    def per_position(loss, valid, y_true):
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
            ids, valid, pred = flat(y_true, y_pred, ops.shape(y_pred)[-1])
            pred = unit(pred)
            true = unit(ops.take(self.table, ids, axis=0))
            # The batch's sequences come shuffled, so its first positions are a random sample
            # of whole sequences (a slice works for any batch shape on every backend).
            neg_ids, neg = ids[:self.negatives], true[:self.negatives]
            logits = ops.matmul(pred, ops.transpose(neg)) / self.temperature  # [N, K]
            # The true word among the negatives is not a negative.
            logits = ops.where(ops.equal(ids[:, None], neg_ids[None, :]), -1e4, logits)
            positive = ops.sum(pred * true, axis=-1) / self.temperature
            both = ops.concatenate([positive[:, None], logits], axis=-1)
            return per_position(ops.logsumexp(both, axis=-1) - positive, valid, y_true)

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
            ids, valid, pred = flat(y_true, y_pred, ops.shape(y_pred)[-1])
            pred = unit(pred)
            table = unit(self.table[:self.vocab_size])
            cos = ops.matmul(ops.stop_gradient(pred), ops.transpose(ops.stop_gradient(table)))
            cos = ops.where(ops.one_hot(ids, self.vocab_size) > 0, -2.0, cos)
            wrong = ops.take(table, ops.argmax(cos, axis=-1), axis=0)
            true = ops.take(table, ids, axis=0)
            loss = ops.relu(self.margin + ops.sum(pred * wrong, -1) - ops.sum(pred * true, -1))
            return per_position(loss, valid, y_true)

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
            ids, valid, pred = flat(y_true, y_pred, ops.shape(y_pred)[-1])
            true = unit(ops.take(self.table, ids, axis=0))
            if self.kind == "cosine":
                loss = -ops.sum(unit(pred) * true, -1)
            elif self.kind == "mse":
                loss = ops.mean(ops.square(pred - true), -1)
            else:
                kappa = ops.sqrt(ops.sum(pred * pred, axis=-1) + 1e-12)
                v = self.dim / 2 - 1
                root = ops.sqrt((v + 1) ** 2 + kappa ** 2)
                neg_log_c = root - (v - 1) * ops.log(v - 1 + root)  # up to a constant
                loss = neg_log_c - self.l2 * ops.sum(pred * true, -1) + self.l1 * kappa
            return per_position(loss, valid, y_true)

        def get_config(self):
            return {"name": self.name, "vocab_size": self.vocab_size, "kind": self.kind,
                    "dim": self.dim, "l1": self.l1, "l2": self.l2}

    class MaskedSoftmaxLoss(keras.losses.Loss):
        """Cross-entropy of the softmax head's logits, per position, masked targets free."""

        def __init__(self, name="softmax", **kwargs):
            super().__init__(name=name, **kwargs)

        def call(self, y_true, y_pred):
            ids, valid, logits = flat(y_true, y_pred, ops.shape(y_pred)[-1])
            true = ops.take_along_axis(logits, ids[:, None], axis=-1)[:, 0]
            return per_position(ops.logsumexp(logits, axis=-1) - true, valid, y_true)

    # Not registered with Keras: only the core (no loss, no constraint) is ever saved whole;
    # checkpoints hold weights, and a resumed run builds its losses with the table (make_loss).
    for cls in (ZeroLastRow, ContrastiveLoss, MarginLoss, VectorLoss, MaskedSoftmaxLoss):
        _CUSTOM[cls.__name__] = cls
    return _CUSTOM
