"""The GPU run's figures (bench/gpu.sh runs this): training targets/s and generation words/s
of the default architecture, on the device JAX gives, said first.

    python bench/gpu.py [--cpu] [--require-gpu] [--steps N]

Training: `--steps` timed steps (after two that compile) on random word ids, for the CPU
batch (64, float32), a GPU-sized batch (1024) in float32 and `--precision mixed`, and the
GPU batch over every device (`--devices all`). Generation: greedy words/s of one network
step a word, the numpy step model (what generation uses) against the same step jitted by
JAX, for 1 and 64 streams. Peak device memory last. Every figure is one JSON line.
`--cpu`: a small network on the CPU, to test this script, not to measure anything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def say(**row) -> None:
    print(json.dumps(row, ensure_ascii=False), flush=True)


def setup(args) -> dict:
    """The backend and devices, printed; exit 3 without a GPU when one is required."""
    if os.environ.get("KERAS_BACKEND", "jax") != "jax":
        sys.exit("error: bench/gpu.py measures the jax backend (KERAS_BACKEND=jax)")
    os.environ["KERAS_BACKEND"] = "jax"
    if args.cpu:
        os.environ["JAX_PLATFORMS"] = "cpu"
        os.environ.setdefault("WORDLSTM_VIRTUAL_CPUS", "2")  # so --devices all has two
    from wordlstm.backend import import_keras

    keras = import_keras()
    import jax

    devices = jax.devices()
    gpus = [d for d in devices if d.platform == "gpu"]
    info = {"backend": keras.backend.backend(), "jax": jax.__version__,
            "keras": keras.__version__, "platform": devices[0].platform,
            "devices": [str(getattr(d, "device_kind", d.platform)) for d in devices]}
    say(what="device", **info)
    if not gpus and not args.cpu:
        print("NO GPU: jax.devices() lists only " + ", ".join(sorted({d.platform for d in devices}))
              + " (install jax with CUDA: pip install 'jax[cuda12]'); these figures are CPU's",
              file=sys.stderr, flush=True)
        if args.require_gpu:
            sys.exit(3)
    return info


def settings(args):
    from wordlstm.model import ModelConfig

    if args.cpu:  # small: the script runs in CI in seconds
        return ModelConfig(units=32, layers=1, dim=16, vocab_size=2000, window=16), 32, 128
    shipped = Path(__file__).resolve().parent.parent / "models" / "default" / "config.json"
    if shipped.is_file():  # the shipped model's architecture, vocabulary size included
        return ModelConfig.from_json(json.loads(shipped.read_text())["model"]), 64, 1024
    return ModelConfig(dim=200, vocab_size=22732), 64, 1024  # the same, by its numbers


def train_rate(cfg, batch: int, steps: int, precision: str, devices: str) -> dict:
    from wordlstm.backend import import_keras, training_scope
    from wordlstm.model import build_model, compile_model

    keras = import_keras()
    rng = np.random.default_rng(0)
    emb = rng.normal(0, 0.3, (cfg.vocab_size + 1, cfg.dim)).astype(np.float32)
    emb[-1] = 0
    with training_scope(precision, devices) as (scope, n):
        batch -= batch % n
        with scope():
            keras.utils.set_random_seed(1)
            model = compile_model(build_model(cfg, emb), cfg, 1e-3)
            x = rng.integers(0, cfg.vocab_size, (batch, cfg.window)).astype(np.int32)
            y = rng.integers(0, cfg.vocab_size, (batch, cfg.window)).astype(np.int32)
            for _ in range(2):  # compiles
                model.train_on_batch(x, y)
            t0 = time.perf_counter()
            for _ in range(steps):
                loss = model.train_on_batch(x, y)
            seconds = time.perf_counter() - t0
    return {"batch": batch, "devices": n, "precision": precision, "steps": steps,
            "targets_per_s": round(steps * batch * cfg.window / seconds, 1),
            "loss_finite": bool(np.isfinite(np.asarray(loss)).all()), "model": model}


def generation_rates(model, batch: int, words: int) -> list[dict]:
    import jax
    import jax.numpy as jnp

    from wordlstm.numeric import unit_rows
    from wordlstm.train import step_model_of

    step = step_model_of(model)
    unit = unit_rows(step.embedding[:-1])

    def numpy_words(n):
        ids, state = np.zeros(batch, np.int64), step.zero_state(batch)
        for _ in range(n):
            out, state = step.step(ids, state)
            ids = np.argmax(out @ unit.T, axis=1)
        return ids

    params = jax.tree.map(jnp.asarray, (step.embedding, step.layers, step.dense_kernel,
                                         step.dense_bias, unit))

    @jax.jit
    def jax_step(p, ids, state):
        emb, layers, kernel, bias, unit_ = p
        x, new = emb[ids], []
        for (k, r, b), (h, c) in zip(layers, state):
            i, f, g, o = jnp.split(x @ k + h @ r + b, 4, axis=1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            new.append((h, c))
            x = h
        return jnp.argmax((x @ kernel + bias) @ unit_.T, axis=1), new

    def jax_words(n):
        ids = jnp.zeros(batch, jnp.int32)
        state = [(jnp.zeros((batch, u)), jnp.zeros((batch, u))) for u in step.units]
        for _ in range(n):
            ids, state = jax_step(params, ids, state)
        return np.asarray(ids)

    rows = []
    for name, fn in (("numpy step", numpy_words), ("jitted jax step", jax_words)):
        fn(2)  # warm-up (compiles)
        t0 = time.perf_counter()
        fn(words)
        rows.append({"what": "generation", "step": name, "streams": batch,
                     "words_per_s": round(batch * words / (time.perf_counter() - t0), 1)})
    return rows


def peak_memory() -> int | None:
    import jax

    peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in jax.local_devices()]
    peaks = [p for p in peaks if p is not None]
    return max(peaks) if peaks else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu", action="store_true", help="a small network on the CPU (CI)")
    ap.add_argument("--require-gpu", action="store_true",
                    default=os.environ.get("GPU_SH_REQUIRE_GPU", "") not in ("", "0"))
    ap.add_argument("--steps", type=int, default=int(os.environ.get("GPU_SH_STEPS", "50")))
    args = ap.parse_args()
    setup(args)
    cfg, small, big = settings(args)
    say(what="model", units=cfg.units, layers=cfg.layers, dim=cfg.dim, vocab=cfg.vocab_size,
        window=cfg.window)
    model = None
    for label, batch, precision, devices in (("CPU-equivalent settings", small, "float32", "1"),
                                             ("GPU-sized batch", big, "float32", "1"),
                                             ("GPU-sized batch", big, "mixed", "1"),
                                             ("GPU-sized batch, --devices all", big, "float32", "all")):
        row = train_rate(cfg, batch, args.steps, precision, devices)
        model = row.pop("model") if model is None else model
        row.pop("model", None)
        say(what="training", config=label, **row)
    words = max(args.steps, 5)
    for batch in (1, 64):
        for row in generation_rates(model, batch, words):
            say(**row)
    peak = peak_memory()
    say(what="peak device memory", bytes=peak,
        gib=None if peak is None else round(peak / 2**30, 2))


if __name__ == "__main__":
    main()
