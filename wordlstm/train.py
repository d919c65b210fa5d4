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
from .modeldir import read_json, save_model_dir, vocab_hash, write_json
from .segment import SegmenterConfig
from .textio import atomic_path
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


def backend_line() -> str:
    """One line: which Keras backend and devices training will use."""
    from .backend import import_keras

    keras = import_keras()

    backend = keras.backend.backend()
    devices = []
    try:
        if backend == "jax":
            import jax

            devices = [f"{d.platform}:{d.id}" for d in jax.devices()]
        elif backend == "tensorflow":
            import tensorflow as tf

            devices = [d.name.replace("/physical_device:", "") for d in tf.config.list_physical_devices()]
        elif backend == "torch":
            import torch

            devices = ["cuda:%d" % i for i in range(torch.cuda.device_count())] or ["cpu"]
    except Exception:  # device listing is informative only
        pass
    gpu = any("gpu" in d.lower() or "cuda" in d.lower() for d in devices)
    fused = "fused cuDNN LSTM" if gpu else "CPU LSTM (no GPU)"
    return f"keras {keras.__version__}, backend {backend}, devices {', '.join(devices) or '?'}: {fused}"


def _make_callbacks(out: Path, cfg: ModelConfig, tcfg: TrainConfig, state: dict, n_train: int,
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


def train(segmented: str, vectors_path: str, out: str | Path, cfg: ModelConfig,
          tcfg: TrainConfig, segmenter: SegmenterConfig, resume: bool = False,
          verbose: int = 1, log=print) -> dict:
    """Train a model on a segmented file and write a complete model dir to `out`."""
    from .backend import import_keras

    keras = import_keras()

    out = Path(out)
    vectors = load_vectors(vectors_path)
    cfg.dim, cfg.vocab_size = vectors.dim, len(vectors)
    ckpt = out / "checkpoint"
    state = {"epoch": 0, "history": [], "model": cfg.to_json(), "training": asdict(tcfg),
             "vocab_sha256": vocab_hash(vectors.words), "segmenter": segmenter.to_json()}
    if resume:
        if not (ckpt / "state.json").is_file() or not (ckpt / "model.keras").is_file():
            raise UserError(f"{out}: nothing to resume (no checkpoint/ from an earlier run)")
        saved = read_json(ckpt / "state.json")
        if saved.get("vocab_sha256") != state["vocab_sha256"]:
            raise UserError(f"{out}: the checkpoint was trained with other vectors than "
                            f"{vectors_path}; resume with the same --vectors")
        cfg = ModelConfig(**saved["model"])
        saved["training"]["epochs"] = tcfg.epochs
        tcfg = TrainConfig(**saved["training"])
        state.update(epoch=saved["epoch"], history=saved["history"], model=cfg.to_json(),
                     training=asdict(tcfg))
        from .modeldir import load_keras_model

        model = load_keras_model(ckpt, compile=True)
        log(f"resuming from epoch {state['epoch']} of {tcfg.epochs}")
    else:
        keras.utils.set_random_seed(tcfg.seed)
        model = compile_model(build_model(cfg, input_embedding(vectors.matrix)), cfg,
                              tcfg.learning_rate)

    ids, unknown, target_mask = corpus_ids(segmented, vectors.index,
                                           lines_window=cfg.window if tcfg.lines else 0)
    split = window_starts(ids, cfg.window, len(vectors), tcfg.val_fraction, target_mask)
    if len(split.train) == 0:
        raise UserError(f"{segmented}: too little text to train on: {len(ids)} tokens, "
                        f"window {cfg.window}; use a larger corpus or a smaller --window")
    unit = vectors.target_space(cfg.target)

    def targets(t):
        return unit[t]

    train_ds = windows_dataset(ids, split.train, cfg.window, tcfg.batch_size, targets,
                               shuffle=True, seed=tcfg.seed, epoch=state["epoch"])
    val_ds = (windows_dataset(ids, split.val, cfg.window, tcfg.batch_size, targets, shuffle=False)
              if len(split.val) else None)
    log(f"corpus: {len(ids):,} tokens ({unknown:,} outside the {len(vectors):,}-word vocabulary), "
        f"{len(split.train):,} training and {len(split.val):,} validation windows")
    callbacks = _make_callbacks(out, cfg, tcfg, state, len(split.train), log)
    if state["epoch"] < tcfg.epochs:
        model.fit(train_ds, validation_data=val_ds, epochs=tcfg.epochs,
                  initial_epoch=state["epoch"], verbose=verbose, callbacks=callbacks)

    final = build_model(cfg)  # uncompiled copy: the shipped file carries no optimizer state
    final.set_weights(model.get_weights())
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

    from .generate import is_punctuation, line_hash
    from .vectors import SegmentedCorpus

    hashes, clauses, ends = [], Counter(), Counter()
    for tokens in SegmentedCorpus(segmented, eos=False):
        hashes.append(line_hash(tokens))
        run = 0
        for tok in tokens:
            if is_punctuation(tok):
                if run:
                    clauses[run] += 1
                    ends[tok] += 1
                run = 0
            else:
                run += 1
    return {"hashes": np.unique(np.array(hashes, dtype=np.uint64)),
            "clause_length": clauses.most_common(1)[0][0] if clauses else 0,
            "clause_ends": [p for p, _ in ends.most_common(4)], "count": len(hashes)}
