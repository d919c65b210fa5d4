"""Backends and devices: data-parallel training on two virtual CPU devices, portable model dirs.

Each case runs the CLI in a fresh process, since the Keras backend (and JAX's device count)
is fixed when Keras is first imported.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from wordlstm.backend import fused_lstm_reason


def test_training_scope_puts_keras_back():
    from wordlstm.backend import import_keras, training_scope

    keras = import_keras()
    with pytest.raises(RuntimeError), training_scope("mixed") as (_, n_devices):
        assert n_devices == 1 and keras.mixed_precision.global_policy().name.startswith("mixed")
        raise RuntimeError
    assert keras.mixed_precision.global_policy().name == "float32"

BACKENDS = [b for b in ("tensorflow", "jax", "torch") if importlib.util.find_spec(b)]


def cli(*args, backend, tmp_path, virtual=0, cache=None):
    env = {**os.environ, "KERAS_BACKEND": backend,
           "WORDLSTM_CACHE": str(cache or tmp_path / f"cache-{backend}")}
    if virtual:
        env["WORDLSTM_VIRTUAL_CPUS"] = str(virtual)
    out = subprocess.run([sys.executable, "-m", "wordlstm.cli", *map(str, args)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return out


@pytest.mark.parametrize("backend", [b for b in ("jax", "tensorflow") if b in BACKENDS])
def test_data_parallel_on_two_virtual_devices(backend, segmented, vectors_file, tmp_path):
    info = json.loads(cli("info", "--json", backend=backend, tmp_path=tmp_path, virtual=2).stdout)
    assert info["backend"] == backend and len(info["devices"]) >= 1
    out = cli("train", segmented, "--vectors", vectors_file, "-o", tmp_path / "m", "--window", 5,
              "--units", 8, "--layers", 1, "--epochs", 2, "--batch-size", 16, "--devices", "2",
              backend=backend, tmp_path=tmp_path, virtual=2)
    assert "data parallel over 2 devices" in out.stderr
    hist = json.loads((tmp_path / "m" / "history.json").read_text())["epochs"]
    assert len(hist) == 2 and hist[1]["loss"] < hist[0]["loss"]  # the default loss fell: it learned
    assert hist[1]["val_bits_per_char"] < hist[0]["val_bits_per_char"]


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs two Keras backends installed")
def test_model_dir_is_portable_across_backends(segmented, vectors_file, tmp_path):
    trained_on, *others = BACKENDS
    cli("train", segmented, "--vectors", vectors_file, "-o", tmp_path / "m", "--window", 5,
        "--units", 8, "--layers", 1, "--epochs", 1, "-q", backend=others[0], tmp_path=tmp_path)
    texts = {}
    for backend in BACKENDS:  # each loads model.keras itself (a cache of its own)
        out = cli("continue-text", "老王", "--model", tmp_path / "m", "-n", 30, "--seed", 5,
                  "--json", backend=backend, tmp_path=tmp_path)
        texts[backend] = json.loads(out.stdout)["texts"]
    assert len({json.dumps(t) for t in texts.values()}) == 1, texts


def test_fused_lstm_conditions():
    assert fused_lstm_reason() is None
    assert "recurrent dropout" in fused_lstm_reason({"recurrent_dropout": 0.2})
    assert "activation" in fused_lstm_reason({"activation": "relu"})


def test_devices_flag_errors(segmented, vectors_file, tmp_path):
    from click.testing import CliRunner

    from wordlstm.cli import main

    r = CliRunner().invoke(main, ["train", str(segmented), "--vectors", str(vectors_file), "-o",
                                  str(tmp_path / "m"), "--devices", "64", "-q"])
    assert r.exit_code == 1 and "sees" in r.output and "Traceback" not in r.output


def test_mixed_precision_trains_and_ships_float32(segmented, vectors_file, tmp_path):
    from wordlstm.model import ModelConfig
    from wordlstm.modeldir import load
    from wordlstm.segment import SegmenterConfig
    from wordlstm.train import TrainConfig, train

    notes = []
    train(str(segmented), str(vectors_file), tmp_path / "m",
          ModelConfig(window=5, units=8, layers=1),
          TrainConfig(epochs=1, batch_size=64, precision="mixed"), SegmenterConfig(),
          verbose=0, log=notes.append)
    assert any("bfloat16" in n for n in notes)  # on a CPU it says what it does
    weights = load(tmp_path / "m").weights
    assert weights.embedding.dtype == np.float32 and weights.lstm[0][0].dtype == np.float32
    import keras

    assert keras.mixed_precision.global_policy().name == "float32"  # restored afterwards


@pytest.mark.skipif("jax" not in BACKENDS, reason="needs JAX")
def test_jax_data_parallel_survives_hundreds_of_batches_without_a_terminal(tmp_path):
    """JAX `--devices 2` used to abort (XLA rendezvous timeout, exit 134) after a few hundred
    batches whenever stderr was not a terminal: with only epoch callbacks Keras dispatched
    them on threads that blocked reading device arrays. The training callback now defines a
    (no-op) batch-end hook, so callbacks run in order. stderr is a pipe here, as in CI."""
    import random

    rng = random.Random(5)  # lines of random characters from a 3,000-character set
    chars = [chr(0x4E00 + i) for i in range(3000)]
    src = tmp_path / "t.txt"
    src.write_text("".join("".join(rng.choice(chars) for _ in range(rng.randint(20, 60)))
                           + "\n" for _ in range(3600)), encoding="utf-8")
    cli("segment", src, "-o", tmp_path / "c.txt", "--unit", "char", "-q", backend="jax",
        tmp_path=tmp_path)
    cli("train-vectors", tmp_path / "c.txt", "-o", tmp_path / "v", "--size", 16, "--epochs", 1,
        "--min-count", 1, "--lines", "-q", backend="jax", tmp_path=tmp_path)
    out = cli("train", tmp_path / "c.txt", "--vectors", tmp_path / "v", "-o", tmp_path / "m",
              "--units", 8, "--layers", 1, "--window", 5, "--batch-size", 64, "--devices", "2",
              "--epochs", 2, "--lines", backend="jax", tmp_path=tmp_path, virtual=2)
    hist = json.loads((tmp_path / "m" / "history.json").read_text())["epochs"]
    assert len(hist) == 2 and hist[0]["seconds"] > 0
    batches = json.loads((tmp_path / "m" / "config.json").read_text())["training"][
        "train_tokens"] // (64 * 5)
    assert batches >= 400, batches
    assert "data parallel over 2 devices" in out.stderr
