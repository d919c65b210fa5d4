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

from .dataset import corpus_ids, window_starts, windows_dataset
from .errors import UserError
from .model import ModelConfig, build_model, compile_model, input_embedding
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


def _make_callbacks(out: Path, tcfg: TrainConfig, state: dict, n_train: int,
                    log):
    from .backend import import_keras

    keras = import_keras()

    ckpt = out / "checkpoint"

    class EpochEnd(keras.callbacks.Callback):
        """Record each epoch's figures and save a checkpoint to resume from."""

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.t0
            row = {k: float(v) for k, v in (logs or {}).items()}
            row.update(epoch=epoch + 1, seconds=round(seconds, 2),
                       windows_per_s=round(n_train / max(seconds, 1e-9), 1))
            state["history"].append(row)
            state["epoch"] = epoch + 1
            ckpt.mkdir(parents=True, exist_ok=True)
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
    saved["training"].update(epochs=tcfg.epochs, devices=tcfg.devices, precision=tcfg.precision)
    tcfg = TrainConfig(**saved["training"])
    state.update(epoch=saved["epoch"], history=saved["history"], model=cfg.to_json(),
                 training=asdict(tcfg))
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
        if cfg.head == "softmax":
            def targets(t):  # the next word's id
                return t
        else:
            unit = vectors.target_space(cfg.target)

            def targets(t):  # the next word's unit vector
                return unit[t]
        train_ds = windows_dataset(ids, split.train, cfg.window, batch, targets,
                                   shuffle=True, seed=tcfg.seed, epoch=state["epoch"],
                                   drop_remainder=n_devices > 1)
        val_ds = None
        if len(split.val) >= batch or (len(split.val) and n_devices == 1):
            val_ds = windows_dataset(ids, split.val, cfg.window, batch, targets,
                                     shuffle=False, drop_remainder=n_devices > 1)
        with scope():
            if resume:
                model = load_keras_model(ckpt, compile=True)
                log(f"resuming from epoch {state['epoch']} of {tcfg.epochs}")
            else:
                keras.utils.set_random_seed(tcfg.seed)
                model = compile_model(build_model(cfg, input_embedding(vectors.matrix)), cfg,
                                      tcfg.learning_rate)
            if state["epoch"] < tcfg.epochs:
                model.fit(train_ds, validation_data=val_ds, epochs=tcfg.epochs,
                          initial_epoch=state["epoch"], verbose=verbose,
                          callbacks=_make_callbacks(out, tcfg, state, len(split.train), log))
    finally:
        end_distribution()
        set_precision("float32")

    final = build_model(cfg)  # plain float32 copy without optimizer state: what ships
    final.set_weights([np.asarray(w, dtype=np.float32) for w in model.get_weights()])
    training = asdict(tcfg) | {"corpus": Path(segmented).name, "tokens": int(len(ids)),
                               "unknown_tokens": int(unknown), "train_windows": int(len(split.train)),
                               "val_windows": int(len(split.val)), "eos": EOS in vectors.index}
    lines = line_stats(segmented) if tcfg.lines else None
    save_model_dir(out, final, cfg, vectors, segmenter, training, {"epochs": state["history"]},
                   lines=lines)
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
