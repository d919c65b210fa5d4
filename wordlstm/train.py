"""Training: id streams -> sequences -> the model, validated on held-out bits per character.

Every epoch ends with the held-out cross-entropy measured as `wordlstm evaluate` measures it
(numpy step model, the model's own decoding, open-vocabulary bits per character). When it
does not improve, the learning rate is halved (`lr_decay`); after `patience` such epochs
training stops, and the best epoch's weights are the ones that ship.

After every epoch the weights, the optimizer state and the history go to `OUT/checkpoint/`
(`state.json`, written last, names the files of its epoch, so a kill at any moment leaves a
consistent checkpoint); `--resume` continues from there with the same data order. The
finished model dir is written only at the end.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .card import char_baseline, corpus_record
from .dataset import CorpusIds, check_trainable, corpus_ids, lanes_dataset, sequences_dataset, targets_of
from .decoding import DECODINGS, CosineDecoder, fit_decoding, fit_tau, log_prior, make_decoder
from .errors import UserError
from .evaluate import cross_entropy, stream_outputs, target_logprobs
from .model import (
    ModelConfig,
    build_core,
    build_model,
    compile_model,
    core_weights,
    initial_embedding,
    reset_carried_state,
    set_core_weights,
)
from .modeldir import InferenceWeights, read_json, save_model_dir, vocab_hash
from .numeric import unit_rows, with_unknown_row
from .segment import SegmenterConfig
from .split import HoldOut
from .stepmodel import StepModel
from .textio import atomic_path, write_json
from .vectors import Vectors, load_vectors


@dataclass
class TrainConfig:
    """Optimisation settings; saved under "training" in config.json."""

    epochs: int = 30  # at most; early stopping on held-out bits/char usually ends it sooner
    batch_size: int = 64  # sequences per batch (x window targets each)
    learning_rate: float = 2e-3  # Adam
    lr_decay: float = 0.5  # learning rate factor after an epoch without improvement
    val_fraction: float = 0.05  # held out (split.HoldOut): never trained on
    seed: int = 1
    lines: bool = False  # a line corpus (poems, names): hold out random lines, not the tail
    devices: str = "1"  # "all" or a count: data-parallel training (backend.distribution_scope)
    precision: str = "float32"  # or "mixed"
    patience: int = 3  # stop after this many epochs without better held-out bits/char (0: never)
    decode: str = "prior"  # vector head: "prior" (cosine + word frequency) or "cosine"
    carry: bool = False  # carry the LSTM state from batch to batch, reading the text in
    # order (truncated BPTT): the network learns to use context longer than `window`, as
    # generation and evaluation use it (dataset.lanes_dataset)
    weights_dtype: str = "float16"  # how model.keras stores the network: half the size of
    # float32 at no measured cost (bench/RESULTS.md, "Base model"); inference is float32
    time_limit: float = 0.0  # minutes: no epoch starts that would end after this (0: none);
    # counted from this run's start (a --resume starts the clock again)
    tensorboard: str = ""  # a directory for TensorBoard event files, one point an epoch:
    # loss, held-out bits/char, learning rate, targets/s ("": none; needs TensorFlow)
    ema: float = 0.998  # validate and ship the exponential moving average of the weights:
    # its momentum per batch, at most 1 - 1/(batches an epoch), so the average spans about an
    # epoch at most (0: the last weights). Averaging is a cheap, standard gain for LSTM LMs.

    def __post_init__(self):
        for f in ("epochs", "batch_size"):
            if not isinstance(getattr(self, f), int) or getattr(self, f) < 1:
                raise UserError(f"{f.replace('_', '-')} must be a positive integer")
        if not (self.learning_rate > 0 and 0 < self.lr_decay <= 1):
            raise UserError("the learning rate must be positive and lr-decay in (0, 1]")
        if not isinstance(self.patience, int) or self.patience < 0:
            raise UserError("patience must be an integer >= 0")
        if not 0 <= self.ema < 1:
            raise UserError("ema must be in [0, 1)")
        if self.weights_dtype not in ("float16", "float32"):
            raise UserError("weights-dtype must be float16 or float32")
        if not self.time_limit >= 0:
            raise UserError("time-limit must be >= 0 minutes")
        if self.decode not in DECODINGS:
            raise UserError(f"unknown decoding {self.decode!r}; choose prior or cosine")
        HoldOut(self.val_fraction)  # checks the fraction
        if self.carry and self.devices != "1":
            raise UserError("carry trains on one device (its state is one per stream); "
                            "use --devices 1 or --no-carry")

    @property
    def holdout(self) -> HoldOut:
        return HoldOut(self.val_fraction, self.lines)

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# `train --from base`: what fine-tuning a pretrained model does unless told otherwise; measured
# on 红楼梦 from the Qing-novel model (models/README.md): half the learning rate of a fresh
# run, the state carried as the base was trained, and a patience of 2 (the first epochs bring
# nearly all of the gain).
FINE_TUNE = {"learning_rate": 1e-3, "carry": True, "patience": 2}


def step_model_of(model, embedding: np.ndarray | None = None) -> StepModel:
    """The numpy step model of a (training) Keras model's current weights."""
    if embedding is None:
        embedding = np.asarray(model.get_layer("word_embedding").embeddings)
    lstm, kernel, bias = core_weights(model.get_layer("core"))
    return StepModel(InferenceWeights(embedding, lstm, kernel, bias))


class Validator:
    """Held-out bits per character after each epoch, decoded as generation decodes.

    For the vector head, tau is fitted first on a fixed stretch of training text.
    """

    def __init__(self, corpus: CorpusIds, words: list[str], cfg: ModelConfig,
                 tcfg: TrainConfig, prior: np.ndarray, n_fit: int = 4096):
        self.corpus, self.words, self.cfg, self.tcfg, self.prior = corpus, words, cfg, tcfg, prior
        rng = np.random.default_rng(tcfg.seed)
        n = len(corpus.train)
        start = int(rng.integers(0, max(1, n - n_fit - 1)))
        self.fit_start = start
        self.fit_ids = corpus.train[start:start + n_fit + 1]

    def decoding(self, step: StepModel) -> dict:
        """The decoder settings for these weights: {"kind": ..., "tau": ...}."""
        if self.cfg.head == "softmax":
            return {"kind": "softmax"}
        unit = unit_rows(step.embedding[:-1])
        targets = targets_of(self.fit_ids[1:], self.corpus.unk)
        ok = targets >= 0
        outputs = stream_outputs(step, self.fit_ids, pieces=8,
                                 desc="reading training text for the decoding")
        cos = CosineDecoder(unit).cosines(outputs[ok])
        zero = np.zeros(self.corpus.unk, np.float32)
        tau, scale = fit_decoding(cos, targets[ok], self.prior)
        return {"kind": self.tcfg.decode, "tau": tau, "prior_scale": scale,
                "cosine_tau": fit_tau(cos, targets[ok], zero), "fitted_on": int(ok.sum())}

    def bits_per_char(self, step: StepModel, decoding: dict) -> float | None:
        scored = self.held_out(step, decoding)
        return None if scored is None else scored["bits_per_char"]

    def held_out(self, step: StepModel, decoding: dict) -> dict | None:
        """evaluate.cross_entropy of the held-out stream (bits/char, positions, ...)."""
        if len(self.corpus.val) < 2:
            return None
        ids = self.corpus.val
        targets = targets_of(ids[1:], self.corpus.unk)
        decoder = make_decoder(decoding, step.embedding[:-1], self.prior, head=self.cfg.head)
        logp, _ = target_logprobs(decoder, stream_outputs(step, ids, desc="scoring the held-out "
                                                         "text"), targets, ks=())
        return cross_entropy(logp, targets, self.corpus, self.words)


@contextlib.contextmanager
def averaged_weights(model):
    """Inside: the model holds the optimizer's moving average of its weights (if it keeps
    one); afterwards, the raw weights again, so training goes on from them."""
    average = getattr(model.optimizer, "_model_variables_moving_average", None)
    if not getattr(model.optimizer, "use_ema", False) or not average:
        yield
        return
    raw = [np.asarray(v) for v in model.trainable_variables]
    for var, avg in zip(model.trainable_variables, average):
        var.assign(avg)
    try:
        yield
    finally:
        for var, value in zip(model.trainable_variables, raw):
            var.assign(value)


@dataclass
class Checkpoint:
    """checkpoint/state.json: a training's settings and progress after its last finished
    epoch, written after the files it names (`weights`, `optimizer`: that epoch's raw
    weights and optimizer state; `best_weights`: the best epoch's validated ones). A file
    format: `to_json`/`from_json` keep the keys state.json has always had, and keys this
    version does not know are ignored."""

    model: ModelConfig
    training: TrainConfig
    vocab_sha256: str
    segmenter: SegmenterConfig
    vectors_sha256: str | None = None  # the vectors the run started from (their file, or the
    # base's vectors and the words added): a resume must start from the same
    epoch: int = 0  # finished epochs
    history: list = field(default_factory=list)  # one row an epoch (history.json's "epochs")
    weights: str | None = None  # this epoch's files, in the checkpoint directory
    optimizer: str | None = None
    best_bpc: float | None = None  # the best held-out bits/char so far, its epoch and weights
    best_epoch: int | None = None
    best_weights: str | None = None

    @property
    def kept_epoch(self) -> int:
        """The epoch whose weights ship: the best validated one, else the last."""
        return self.epoch if self.best_epoch is None else self.best_epoch

    def finished(self, epoch: int) -> None:
        """`epoch` is done: its files' names (written next, before state.json)."""
        self.epoch = epoch
        self.weights, self.optimizer = f"weights-{epoch}.weights.h5", f"optimizer-{epoch}.npz"

    def to_json(self) -> dict:
        data = {"epoch": self.epoch, "history": self.history, "model": self.model.to_json(),
                "training": asdict(self.training), "vocab_sha256": self.vocab_sha256,
                "segmenter": self.segmenter.to_json(), "vectors_sha256": self.vectors_sha256}
        if self.best_epoch is not None:
            data.update(best_bpc=self.best_bpc, best_epoch=self.best_epoch,
                        best_weights=self.best_weights)
        if self.weights is not None:
            data["files"] = {"weights": self.weights, "optimizer": self.optimizer}
        return data

    @classmethod
    def from_json(cls, data: dict) -> Checkpoint:
        """A state.json's record (a damaged one raises KeyError, TypeError or ValueError, or
        UserError from the settings' own checks: `read` turns them into one error)."""
        files = data.get("files") or {}
        return cls(ModelConfig.from_json(data["model"]), TrainConfig.from_json(data["training"]),
                   data["vocab_sha256"], SegmenterConfig(**data["segmenter"]),
                   data.get("vectors_sha256"), int(data["epoch"]), list(data["history"]),
                   files.get("weights"), files.get("optimizer"), data.get("best_bpc"),
                   data.get("best_epoch"), data.get("best_weights"))

    @staticmethod
    def epochs_in(path: Path) -> int:
        """The finished epochs a state.json records (0 if it records none): what an
        interrupted run reports, whatever else the file holds."""
        data = read_json(path)
        epoch = data.get("epoch", 0) if isinstance(data, dict) else 0
        return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else 0

    @classmethod
    def read(cls, path: Path) -> Checkpoint:
        try:
            return cls.from_json(read_json(path))
        except (KeyError, TypeError, ValueError, AttributeError, UserError) as err:
            raise UserError(f"{path}: damaged checkpoint ({type(err).__name__}: "
                            f"{str(err)[:200]}); train afresh") from None


class _H5Buffer(io.BytesIO):
    """An in-memory `.weights.h5` for `model.save_weights` (Keras checks the name's ending
    and hands anything else than a path to h5py, which writes file objects)."""

    def __str__(self) -> str:
        return "checkpoint.weights.h5"


def _write_checkpoint_file(path: Path, data: bytes) -> None:
    """`data` as `path`, written to a temporary name and renamed: a full disk (or any write
    error) is one UserError and leaves no partial file. Checkpoint files are serialized in
    memory first because HDF5 writing straight to a full disk left a half-written file,
    "Exception ignored" tracebacks from h5py and then a segfault."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        reason = (err.strerror or str(err)).splitlines()[0].lower()
        resume = ("; then the same command with --resume continues from the last saved "
                  "epoch") if (path.parent / "state.json").is_file() else ""
        raise UserError(f"{path.parent}: cannot write the checkpoint's {path.name} "
                        f"({_size(len(data))}): {reason}; free some space or train "
                        f"into another -o directory{resume}") from None


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{max(n / 1e3, 0.1):.1f} KB"


def _save_weights(model, path: Path) -> None:
    """model.save_weights(path), serialized in memory and written atomically."""
    buffer = _H5Buffer()
    model.save_weights(buffer)
    _write_checkpoint_file(path, buffer.getvalue())


def _save_optimizer(model, path: Path) -> None:
    arrays: dict[str, Any] = {f"v{i}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _write_checkpoint_file(path, buffer.getvalue())


def _save_state(path: Path, state: Checkpoint) -> None:
    """state.json, written last: it names the epoch's files (atomically, as they are)."""
    import json

    text = json.dumps(state.to_json(), ensure_ascii=False, indent=2) + "\n"
    _write_checkpoint_file(path, text.encode("utf-8"))


def _load_optimizer(model, path: Path) -> None:
    model.optimizer.build(model.trainable_variables)
    with np.load(path, allow_pickle=False) as z:
        values = [z[f"v{i}"] for i in range(len(z.files))]
    if len(values) != len(model.optimizer.variables):
        raise UserError(f"{path}: optimizer state does not match the model; train afresh")
    for var, value in zip(model.optimizer.variables, values):
        var.assign(value)


class CtrlC:
    """Ctrl-C for training. Outside `deferred()` it raises KeyboardInterrupt at once; inside
    (building and fitting the network) it is noted and raised after the current batch, a
    point where stopping is safe. Raised anywhere inside Keras or JAX, a KeyboardInterrupt
    was dropped (inside JAX's garbage-collector callback: the run trained on), turned into a
    TypeError traceback (inside Keras' variable initialiser), or crashed the process. A
    second Ctrl-C raises at once. Installed only in the main thread."""

    def __init__(self):
        self.pressed = 0
        self._old = None
        self._defer = False

    def _handler(self, signum, frame):
        self.pressed += 1
        if self._defer and self.pressed == 1:
            sys.stderr.write("stopping at the end of this batch (Ctrl-C again: at once)\n")
            return
        raise KeyboardInterrupt

    def __enter__(self) -> CtrlC:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
            # `kill PID` too: stopped like Ctrl-C, so the lock and half-written files go
            # (Python's default for SIGTERM ends the process without cleaning up).
            self._old_term = signal.signal(signal.SIGTERM, self._handler)
            self._old_hook = sys.unraisablehook
            sys.unraisablehook = self._unraisable
        return self

    def __exit__(self, *exc):
        import signal

        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            signal.signal(signal.SIGTERM, self._old_term)
            sys.unraisablehook = self._old_hook

    def _unraisable(self, info):
        # The Ctrl-C was noted; Python's "Exception ignored in ..." report of it would only
        # look like a crash.
        if not isinstance(info.exc_value, KeyboardInterrupt):
            self._old_hook(info)

    @contextlib.contextmanager
    def deferred(self):
        self.check()  # pressed before (and perhaps dropped): stop now
        self._defer = True
        try:
            yield
        finally:
            self._defer = False
        self.check()

    def check(self) -> None:
        if self.pressed:
            raise KeyboardInterrupt


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during `wordlstm train`: `epochs_saved` finished epochs are in `checkpoint`,
    from which the same command with --resume continues."""

    def __init__(self, out: str | Path):
        self.checkpoint = Path(out) / "checkpoint"
        state = self.checkpoint / "state.json"
        self.epochs_saved = Checkpoint.epochs_in(state) if state.is_file() else 0
        super().__init__(f"interrupted; {self.epochs_saved} epoch(s) saved in {self.checkpoint}: "
                         "run the same command with --resume to continue")


PROGRESS_EVERY = 30.0  # seconds between progress lines when Keras' bar is off (not a terminal)


def check_tensorboard(logdir: str) -> None:
    """`--tensorboard DIR` writes event files through TensorFlow's summary writer (what
    TensorBoard reads; it works whatever the Keras backend): refuse early where it is missing,
    or where DIR cannot be a directory."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise UserError("--tensorboard writes TensorBoard's event files with TensorFlow, which "
                        "is not installed here (pip install tensorflow); the same figures are "
                        "in the model dir's history.json")
    p = Path(logdir)
    if p.exists() and not p.is_dir():
        raise UserError(f"--tensorboard {logdir}: exists and is not a directory")


@dataclass
class _EpochContext:
    """What the per-epoch callback reads and updates: one object its methods and helpers share,
    rather than nine names closed over."""

    ckpt: Path
    tcfg: TrainConfig
    state: Checkpoint
    n_targets: int
    log: Any
    validator: Validator
    ctrl_c: CtrlC | None = None
    batches: int = 0
    lines: bool = False


def _make_callbacks(ckpt: Path, tcfg: TrainConfig, state: Checkpoint, n_targets: int, log,
                    validator: Validator, ctrl_c: CtrlC | None = None,
                    batches: int = 0, lines: bool = False):
    """The Keras callbacks of a run, in order: the progress bar (on a terminal), validation
    and checkpoint after every epoch, then TensorBoard's log if asked for."""
    from .backend import import_keras

    keras = import_keras()
    ctx = _EpochContext(ckpt, tcfg, state, n_targets, log, validator, ctrl_c, batches, lines)
    # On a terminal Keras' bar goes first: finished before the epoch's summary line (Keras
    # appends its own after ours, which printed the last bar again after the summary).
    bar = [] if lines else [keras.callbacks.ProgbarLogger()]
    return bar + [_epoch_end_callback(keras, ctx)] + (
        [_tensorboard_callback(keras, tcfg.tensorboard, state)] if tcfg.tensorboard else [])


def _epoch_end_callback(keras, ctx: _EpochContext):
    """The callback that validates, adapts the learning rate and checkpoints after every epoch.
    Made here, not at module level, since keras is imported only when a run starts; the work
    is in the module-level helpers its methods call."""

    # keras is imported at run time (import_keras) and passed in untyped: its classes are
    # unknown to mypy.
    class EpochEnd(keras.callbacks.Callback):
        """Validate, adapt the learning rate, and checkpoint after every epoch."""

        def on_train_begin(self, logs=None):
            self.started, self.epochs_run = time.perf_counter(), 0

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = self.shown = time.perf_counter()
            self.epoch = epoch + 1
            if ctx.tcfg.carry:  # each epoch reads the text from its start again
                reset_carried_state(self.model.get_layer("core"))

        def on_train_batch_end(self, batch, logs=None):
            # Defined so Keras runs batch-end callbacks synchronously (with only epoch
            # callbacks it dispatches them on threads, which deadlocks JAX data-parallel
            # training on several CPU devices when stderr is not a terminal), and the safe
            # point where a Ctrl-C noted during fitting stops the run.
            if ctx.ctrl_c is not None:
                ctx.ctrl_c.check()
            now = time.perf_counter()
            if ctx.lines and ctx.batches and now - self.shown >= PROGRESS_EVERY:
                self.shown = now
                ctx.log(_progress_line(ctx, self.epoch, (batch + 1) / ctx.batches,
                                       now - self.t0))

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.t0
            row = _epoch_row(ctx, self.model, epoch, logs, seconds)
            with averaged_weights(self.model):  # what ships is validated, and kept if best
                improved = _validate_epoch(ctx, self.model, epoch, row)
            _checkpoint_epoch(ctx, self.model, epoch, row)
            self.epochs_run += 1
            _check_time_limit(ctx, self.model, epoch, self.started, self.epochs_run)
            ctx.log(_epoch_line(ctx, epoch, row, seconds, improved))

    return EpochEnd()


def _progress_line(ctx: _EpochContext, epoch: int, done: float, elapsed: float) -> str:
    """The progress line printed every PROGRESS_EVERY seconds when Keras' bar is off: `done`
    of the epoch's batches after `elapsed` seconds, the rate and the time left."""
    rate = done * ctx.n_targets / max(elapsed, 1e-9)
    eta = elapsed * (1 - done) / max(done, 1e-9)
    return (f"epoch {epoch}/{ctx.tcfg.epochs}: {done:.0%} of {ctx.n_targets:,} targets, "
            f"{rate:,.0f}/s, {eta / 60:.1f} min to the epoch's end")


def _epoch_row(ctx: _EpochContext, model, epoch: int, logs, seconds: float) -> dict:
    """The epoch's history row before validation adds its figure: loss, time, speed and the
    learning rate it ran at."""
    return {"epoch": epoch + 1, "loss": float((logs or {}).get("loss", float("nan"))),
            "seconds": round(seconds, 2),
            "targets_per_s": round(ctx.n_targets / max(seconds, 1e-9), 1),
            "learning_rate": float(np.asarray(model.optimizer.learning_rate))}


def _checkpoint_epoch(ctx: _EpochContext, model, epoch: int, row: dict) -> None:
    """Record the epoch and save what resuming needs (raw weights, optimizer, state.json last,
    which names this epoch's files), then drop files of earlier epochs."""
    ckpt, state = ctx.ckpt, ctx.state
    state.history.append(row)
    state.finished(epoch + 1)
    assert state.weights and state.optimizer  # finished() just named them
    _save_weights(model, ckpt / state.weights)  # the raw weights, to resume
    _save_optimizer(model, ckpt / state.optimizer)
    _save_state(ckpt / "state.json", state)  # last: names this epoch's files
    keep = {state.weights, state.optimizer, state.best_weights, "state.json"}
    for p in ckpt.iterdir():
        if p.name not in keep and not p.name.endswith(".part"):
            p.unlink(missing_ok=True)


def _epoch_line(ctx: _EpochContext, epoch: int, row: dict, seconds: float,
                improved: bool) -> str:
    """The summary line logged at the end of each epoch."""
    bpc = row.get("val_bits_per_char")
    return (f"epoch {epoch + 1}/{ctx.tcfg.epochs}: {ctx.n_targets:,} targets in {seconds:.0f} s "
            f"({row['targets_per_s']:,.0f}/s), loss {row['loss']:.4f}"
            + (f", held-out {bpc:.4f} bits/char" + (" (best)" if improved else "")
               if bpc is not None else ""))


def _check_time_limit(ctx: _EpochContext, model, epoch: int, started: float,
                      epochs_run: int) -> None:
    """Stop if one more epoch (as long as this run's average) would pass the limit."""
    tcfg = ctx.tcfg
    if not tcfg.time_limit or epoch + 1 >= tcfg.epochs:
        return
    from .workers import agreed

    spent = time.perf_counter() - started
    if agreed(spent + spent / epochs_run > tcfg.time_limit * 60):  # worker 0's clock
        ctx.log(f"time limit: another epoch would end after {tcfg.time_limit:g} minutes "
                f"({spent / 60:.1f} spent): stopping after epoch {epoch + 1}")
        model.stop_training = True


def _validate_epoch(ctx: _EpochContext, model, epoch: int, row: dict) -> bool:
    """Held-out bits/char into `row`; keep the weights if best, else slow down or stop."""
    ckpt, state = ctx.ckpt, ctx.state
    step = step_model_of(model)
    decoding = ctx.validator.decoding(step)
    bpc = ctx.validator.bits_per_char(step, decoding)
    try:
        ckpt.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{ckpt}: cannot make the checkpoint directory "
                        f"({err.strerror or err})") from None
    if bpc is None:
        return False
    row["val_bits_per_char"] = round(bpc, 5)
    if state.best_bpc is None or bpc < state.best_bpc:
        name = f"best-{epoch + 1}.weights.h5"
        _save_weights(model, ckpt / name)
        state.best_bpc, state.best_epoch, state.best_weights = bpc, epoch + 1, name
        return True
    _not_improved(ctx, model, epoch, row)
    return False


def _not_improved(ctx: _EpochContext, model, epoch: int, row: dict) -> None:
    """After an epoch that did not beat the best: stop once `patience` epochs have not, else
    lower the learning rate by `lr_decay` (if set)."""
    tcfg, state = ctx.tcfg, ctx.state
    since = epoch + 1 - state.kept_epoch
    if tcfg.patience and since >= tcfg.patience:
        ctx.log(f"held-out bits/char has not improved for {since} epochs: stopping "
                f"after epoch {epoch + 1} of {tcfg.epochs}, keeping epoch "
                f"{state.best_epoch} ({state.best_bpc:.4f})")
        model.stop_training = True
    elif tcfg.lr_decay < 1:
        lr = row["learning_rate"] * tcfg.lr_decay
        model.optimizer.learning_rate.assign(lr)
        ctx.log(f"held-out bits/char did not improve: learning rate {lr:.2g}")


def _tensorboard_callback(keras, logdir: str, state: Checkpoint):
    """The callback that writes one TensorBoard point an epoch (`--tensorboard DIR`); made
    here, as EpochEnd is, since keras is imported only when a run starts."""

    class TensorBoardLog(keras.callbacks.Callback):  # untyped keras, as EpochEnd
        """One point an epoch in TensorBoard: the row EpochEnd just added to the history
        (loss, held-out bits/char, learning rate, targets/s) at step = epoch; after EpochEnd."""

        writer = None

        def on_epoch_end(self, epoch, logs=None):
            import tensorflow as tf

            if self.writer is None:
                self.writer = tf.summary.create_file_writer(logdir)
            row = state.history[-1]
            with self.writer.as_default():
                for key, tag in (("loss", "loss"), ("val_bits_per_char", "held_out_bits_per_char"),
                                 ("learning_rate", "learning_rate"),
                                 ("targets_per_s", "targets_per_s")):
                    if row.get(key) is not None:
                        tf.summary.scalar(tag, float(row[key]), step=int(row["epoch"]))
            self.writer.flush()

        def on_train_end(self, logs=None):
            if self.writer is not None:
                self.writer.close()

    return TensorBoardLog()


def _resume_state(ckpt: Path, out: Path, state: Checkpoint, tcfg: TrainConfig,
                  vectors_path: str, log=print) -> Checkpoint:
    """`state` continued from an interrupted run's checkpoint: its settings and progress; the
    run's length and hardware may change."""
    if not (ckpt / "state.json").is_file():
        raise UserError(f"{out}: nothing to resume (no checkpoint/ from an earlier run)")
    saved = Checkpoint.read(ckpt / "state.json")
    if saved.vocab_sha256 != state.vocab_sha256:
        raise UserError(f"{out}: the checkpoint was trained with other vectors than "
                        f"{vectors_path}; resume with the same --vectors")
    if saved.vectors_sha256 not in (None, state.vectors_sha256):
        raise UserError(f"{out}: the checkpoint started from other vectors than "
                        f"{vectors_path} (same words, other values); resume with the same --vectors")
    cfg, asked = saved.model, state.model
    if (cfg.dim, cfg.vocab_size) != (asked.dim, asked.vocab_size):
        raise UserError(f"{out}: the checkpoint has {cfg.vocab_size}x{cfg.dim} vectors, "
                        f"{vectors_path} has {asked.vocab_size}x{asked.dim}; resume with the "
                        "same --vectors")
    changed = [f"{f} {getattr(cfg, f)!r} (not {getattr(asked, f)!r})" for f in
               ("window", "units", "layers", "dropout", "loss", "head", "train_embedding",
                "target", "loss_temperature", "negatives") if getattr(asked, f) != getattr(cfg, f)]
    if changed:
        log("note: --resume continues the run with the settings it started with: "
            + ", ".join(changed))
    training = replace(saved.training, epochs=tcfg.epochs, devices=tcfg.devices,
                       precision=tcfg.precision, patience=tcfg.patience,
                       time_limit=tcfg.time_limit, tensorboard=tcfg.tensorboard)
    for name in (saved.weights, saved.optimizer):
        if name is None or not (ckpt / name).is_file():
            raise UserError(f"{ckpt}: {name or 'the last epoch'}'s weights are missing; train "
                            "afresh")
    return replace(saved, model=cfg, training=training, vocab_sha256=state.vocab_sha256,
                   segmenter=state.segmenter, vectors_sha256=state.vectors_sha256)


def train(segmented: str, vectors_path: str | None, out: str | Path, cfg: ModelConfig,
          tcfg: TrainConfig, segmenter: SegmenterConfig, resume: bool = False,
          verbose: int = 1, log=print, init_from: str | Path | None = None,
          ctrl_c: CtrlC | None = None, base: str | Path | None = None,
          overwrite: bool = False) -> dict:
    """Train a model on a segmented file and write a complete model dir to `out`.

    `out` is locked while training (a second run into it is refused) and replaced as one step
    at the end. An `out` that holds a model or an interrupted run's checkpoint is refused
    unless `resume` (continue the checkpoint) or `overwrite` (train afresh; the old model
    stays as it is until the new one replaces it). `init_from` starts from another model dir's
    weights (same vocabulary and architecture): pretraining on other novels, then fine-tuning
    on this one. `base` (a model dir, instead of `vectors_path`) fine-tunes it with its
    vocabulary grown by the novel's own words (vocab.extend_vocabulary).
    """
    from .modeldir import check_output_dir, output_lock
    from .vectors import resolve_vectors_path

    out = Path(out)
    if base is not None:
        if Path(base).resolve() == out.resolve():
            raise UserError(f"{out}: is the model fine-tuned from; write the new one elsewhere")
    else:
        assert vectors_path is not None, "train needs vectors_path or base"
        if resolve_vectors_path(vectors_path).resolve().parent == out.resolve():
            raise UserError(f"{vectors_path}: the vectors are inside the output directory "
                            f"{out}, which is replaced when training ends; keep them elsewhere "
                            "(e.g. corpus/novel.vectors)")
    if Path(segmented).resolve().parent == out.resolve():
        raise UserError(f"{segmented}: the corpus is inside the output directory {out}; "
                        "keep it elsewhere")
    check_output_dir(out)  # after the two above: they name the cause more exactly
    if tcfg.tensorboard:
        check_tensorboard(tcfg.tensorboard)
    from .workers import is_writer

    if is_writer():
        _check_existing(out, resume, overwrite)
    from .progress import reporting

    with (output_lock(out) if is_writer() else contextlib.nullcontext()), \
            reporting(log, terminal=verbose > 0):  # worker 0 writes
        if is_writer():
            _check_existing(out, resume, overwrite)  # again: now no other run can change it
            if overwrite:
                shutil.rmtree(out / "checkpoint", ignore_errors=True)  # train afresh
        return _train(segmented, vectors_path, out, cfg, tcfg, segmenter, resume, verbose, log,
                      init_from, ctrl_c, base)


def _check_existing(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to train over a model or a checkpoint in `out` unless told what to do with it
    (retraining silently over a finished model, or restarting an interrupted run that
    --resume would continue, loses hours)."""
    if resume and overwrite:
        raise UserError("--resume continues the run in the output directory, --overwrite "
                        "starts afresh: choose one")
    model = (out / "config.json").is_file()
    state = out / "checkpoint" / "state.json"
    epochs = read_json(state).get("epoch", 0) if state.is_file() else None
    if not (resume or overwrite) and (model or epochs is not None):
        what = ("a trained model" if model else "") + (" and " if model and epochs is not None
                                                       else "")
        if epochs is not None:
            what += f"an interrupted training ({epochs} epoch(s) saved)"
        raise UserError(f"{out}: holds {what}; --overwrite trains a new one that replaces it "
                        "when complete (the old one stays usable until then)"
                        + (", --resume continues the interrupted one" if epochs is not None
                           else "") + ", or choose another -o")


def run(segmented: str, vectors_path: str | None, out: str | Path, model: dict, training: dict,
        segmenter: dict, resume: bool = False, init_from: str | Path | None = None,
        verbose: int = 0, log=print, base: str | Path | None = None,
        overwrite: bool = False) -> dict:
    """`wordlstm train`: settings checked (`model`: ModelConfig fields, head "auto" for the
    measured best head of the corpus's unit; `training`: TrainConfig fields; `segmenter`:
    overrides of what `segment` recorded, None for "as recorded"), then `train`. Ctrl-C
    raises TrainingInterrupted, which says how much the checkpoint holds."""
    from .backend import summary_line
    from .segment import recorded_config
    from .textio import check_segmented, check_writable

    check_segmented(segmented)
    out = Path(out)
    check_writable(out / "config.json")
    _check_existing(out, resume, overwrite)  # before Keras is imported: a quick refusal
    seg = recorded_config(segmented, **segmenter)
    if base is not None:
        base, model = _base_settings(base, seg, model)
    if model.get("head") == "auto":  # measured: bench/RESULTS.md, "Names and poems"
        model = model | {"head": "softmax" if seg.unit == "char" else "vector"}
    cfg, tcfg = ModelConfig(**model), TrainConfig(**training)
    if seg.user_dict and not Path(seg.user_dict).is_file():
        raise UserError(f"{seg.user_dict}: user dictionary not found (it is copied into the model)")
    try:
        with CtrlC() as ctrl_c:
            log(summary_line() + f"; {cfg.head} head")
            return train(segmented, vectors_path, out, cfg, tcfg, seg, resume=resume,
                         verbose=verbose, log=log, init_from=init_from, ctrl_c=ctrl_c,
                         base=base, overwrite=overwrite)
    except KeyboardInterrupt:
        raise TrainingInterrupted(out) from None


def _base_settings(base, seg: SegmenterConfig, model: dict) -> tuple[Path, dict]:
    """The base model dir `base` names ('base': the shipped one) and its architecture (with
    `model`'s dropout), after checking the novel was segmented as the base's text was."""
    from .modeldir import read_config, resolve_model_dir

    base_dir = resolve_model_dir(base)
    config = read_config(base_dir)
    if config.model.head != "vector" or config.training.lines:
        raise UserError(f"{base}: --from needs a novel model with the vector head")
    unit = config.segmenter.unit
    if seg.unit != unit:
        raise UserError(f"the corpus is segmented into {seg.unit}s, the base into {unit}s; "
                        f"segment it with --unit {unit}")
    arch = replace(config.model, dropout=model.get("dropout", config.model.dropout))
    return base_dir, asdict(arch)


@dataclass
class TrainingRun:
    """One training run's settings, data and progress (`state`: what the checkpoint keeps)."""

    cfg: ModelConfig
    tcfg: TrainConfig
    vectors: Vectors
    corpus: CorpusIds
    prior: np.ndarray  # log word frequencies of the training targets
    state: Checkpoint
    ckpt: Path
    base: str | Path | None = None  # the model dir fine-tuned from (`--from`)


def _train(segmented, vectors_path, out: Path, cfg: ModelConfig, tcfg: TrainConfig,
           segmenter: SegmenterConfig, resume: bool, verbose: int, log, init_from,
           ctrl_c: CtrlC | None, base: str | Path | None = None) -> dict:
    from .backend import training_scope, worker_batches
    from .workers import check_same_inputs

    run = _prepare(segmented, vectors_path, out, cfg, tcfg, segmenter, resume, log, base)
    check_same_inputs(segmented, run.state.to_json())  # several machines: all train the same
    with training_scope(run.tcfg.precision, run.tcfg.devices, log) as (scope, n_devices):
        # Every batch must split evenly over the devices.
        batch = max(n_devices, run.tcfg.batch_size - run.tcfg.batch_size % n_devices)
        if run.tcfg.carry:
            train_ds = lanes_dataset(run.corpus.train, run.cfg.window, batch, run.corpus.unk,
                                     seed=run.tcfg.seed, epoch=run.state.epoch)
        else:
            train_ds = sequences_dataset(run.corpus.train, run.cfg.window, batch,
                                         run.corpus.unk, seed=run.tcfg.seed,
                                         epoch=run.state.epoch, drop_remainder=n_devices > 1)
        train_ds = worker_batches(train_ds, log)  # a job of several machines: this one's rows
        with scope(), (ctrl_c.deferred() if ctrl_c else contextlib.nullcontext()):
            model = _build_or_resume(run, len(train_ds), resume, init_from, log,
                                     carry_batch=batch if run.tcfg.carry else None)
            _fit(model, run, train_ds, verbose, log, ctrl_c)
    return _finish(model, run, segmented, out, segmenter, init_from or base, log, ctrl_c)


def _prepare(segmented, vectors_path, out: Path, cfg: ModelConfig, tcfg: TrainConfig,
             segmenter: SegmenterConfig, resume: bool, log,
             base: str | Path | None = None) -> TrainingRun:
    """The vectors, the settings (those of the checkpoint when resuming) and the id streams."""
    from .modeldir import file_hash
    from .workers import checkpoint_dir

    ckpt = checkpoint_dir(out / "checkpoint", resume)  # elsewhere than -o on workers 1, 2, …
    if base is not None:
        vectors, start = _grown_vectors(base, segmented, tcfg, log)
    else:
        vectors = load_vectors(vectors_path)
        start = file_hash(Path(_vectors_file(vectors_path)))
    cfg.dim, cfg.vocab_size = vectors.dim, len(vectors)
    check_batch(cfg, tcfg)
    state = Checkpoint(cfg, tcfg, vocab_hash(vectors.words), segmenter, start)
    if resume:
        state = _resume_state(ckpt, out, state, tcfg, vectors_path, log)
        cfg, tcfg = state.model, state.training
    corpus = corpus_ids(segmented, vectors.index, tcfg.holdout)
    check_trainable(corpus.train, cfg.window, segmented)
    if tcfg.carry and len(corpus.train) < tcfg.batch_size * cfg.window + 1:
        raise UserError(f"{segmented}: too little text to read as {tcfg.batch_size} streams of "
                        f"{cfg.window}-token sequences ({len(corpus.train):,} tokens); use a "
                        "smaller --batch-size or --window, or --no-carry")
    check_memory(cfg, tcfg)  # before anything is built: what the text allows is said first
    log(f"corpus: {len(corpus.train) + len(corpus.val):,} tokens, {len(corpus.val):,} held out "
        f"({corpus.held_out_lines:,} lines); {corpus.train_unknown:,} unknown characters in "
        f"training; {len(vectors):,}-word vocabulary")
    for warning in small_training(len(corpus.train), tcfg, base is not None):
        log(f"warning: {warning}")
    prior = log_prior(corpus.train[1:], len(vectors))
    return TrainingRun(cfg, tcfg, vectors, corpus, prior, state, ckpt, base)


# Below these, training from scratch has not learned to write (README, "How much text"):
# word2vec's vectors of a 3,000-line slice of 水浒传 (83k tokens) did not separate (random
# words' mean cosine 0.9996, against 0.37 at 456k tokens), and its network after one epoch
# wrote word salad. The smallest model shipped (dinos, a line model) saw 20k targets x 50
# epochs = 1M.
SMALL_CORPUS = 100_000  # training tokens (prose, from scratch)
MIN_PRESENTATIONS = 1_000_000  # training targets x epochs (from scratch)


def small_training(n_train: int, tcfg: TrainConfig, fine_tune: bool) -> list[str]:
    """Why this training is likely too small to learn from (training still goes on): one
    sentence each. A fine-tuned base already knows the language, so only scratch runs."""
    if fine_tune:
        return []
    out = []
    if n_train < SMALL_CORPUS and not tcfg.lines:
        out.append(f"{n_train:,} training tokens is little to learn a novel's language from "
                   f"(under {SMALL_CORPUS:,}, word vectors and the network stay near random); "
                   "fine-tune the base instead (--from base) or add text")
    if n_train * tcfg.epochs < MIN_PRESENTATIONS:
        out.append(f"{n_train:,} targets x {tcfg.epochs} epoch(s) is under "
                   f"{MIN_PRESENTATIONS:,} targets seen; expect word salad (more --epochs, "
                   "more text, or --from base)")
    return out


def check_batch(cfg: ModelConfig, tcfg: TrainConfig) -> None:
    """The contrastive loss scores each target against the batch's other targets: with one
    target a batch it is 0 whatever the weights, and a model that learned nothing is saved."""
    if cfg.head == "vector" and cfg.loss == "contrastive" and tcfg.batch_size * cfg.window < 2:
        raise UserError(f"--batch-size {tcfg.batch_size} x --window {cfg.window} gives one "
                        "target a batch; the contrastive loss needs others to contrast it "
                        "with (use a larger --batch-size)")


def training_bytes(cfg: ModelConfig, tcfg: TrainConfig) -> int:
    """About how much memory training this network takes: its weights five times over
    (weights, gradients, Adam's two moments, the moving average), and one batch's
    activations forward and back (an estimate, within a factor of about two)."""
    params = cfg.vocab_size * cfg.dim
    inputs = cfg.dim
    for _ in range(cfg.layers):
        params += 4 * cfg.units * (inputs + cfg.units + 1)
        inputs = cfg.units
    params += cfg.units * (cfg.vocab_size if cfg.head == "softmax" else cfg.dim)
    positions = tcfg.batch_size * cfg.window
    acts = positions * cfg.units * cfg.layers * 10
    acts += positions * (cfg.vocab_size if cfg.head == "softmax" else min(cfg.negatives,
                                                                           positions)) * 3
    return 4 * (5 * params + 2 * acts)


def available_bytes() -> int | None:
    """Memory this process could still take (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_memory(cfg: ModelConfig, tcfg: TrainConfig) -> None:
    """Refuse, before anything is allocated, a network that cannot fit in memory (an engine
    would fail deep inside with a multi-line out-of-memory traceback, or the kernel kill it)."""
    need, have = training_bytes(cfg, tcfg), available_bytes()
    if have is not None and need > 0.9 * have:
        raise UserError(f"this network needs about {need / 2**30:,.1f} GiB to train (--units "
                        f"{cfg.units}, --layers {cfg.layers}, {cfg.vocab_size:,} words, "
                        f"--batch-size {tcfg.batch_size}); {have / 2**30:,.1f} GiB is free: "
                        "use fewer --units or --layers, or a smaller --batch-size")


def _grown_vectors(base: str | Path, segmented: str, tcfg: TrainConfig, log) -> tuple[Vectors, str]:
    """The base's vectors grown with the novel's words, and a digest of where they came from
    (the base's vectors file and the words added: the same command gives the same digest, so
    --resume can check it is continuing the same run)."""
    import hashlib

    from .modeldir import file_hash, load_vectors_of
    from .vocab import extend_vocabulary

    grown = extend_vocabulary(load_vectors_of(base), segmented, tcfg.holdout)
    if grown.traditional_share > 0.02:  # the base reads simplified characters
        raise UserError(f"{segmented}: {grown.traditional_share:.0%} of its characters are "
                        "traditional; segment the novel with --to-simplified first")
    shown = "、".join(grown.new_words[:8])
    log(f"vocabulary: {len(grown.vectors) - len(grown.new_words) - len(grown.new_chars):,} "
        f"words of {base} (leaving out {grown.dropped:,} this novel never uses), "
        f"plus {len(grown.new_words):,} of this novel"
        + (f" ({shown}…)" if shown else "")
        + (f" and {len(grown.new_chars):,} new characters" if grown.new_chars else "")
        + f"; {grown.unknown_share:.1%} of its characters were unknown to the base")
    digest = hashlib.sha256((file_hash(Path(base) / "vectors.bin") + "\n"
                             + "\n".join(grown.vectors.words)).encode("utf-8")).hexdigest()
    return grown.vectors, digest


def _build_or_resume(run: TrainingRun, batches: int, resume: bool, init_from, log,
                     carry_batch: int | None = None):
    """The compiled model: fresh, from `init_from`'s weights, or the checkpoint's weights and
    optimizer state (inside the distribution scope)."""
    from .backend import import_keras
    from .workers import fix_symbolic_build

    keras = import_keras()
    cfg, tcfg, state = run.cfg, run.tcfg, run.state
    keras.utils.set_random_seed(tcfg.seed + state.epoch)
    model = build_model(cfg, initial_embedding(run.vectors.matrix, cfg.target), carry_batch)
    fix_symbolic_build(model)  # TensorFlow across machines: a Keras 3.15 defect worked around
    if run.base is not None and not resume:
        _init_weights(model, run.base, cfg, run.vectors, grown=True)
        log(f"starting from the weights of {run.base}")
    elif init_from is not None and not resume:
        _init_weights(model, Path(init_from), cfg, run.vectors)
        log(f"starting from the weights of {init_from}")
    ema = min(tcfg.ema, 1.0 - 1.0 / max(batches, 2)) if tcfg.ema else 0.0
    compile_model(model, cfg, tcfg.learning_rate, ema=ema)
    if resume:
        assert state.weights and state.optimizer  # _resume_state found them
        with warnings.catch_warnings():  # its optimizer is restored just below
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            model.load_weights(run.ckpt / state.weights)
        _load_optimizer(model, run.ckpt / state.optimizer)
        log(f"resuming from epoch {state.epoch} of {tcfg.epochs}")
    return model


def _fit(model, run: TrainingRun, train_ds, verbose: int, log, ctrl_c: CtrlC | None) -> None:
    """Train the remaining epochs (validated and checkpointed after each), then hold the best
    epoch's validated weights."""
    tcfg, state = run.tcfg, run.state
    stopped = (tcfg.patience and state.best_epoch is not None
               and state.epoch - state.best_epoch >= tcfg.patience)
    if state.epoch < tcfg.epochs and not stopped:
        validator = Validator(run.corpus, run.vectors.words, run.cfg, tcfg, run.prior)
        # The dataset orders its sequences itself, from (seed, epoch): Keras' own batch
        # shuffling would make a resumed run differ from the uninterrupted one.
        model.fit(train_ds, epochs=tcfg.epochs, initial_epoch=state.epoch,
                  verbose=verbose, shuffle=False,
                  callbacks=_make_callbacks(run.ckpt, tcfg, state, len(run.corpus.train) - 1,
                                             log, validator, ctrl_c, batches=len(train_ds),
                                             lines=not verbose))
    if state.kept_epoch != state.epoch:
        log(f"keeping epoch {state.best_epoch}: the best held-out bits/char "
            f"({state.best_bpc:.4f})")
    if state.best_weights is not None:  # the validated (averaged) weights of the best epoch
        model.load_weights(run.ckpt / state.best_weights)


def _finish(model, run: TrainingRun, segmented, out: Path, segmenter: SegmenterConfig, init_from,
            log, ctrl_c: CtrlC | None = None) -> dict:
    """Fit the decoding to the final weights, write the model dir, drop the checkpoint."""
    from .workers import finished, is_writer

    if not is_writer():  # a worker of a multi-machine job: worker 0 writes the model dir
        finished()
        shutil.rmtree(run.ckpt, ignore_errors=True)
        return {"history": run.state.history, "out": f"{out} on worker 0",
                "best_epoch": run.state.kept_epoch}
    cfg, tcfg, corpus, state, vectors = run.cfg, run.tcfg, run.corpus, run.state, run.vectors
    core, shipped, step = _shipped_model(model, cfg, tcfg, vectors)
    log("fitting the decoding, the continuous cache and dynamic evaluation on training text")
    validator = Validator(corpus, vectors.words, cfg, tcfg, run.prior,
                          n_fit=int(min(20_000, 4e8 / len(vectors))))
    decoding = _fit_shipped_decoding(step, validator, shipped, run, log)
    saved_bpc, char5 = _saved_bits_per_char(step, validator, decoding, segmented, tcfg, log)
    ngram = None
    if decoding["kind"] != "softmax" and not tcfg.lines:
        ngcfg, ngram = fit_ngram_on(step, decoding, shipped.matrix, run.prior, corpus.train,
                                    validator.fit_start, len(validator.fit_ids) - 1, corpus.unk)
        decoding["ngram"] = ngcfg.to_json()
        log(f"word {ngcfg.order}-gram of the training text: weight {ngcfg.weight:g} (fitted on "
            "the same positions, counted without them)")
    training = _training_record(run, segmented, init_from, saved_bpc, char5)
    line_info = line_stats(segmented) if tcfg.lines else None
    if ctrl_c is not None:
        ctrl_c.check()  # a Ctrl-C dropped by a library callback: stop before the model moves
    save_model_dir(out, core, cfg, shipped, segmenter, training, {"epochs": state.history},
                   line_info=line_info, decoder=decoding,
                   log_prior=run.prior if decoding["kind"] == "prior" else None, ngram=ngram,
                   sampling=dict(LINE_SAMPLING) if tcfg.lines else None)
    shutil.rmtree(run.ckpt, ignore_errors=True)
    finished()  # the other workers of a multi-machine job may leave now
    return {"history": state.history, "out": str(out), "best_epoch": state.kept_epoch}


def _shipped_model(model, cfg: ModelConfig, tcfg: TrainConfig, vectors: Vectors):
    """What ships, as (core, vectors, step model): a plain copy of the trained network without
    optimizer or carried state, stored as `weights_dtype`, which the decoding and cache are
    then fitted to (its weights rounded as they will load)."""
    core = build_core(cfg, dtype=tcfg.weights_dtype)
    set_core_weights(core, *core_weights(model.get_layer("core")))
    embedding = np.asarray(model.get_layer("word_embedding").embeddings, np.float32)
    shipped = Vectors(list(vectors.words), np.ascontiguousarray(embedding[:-1]))
    step = StepModel(InferenceWeights(embedding, *core_weights(core)))
    return core, shipped, step


def _fit_shipped_decoding(step: StepModel, validator: Validator, shipped: Vectors,
                          run: TrainingRun, log) -> dict:
    """The decoding fitted to the shipped weights on training text: for a vector head, its
    tau (and prior scale), then the continuous cache and dynamic evaluation's rate."""
    corpus = run.corpus
    decoding = validator.decoding(step)
    if decoding["kind"] != "softmax":
        log(f"decoding: cosine / {decoding['tau']:.3f}"
            + (f" + {decoding['prior_scale']:.2f} x log word frequency"
               if decoding["kind"] == "prior" else "")
            + f" (tau fitted on {decoding['fitted_on']:,} training positions)")
        decoding["cache"] = fit_cache_on(step, decoding, shipped.matrix, run.prior,
                                         validator.fit_ids, corpus.unk).to_json()
        log(f"continuous cache: weight {decoding['cache']['weight']:g}, theta "
            f"{decoding['cache']['theta']:g} (fitted on the same training positions)")
        decoding["dynamic_lr"] = fit_dynamic_on(step, decoding, shipped.matrix, run.prior,
                                                validator.fit_ids, corpus.unk)
        log(f"dynamic evaluation: learning rate {decoding['dynamic_lr']:g} (fitted on "
            f"{DYNAMIC_FIT:,} training positions)")
    return decoding


def _saved_bits_per_char(step: StepModel, validator: Validator, decoding: dict, segmented,
                         tcfg: TrainConfig, log) -> tuple[float | None, float | None]:
    """(held-out bits/char of the saved network, of a character 5-gram on the same split),
    logged, with a warning where the network is no better than the 5-gram."""
    # The saved model's own figure (float16-rounded weights, the decoding fitted to them):
    # exactly what `evaluate --no-cache --dynamic 0 --no-ngram` reports for this file.
    scored = validator.held_out(step, decoding)
    saved_bpc = None if scored is None else scored["bits_per_char"]
    char5 = char_baseline(segmented, tcfg.holdout)
    if saved_bpc is not None:
        assert scored is not None  # saved_bpc comes from it
        log(f"held-out bits/char of the saved network: {saved_bpc:.4f} over "
            f"{scored['positions']:,} positions (what `evaluate --no-cache --dynamic 0 "
            "--no-ngram` reports)" + (f"; a character 5-gram: {char5:.4f}" if char5 else ""))
        if char5 and saved_bpc >= char5:
            log(f"warning: the network predicts the held-out text no better than a character "
                f"5-gram ({saved_bpc:.3f} against {char5:.3f} bits/char): too little text or "
                "training to learn from; its text will read as word salad (README: Your own "
                "novel, How much text)")
    return saved_bpc, char5


def _training_record(run: TrainingRun, segmented, init_from, saved_bpc: float | None,
                     char5: float | None) -> dict:
    """config.json's "training": the settings, the text read and its split, the epoch kept
    and its held-out figures, and the command that made the model."""
    tcfg, corpus, state = run.tcfg, run.corpus, run.state
    return asdict(tcfg) | {"corpus": Path(segmented).name,
                           "tokens": int(len(corpus.train) + len(corpus.val)),
                           "train_tokens": int(len(corpus.train)),
                           "val_tokens": int(len(corpus.val)),
                           "unknown_tokens": int(corpus.train_unknown),
                           "holdout": tcfg.holdout.to_json(),
                           "best_epoch": state.kept_epoch,
                           "init_from": str(init_from) if init_from else None,
                           "held_out_bits_per_char": saved_bpc,
                           "corpus_file": corpus_record(segmented),
                           "command": _command_line(),
                           "char5_bits_per_char": char5}


# A line model's generation defaults (names, poems): issue 14's settings. The prose defaults
# (temperature 0.6, min-p, strong DRY) wrote 70% "-saurus" names against the list's 46%
# (bench/RESULTS.md, "Line models under the new prose defaults").
LINE_SAMPLING = {"temperature": 1.0, "min_p": 0.0, "dry_multiplier": 0.8, "dry_allowed": 2,
                 "min_count": 0}


def _command_line() -> str | None:
    """The command as typed, for the model card (None when training was called from Python)."""
    import shlex

    if not sys.argv or Path(sys.argv[0]).name not in ("wordlstm", "cli.py", "__main__.py"):
        return None
    return shlex.join(["wordlstm", *sys.argv[1:]])


def fit_cache_on(step: StepModel, decoding: dict, matrix: np.ndarray, prior: np.ndarray,
                 ids: np.ndarray, unk: int):
    """The continuous cache's theta and weight (cache.fit_cache) for a model's weights and
    decoding, by maximum likelihood on a stretch of training text `ids` (never held-out)."""
    from .cache import fit_cache

    targets = targets_of(ids[1:], unk)
    outputs = stream_outputs(step, ids, pieces=8, desc="reading training text for the cache")
    logp, _ = target_logprobs(make_decoder(decoding, matrix, prior), outputs, targets, ks=())
    return fit_cache(outputs, targets, logp)


def fit_ngram_on(step: StepModel, decoding: dict, matrix: np.ndarray, prior: np.ndarray,
                 train: np.ndarray, start: int, n_fit: int, unk: int, order: int = 3):
    """The word n-gram of the training stream `train` and its mixture weight, fitted by
    maximum likelihood on `train[start:start + n_fit + 1]` with the n-gram counted on the
    rest (counted on its own test text it would claim every word). The network did train
    on those positions, so the weight errs low. Returns (NgramConfig, WordNgram of all of
    `train`)."""
    from .ngram import NgramConfig, WordNgram, fit_weight

    ids = train[start:start + n_fit + 1]
    rest = np.concatenate([train[:start], train[start + n_fit + 1:]])
    if len(rest) < len(ids):  # a small text: count one half, fit on the other
        half = len(train) // 2
        rest, ids = train[:half], train[half:half + n_fit + 1]
    p_ngram = WordNgram.fit(rest, unk, order).target_probs(ids)
    targets = targets_of(ids[1:], unk)
    outputs = stream_outputs(step, ids, pieces=8, desc="reading training text for the n-gram")
    logp, _ = target_logprobs(make_decoder(decoding, matrix, prior), outputs, targets, ks=())
    ok = (targets >= 0) & np.isfinite(logp)
    weight = fit_weight(logp, p_ngram, ok)
    return NgramConfig(order, weight), WordNgram.fit(train, unk, order)


def fit_model_ngram(segmented: str, model_dir: str, positions: int = 20_000, order: int = 3,
                    log=print) -> dict:
    """`wordlstm fit-ngram`: count the word n-gram of a model's training text (its training
    part only, as the model's own hold-out says), fit its weight, and add both to the model
    dir (a new directory swapped in whole, as `train` writes one)."""
    from .modeldir import output_lock

    with output_lock(Path(model_dir)):
        return _fit_model_ngram(segmented, model_dir, positions, order, log)


def _refit_inputs(segmented: str, model_dir, what: str):
    """A trained model dir and its training text's id streams, for fitting test-time parts
    afterwards (`fit-cache`, `fit-ngram`): both need the vector head and the model's split."""
    from .modeldir import load
    from .textio import check_segmented

    check_segmented(segmented)
    loaded = load(model_dir)
    if loaded.config.model.head != "vector":
        raise UserError(f"{model_dir}: {what} is for the vector head")
    return loaded, corpus_ids(segmented, loaded.vectors.index, loaded.config.training.holdout)


def _fit_model_ngram(segmented, model_dir, positions, order, log) -> dict:
    from .modeldir import LOCK, file_hash, replace_dir

    loaded, corpus = _refit_inputs(segmented, model_dir, "the n-gram mixture")
    if len(corpus.train) < 1000:
        raise UserError(f"{segmented}: too little training text to fit the n-gram on")
    positions = min(positions, len(corpus.train) // 2)
    rng = np.random.default_rng(loaded.config.training.seed)
    start = int(rng.integers(0, len(corpus.train) - positions - 1))
    ngcfg, ngram = fit_ngram_on(loaded.step, loaded.config.decoder.to_json(), loaded.vectors.matrix,
                                loaded.log_prior, corpus.train, start, positions, corpus.unk,
                                order)
    out = Path(loaded.model_dir)
    new = out.parent / f".{out.name}.new-{os.getpid()}"
    shutil.rmtree(new, ignore_errors=True)
    try:
        shutil.copytree(out, new, ignore=shutil.ignore_patterns(LOCK))  # the lock stays
        ngram.save(new / "ngram.npz")
        config = replace(loaded.config, decoder=replace(loaded.config.decoder, ngram=ngcfg),
                         files=loaded.config.files | {"ngram.npz": file_hash(new / "ngram.npz")})
        write_json(new / "config.json", config.to_json())
        replace_dir(new, out)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    log(f"{model_dir}: word {order}-gram of {len(corpus.train):,} training tokens, weight "
        f"{ngcfg.weight:g} (fitted on {positions:,} training positions counted without them)")
    return config.decoder.to_json()


DYNAMIC_FIT = 3000  # training positions the dynamic-evaluation learning rate is chosen on


def fit_dynamic_on(step: StepModel, decoding: dict, matrix: np.ndarray, prior: np.ndarray,
                   ids: np.ndarray, unk: int) -> float:
    """The learning rate of dynamic evaluation (dynamic.fit_dynamic_lr) on training text."""
    from .dynamic import fit_dynamic_lr

    return fit_dynamic_lr(step, make_decoder(decoding, matrix, prior), ids[:DYNAMIC_FIT + 1], unk)


def fit_model_cache(segmented: str, model_dir: str, positions: int = 20_000, log=print) -> dict:
    """`wordlstm fit-cache`: fit the test-time adaptation (the continuous cache and the
    dynamic-evaluation learning rate) of an existing model dir (one trained before they
    existed) on its training text, and record it in its config.json."""
    loaded, corpus = _refit_inputs(segmented, model_dir, "the continuous cache")
    if len(corpus.train) < 1000:
        raise UserError(f"{segmented}: too little training text to fit the cache on")
    positions = min(positions, len(corpus.train) // 2)  # a short novel: half of it
    rng = np.random.default_rng(loaded.config.training.seed)
    start = int(rng.integers(0, len(corpus.train) - positions - 1))
    decoding = loaded.config.decoder.to_json()
    cache = fit_cache_on(loaded.step, decoding, loaded.vectors.matrix, loaded.log_prior,
                         corpus.train[start:start + positions + 1], corpus.unk)
    ids = corpus.train[start:start + positions + 1]
    lr = fit_dynamic_on(loaded.step, decoding, loaded.vectors.matrix, loaded.log_prior, ids,
                        corpus.unk)
    config = replace(loaded.config, decoder=replace(loaded.config.decoder, cache=cache,
                                                    dynamic_lr=lr))
    write_json(Path(model_dir) / "config.json", config.to_json())
    log(f"{model_dir}: continuous cache weight {cache.weight:g}, theta {cache.theta:g}, "
        f"{cache.size} positions (fitted on {positions:,} training positions); dynamic "
        f"evaluation learning rate {lr:g} (on {DYNAMIC_FIT:,})")
    return config.decoder.to_json()


def _vectors_file(vectors_path) -> Path:
    from .vectors import resolve_vectors_path

    return resolve_vectors_path(vectors_path)


def _init_weights(model, init_dir: str | Path, cfg: ModelConfig, vectors: Vectors,
                  grown: bool = False) -> None:
    """Copy a trained model dir's embedding and core into `model` (same vocabulary, shapes).
    `grown`: `vectors` is part of that model's vocabulary plus new words (vocab.py): an old
    word's row is taken from the model, a new one's from `vectors`."""
    from .modeldir import load

    loaded = load(init_dir)
    if grown:
        index = {w: i for i, w in enumerate(loaded.vectors.words)}
        matrix = vectors.matrix.copy()
        old = [(j, index[w]) for j, w in enumerate(vectors.words) if w in index]
        if old:
            mine, theirs = map(list, zip(*old))
            matrix[mine] = loaded.vectors.matrix[theirs]
        model.get_layer("word_embedding").set_weights([with_unknown_row(matrix)])
        w = loaded.weights
        set_core_weights(model.get_layer("core"), w.lstm, w.dense_kernel, w.dense_bias)
        return
    if loaded.vectors.words != vectors.words:
        raise UserError(f"{init_dir}: --init-from needs a model with the same vocabulary "
                        "(train it with the same --vectors)")
    mc = loaded.config.model
    if (mc.units, mc.layers, mc.head) != (cfg.units, cfg.layers, cfg.head):
        raise UserError(f"{init_dir}: --init-from needs the same --units, --layers and --head")
    emb = with_unknown_row(loaded.vectors.matrix)
    model.get_layer("word_embedding").set_weights([emb])
    w = loaded.weights
    set_core_weights(model.get_layer("core"), w.lstm, w.dense_kernel, w.dense_bias)


REGULAR_CLAUSES = (4, 8)  # quatrains (绝句) and regulated verse (律诗)


def line_stats(segmented: str, min_share: float = 0.05) -> dict:
    """For line corpora: hashes of every training line (for --novel-only), clause lengths,
    and the regular verse forms the corpus is written in.

    A clause is the run of words between punctuation marks (a poem's 5 or 7 characters); its
    most common length is the default line length of acrostic poems. A line is in a regular
    form when it has 4 or 8 clauses of one length; `forms` lists [length, clauses, share] of
    those covering at least `min_share` of the lines, the commonest first.
    """
    from collections import Counter

    from .tokens import CLAUSE_ENDS, is_punctuation, line_hash
    from .vectors import SegmentedCorpus

    hashes: list[int] = []
    clauses: Counter[int] = Counter()  # clause length -> count
    ends: Counter[str] = Counter()  # the mark ending a clause -> count
    forms: Counter[tuple[int, int]] = Counter()  # (clause length, clauses) -> lines
    for tokens in SegmentedCorpus(segmented, eos=False):
        hashes.append(line_hash(tokens))
        run, lengths = 0, []
        for tok in tokens:
            if is_punctuation(tok):
                if run and tok in CLAUSE_ENDS:
                    clauses[run] += 1
                    ends[tok] += 1
                    lengths.append(run)
                run = 0
            else:
                run += 1
        if run:
            lengths.append(run)
        if len(lengths) in REGULAR_CLAUSES and len(set(lengths)) == 1 and lengths[0] > 1:
            forms[(lengths[0], len(lengths))] += 1
    n = max(len(hashes), 1)
    return {"hashes": np.unique(np.array(hashes, dtype=np.uint64)),
            "clause_length": clauses.most_common(1)[0][0] if clauses else 0,
            "clause_ends": [p for p, _ in ends.most_common(4)], "count": len(hashes),
            "forms": [[length, k, round(c / n, 4)] for (length, k), c in forms.most_common()
                      if c / n >= min_share]}
