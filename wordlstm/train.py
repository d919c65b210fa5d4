"""Training: read the corpus as ids, fit the model on windows made on the fly, checkpoint.

After every epoch the model (with its optimizer state) and the history are saved to
`OUT/checkpoint/`, atomically; `--resume` continues from there after Ctrl-C or a crash,
with the same data order. The finished model dir is written only at the end.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .dataset import corpus_ids, make_windows, window_starts, windows_dataset
from .errors import UserError
from .evaluate import topk_hits
from .generate import Decoder, PriorDecoder, SoftmaxDecoder, StepModel, fit_tau, log_prior
from .model import (ID_TARGET_LOSSES, ModelConfig, build_model, compile_model, input_embedding,
                    bound_targets)
from .modeldir import read_json, save_model_dir, vocab_hash
from .segment import SegmenterConfig
from .textio import atomic_path, write_json
from .vectors import EOS, load_vectors


@dataclass
class TrainConfig:
    """Optimisation settings; saved under "training" in config.json."""

    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    val_fraction: float = 0.05
    seed: int = 1
    lines: bool = False  # each line is a document (poems, names), see dataset.corpus_ids
    devices: str = "1"  # "all" or a count: data-parallel training (backend.distribution_scope)
    precision: str = "float32"  # or "mixed"
    patience: int = 2  # stop after this many epochs without a better validation top-1 (0: never)
    decode: str = "prior"  # vector head: "prior" (cosine + word frequency) or "cosine"


class Scorer:
    """Validation top-1 decoded as generation decodes: what early stopping watches.

    Runs the numpy step model (the generator's own) on a fixed sample of validation windows;
    for the prior decoder, tau is refitted on a sample of training windows first.
    """

    def __init__(self, ids, split, cfg: ModelConfig, tcfg: TrainConfig, unit, prior,
                 n_val: int = 10_000, n_fit: int = 5_000):
        rng = np.random.default_rng(tcfg.seed)
        self.ids, self.window = ids, cfg.window
        self.val = np.sort(_sample(rng, split.val, n_val))
        self.fit = np.sort(_sample(rng, split.train, n_fit))
        self.softmax = cfg.head == "softmax"
        self.unit, self.prior = unit, prior
        self.use_prior = not self.softmax and tcfg.decode == "prior"

    def decoding(self, step: StepModel) -> dict:
        """The decoder settings for these weights: {"kind": ..., "tau": ...}."""
        if not self.use_prior:
            return {"kind": "softmax" if self.softmax else "cosine"}
        x, t = make_windows(self.ids, self.fit, self.window)
        cos = Decoder(self.unit).cosines(_run(step, x))
        return {"kind": "prior", "tau": fit_tau(cos, t, self.prior), "fitted_on": len(t)}

    def decoder(self, decoding: dict):
        if decoding["kind"] == "softmax":
            return SoftmaxDecoder()
        if decoding["kind"] == "prior":
            return PriorDecoder(self.unit, self.prior, decoding["tau"])
        return Decoder(self.unit)

    def top1(self, step: StepModel, decoding: dict) -> float | None:
        if not len(self.val):
            return None
        x, t = make_windows(self.ids, self.val, self.window)
        return topk_hits(self.decoder(decoding).scores(_run(step, x)), t, ks=(1,))[1] / len(t)


def _sample(rng, starts: np.ndarray, n: int) -> np.ndarray:
    return rng.choice(starts, n, replace=False) if len(starts) > n else starts.copy()


def _run(step: StepModel, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    return np.concatenate([step.run(x[i:i + batch])[0] for i in range(0, len(x), batch)])


def _step_model(model) -> StepModel:
    from .modeldir import _weights_from_keras

    return StepModel(_weights_from_keras(model))


def _make_callbacks(out: Path, tcfg: TrainConfig, state: dict, n_train: int,
                    log, scorer: Scorer):
    from .backend import import_keras

    keras = import_keras()

    ckpt = out / "checkpoint"

    class EpochEnd(keras.callbacks.Callback):
        """Record each epoch's figures and save a checkpoint to resume from."""

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()
            self.t_fit = None

        def on_test_begin(self, logs=None):  # the epoch's training part ends here
            if self.t_fit is None:
                self.t_fit = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            # windows/s counts training only, not the validation pass after it
            seconds = (self.t_fit or time.perf_counter()) - self.t0
            row = {k: float(v) for k, v in (logs or {}).items()}
            row.update(epoch=epoch + 1, seconds=round(seconds, 2),
                       windows_per_s=round(n_train / max(seconds, 1e-9), 1))
            step = _step_model(self.model)
            decoding = scorer.decoding(step)
            top1 = scorer.top1(step, decoding)
            ckpt.mkdir(parents=True, exist_ok=True)
            if top1 is not None:
                row["val_top1"] = round(top1, 5)
                if top1 > state.get("best_top1", -1.0):
                    state.update(best_top1=top1, best_epoch=epoch + 1)
                    with atomic_path(ckpt / "best.weights.h5") as tmp:
                        self.model.save_weights(tmp)
                elif tcfg.patience and epoch + 1 - state["best_epoch"] >= tcfg.patience:
                    log(f"validation top-1 has not improved for {tcfg.patience} epochs: "
                        f"stopping, keeping epoch {state['best_epoch']}")
                    self.model.stop_training = True
            state["history"].append(row)
            state["epoch"] = epoch + 1
            with atomic_path(ckpt / "model.keras") as tmp:
                self.model.save(tmp)
            write_json(ckpt / "state.json", state)
            log(f"epoch {epoch + 1}/{tcfg.epochs}: {n_train:,} windows in {seconds:.0f} s "
                f"({row['windows_per_s']:,.0f} windows/s), "
                + ", ".join(f"{k} {v:.4f}" for k, v in row.items()
                            if k not in ("epoch", "seconds", "windows_per_s")))

    return [EpochEnd()]


def _resume_state(ckpt: Path, out: Path, state: dict, tcfg: TrainConfig, vectors_path: str):
    """Settings and history of an interrupted run; the run's length and hardware may change."""
    if not (ckpt / "state.json").is_file() or not (ckpt / "model.keras").is_file():
        raise UserError(f"{out}: nothing to resume (no checkpoint/ from an earlier run)")
    saved = read_json(ckpt / "state.json")
    if saved.get("vocab_sha256") != state["vocab_sha256"]:
        raise UserError(f"{out}: the checkpoint was trained with other vectors than "
                        f"{vectors_path}; resume with the same --vectors")
    cfg = ModelConfig(**saved["model"])
    saved["training"].update(epochs=tcfg.epochs, devices=tcfg.devices, precision=tcfg.precision,
                             patience=tcfg.patience)
    tcfg = TrainConfig(**saved["training"])
    state.update(epoch=saved["epoch"], history=saved["history"], model=cfg.to_json(),
                 training=asdict(tcfg))
    for key in ("best_top1", "best_epoch"):
        if key in saved:
            state[key] = saved[key]
    return cfg, tcfg


def train(segmented: str, vectors_path: str, out: str | Path, cfg: ModelConfig,
          tcfg: TrainConfig, segmenter: SegmenterConfig, resume: bool = False,
          verbose: int = 1, log=print) -> dict:
    """Train a model on a segmented file and write a complete model dir to `out`."""
    from .backend import distribution_scope, end_distribution, import_keras, set_precision
    from .modeldir import load_keras_model

    keras = import_keras()
    out = Path(out)
    ckpt = out / "checkpoint"
    vectors = load_vectors(vectors_path)
    cfg.dim, cfg.vocab_size = vectors.dim, len(vectors)
    state = {"epoch": 0, "history": [], "model": cfg.to_json(), "training": asdict(tcfg),
             "vocab_sha256": vocab_hash(vectors.words), "segmenter": segmenter.to_json()}
    if resume:
        cfg, tcfg = _resume_state(ckpt, out, state, tcfg, vectors_path)

    ids, unknown, target_mask = corpus_ids(segmented, vectors.index,
                                           lines_window=cfg.window if tcfg.lines else 0)
    split = window_starts(ids, cfg.window, len(vectors), tcfg.val_fraction, target_mask)
    if len(split.train) == 0:
        raise UserError(f"{segmented}: too little text to train on: {len(ids)} tokens, "
                        f"window {cfg.window}; use a larger corpus or a smaller --window")
    log(f"corpus: {len(ids):,} tokens ({unknown:,} outside the {len(vectors):,}-word vocabulary), "
        f"{len(split.train):,} training and {len(split.val):,} validation windows")

    set_precision(tcfg.precision, log)
    try:
        scope, n_devices = distribution_scope(tcfg.devices, log)
        # Every batch must split evenly over the devices.
        batch = max(n_devices, tcfg.batch_size - tcfg.batch_size % n_devices)
        unit = vectors.target_space(cfg.target) if cfg.head == "vector" else None
        if cfg.head == "softmax" or cfg.loss in ID_TARGET_LOSSES:
            def targets(t):  # the next word's id
                return t
        else:
            def targets(t):  # the next word's unit vector
                return unit[t]
        train_ds = windows_dataset(ids, split.train, cfg.window, batch, targets,
                                   shuffle=True, seed=tcfg.seed, epoch=state["epoch"],
                                   drop_remainder=n_devices > 1)
        val_ds = None
        if len(split.val) >= batch or (len(split.val) and n_devices == 1):
            val_ds = windows_dataset(ids, split.val, cfg.window, batch, targets,
                                     shuffle=False, drop_remainder=n_devices > 1)
        prior = log_prior(ids[split.train + cfg.window], len(vectors))
        scorer = Scorer(ids, split, cfg, tcfg, unit, prior)
        with scope():
            if resume:
                with bound_targets(unit):
                    model = load_keras_model(ckpt, compile=True)
                log(f"resuming from epoch {state['epoch']} of {tcfg.epochs}")
            else:
                keras.utils.set_random_seed(tcfg.seed)
                model = compile_model(build_model(cfg, input_embedding(vectors.matrix)), cfg,
                                      tcfg.learning_rate, targets=unit)
            stopped = (tcfg.patience and "best_epoch" in state
                       and state["epoch"] - state["best_epoch"] >= tcfg.patience)
            if state["epoch"] < tcfg.epochs and not stopped:
                model.fit(train_ds, validation_data=val_ds, epochs=tcfg.epochs,
                          initial_epoch=state["epoch"], verbose=verbose,
                          callbacks=_make_callbacks(out, tcfg, state, len(split.train), log,
                                                    scorer))
            if tcfg.patience and state.get("best_epoch", state["epoch"]) != state["epoch"]:
                log(f"keeping epoch {state['best_epoch']}: the best validation top-1 "
                    f"({state['best_top1']:.2%})")
                model.load_weights(ckpt / "best.weights.h5")
    finally:
        end_distribution()
        set_precision("float32")

    final = build_model(cfg)  # plain float32 copy without optimizer state: what ships
    final.set_weights([np.asarray(w, dtype=np.float32) for w in model.get_weights()])
    # Decoding settings for the weights that ship, fitted on more training windows.
    n_fit = int(min(20_000, 4e8 / len(vectors)))  # cosines of n_fit x vocab: at most 1.6 GB
    decoding = Scorer(ids, split, cfg, tcfg, unit, prior, n_val=0, n_fit=n_fit).decoding(
        _step_model(final))
    if decoding["kind"] == "prior":
        log(f"decoding: cosine / {decoding['tau']:.3f} + log word frequency "
            f"(tau fitted on {decoding['fitted_on']:,} training windows)")
    training = asdict(tcfg) | {"corpus": Path(segmented).name, "tokens": int(len(ids)),
                               "unknown_tokens": int(unknown), "train_windows": int(len(split.train)),
                               "val_windows": int(len(split.val)), "eos": EOS in vectors.index}
    lines = line_stats(segmented) if tcfg.lines else None
    training["best_epoch"] = state.get("best_epoch", state["epoch"]) if tcfg.patience \
        else state["epoch"]
    save_model_dir(out, final, cfg, vectors, segmenter, training, {"epochs": state["history"]},
                   lines=lines, decoder=decoding,
                   log_prior=prior if decoding["kind"] == "prior" else None)
    shutil.rmtree(ckpt, ignore_errors=True)
    return {"history": state["history"], "out": str(out)}


def line_stats(segmented: str) -> dict:
    """For line corpora: hashes of every training line (for --novel-only) and clause lengths.

    A clause is the run of words between punctuation marks (a poem's 5 or 7 characters); its
    most common length is the default line length of acrostic poems.
    """
    from collections import Counter

    from .generate import CLAUSE_ENDS, is_punctuation, line_hash
    from .vectors import SegmentedCorpus

    hashes, clauses, ends = [], Counter(), Counter()
    for tokens in SegmentedCorpus(segmented, eos=False):
        hashes.append(line_hash(tokens))
        run = 0
        for tok in tokens:
            if is_punctuation(tok):
                if run and tok in CLAUSE_ENDS:
                    clauses[run] += 1
                    ends[tok] += 1
                run = 0
            else:
                run += 1
    return {"hashes": np.unique(np.array(hashes, dtype=np.uint64)),
            "clause_length": clauses.most_common(1)[0][0] if clauses else 0,
            "clause_ends": [p for p, _ in ends.most_common(4)], "count": len(hashes)}
