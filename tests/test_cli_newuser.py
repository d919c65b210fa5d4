"""What a new user trips over (issue 23): a second `train -o` over a model, lock files left
beside the models, silent steps, no warning on a corpus too small to learn from, a slow
`info`."""

import hashlib
import json
import shutil
import subprocess
import sys

import pytest
from conftest import TINY, assert_clear_error, run

import wordlstm.train as train_mod
from wordlstm.errors import UserError
from wordlstm.model import ModelConfig
from wordlstm.modeldir import load
from wordlstm.segment import SegmenterConfig
from wordlstm.train import TrainConfig, train

SMALL = ["--window", "6", "--units", "12", "--layers", "1", "--dropout", "0", "--epochs", "1"]


def _digest(d):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in d.iterdir() if p.is_file()}


def test_train_over_a_model_is_refused_unless_told_what_to_do(model_dir, segmented, vectors_file,
                                                               tmp_path):
    out = tmp_path / "m"
    shutil.copytree(model_dir, out)
    before = _digest(out)
    r = run("train", segmented, "--vectors", vectors_file, "-o", out, *SMALL, ok=False)
    assert_clear_error(r, str(out), "a trained model", "--overwrite")
    assert _digest(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    # An interrupted run's checkpoint: --resume continues it, so restarting it is refused too.
    ckpt = tmp_path / "new" / "checkpoint"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"epoch": 2}))
    r = run("train", segmented, "--vectors", vectors_file, "-o", tmp_path / "new", *SMALL, ok=False)
    assert_clear_error(r, "interrupted training (2 epoch(s) saved)", "--resume", "--overwrite")
    r = run("train", segmented, "--vectors", vectors_file, "-o", out, *SMALL, "--resume",
            "--overwrite", ok=False)
    assert_clear_error(r, "choose one")


def _check_old_then_stop(old_seed):
    """Callbacks that check, at the end of epoch 1, that the old model still loads whole
    (the one being replaced), then stop the run as Ctrl-C would."""
    original = train_mod._make_callbacks

    def make(ckpt, *args, **kwargs):
        import keras

        class OldStillThere(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                loaded = load(ckpt.parent)
                assert loaded.config.training.seed == old_seed
                raise KeyboardInterrupt

        return original(ckpt, *args, **kwargs) + [OldStillThere()]

    return make


def test_overwrite_keeps_the_old_model_until_the_new_one_is_complete(
        model_dir, segmented, vectors_file, tmp_path, monkeypatch):
    parent = tmp_path / "models"
    parent.mkdir()
    out = parent / "m"
    shutil.copytree(model_dir, out)
    before = _digest(out)
    old_seed = json.loads((out / "config.json").read_text())["training"]["seed"]
    # What killed runs of earlier versions left beside it: a lock file and a half-written dir
    # of a process that is gone.
    (parent / ".m.lock").write_text("pid 1")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (parent / f".m.new-{gone}").mkdir()
    args = (str(segmented), str(vectors_file), out, ModelConfig(**TINY))
    tcfg = {"epochs": 2, "batch_size": 16, "seed": old_seed + 1}
    quiet = {"verbose": 0, "log": lambda *a: None}
    with pytest.raises(UserError, match="--overwrite"):
        train(*args, TrainConfig(**tcfg), SegmenterConfig(), **quiet)
    with monkeypatch.context() as m:
        m.setattr(train_mod, "_make_callbacks", _check_old_then_stop(old_seed))
        with pytest.raises(KeyboardInterrupt):
            train(*args, TrainConfig(**tcfg), SegmenterConfig(), overwrite=True, **quiet)
    assert _digest(out) == before  # interrupted: the old model is untouched
    assert (out / "checkpoint" / "state.json").is_file()
    assert sorted(p.name for p in parent.iterdir()) == ["m"]  # no lock, no leftovers beside it
    train(*args, TrainConfig(**tcfg), SegmenterConfig(), overwrite=True, **quiet)
    assert load(out).config.training.seed == old_seed + 1
    assert sorted(p.name for p in parent.iterdir()) == ["m"]
    assert not (out / "checkpoint").exists() and not (out / ".lock").exists()


def test_a_failed_training_leaves_no_directory_and_no_lock(vectors_file, tmp_path):
    tiny = tmp_path / "tiny.seg.txt"
    tiny.write_text("老王 说话 。\n", encoding="utf-8")
    with pytest.raises(UserError):
        train(str(tiny), str(vectors_file), tmp_path / "models" / "m", ModelConfig(**TINY),
              TrainConfig(epochs=1), SegmenterConfig(), verbose=0, log=lambda *a: None)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == []


def test_info_imports_no_framework_and_probe_asks_it():
    code = ("import sys; from wordlstm.cli import main\n"
            "try:\n    main(['info'])\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('keras', 'tensorflow', 'jax', 'torch'))\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    lines = out.splitlines()
    assert lines[-1] == "HEAVY []", out
    assert lines[0].startswith("wordlstm ") and "backend" in lines[1] and "--probe" in lines[1]


def test_a_small_training_warns_and_every_step_after_the_epochs_shows_progress(
        segmented, vectors_file, tmp_path, monkeypatch):
    from wordlstm import progress

    monkeypatch.setattr(progress, "PROGRESS_EVERY", 0.0)
    lines = []
    train(str(segmented), str(vectors_file), tmp_path / "m", ModelConfig(**TINY),
          TrainConfig(epochs=1, batch_size=64), SegmenterConfig(), verbose=0, log=lines.append)
    warnings = [m for m in lines if m.startswith("warning: ")]
    assert any("training tokens is little" in m for m in warnings), lines
    assert any("targets x 1 epoch(s)" in m for m in warnings), lines
    for step in ("reading training text for the decoding", "fitting the decoding on",
                 "fitting dynamic evaluation", "scoring the held-out text",
                 "counting a character 5-gram"):
        assert any(m.startswith(step) and " left" in m for m in lines), (step, lines)
    saved = next(m for m in lines if m.startswith("held-out bits/char of the saved network"))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert f"{config['training']['held_out_bits_per_char']:.4f} over" in saved
    positions = json.loads(run("evaluate", segmented, "--model", tmp_path / "m", "--json",
                               "--no-cache", "--dynamic", "0", "--no-ngram").stdout)["positions"]
    assert f"over {positions:,} positions" in saved


def test_train_vectors_warns_when_the_vectors_did_not_separate(segmented, tmp_path):
    import numpy as np

    from wordlstm.vectors import Vectors, mean_cosine

    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(500)]
    assert abs(mean_cosine(Vectors(words, rng.normal(size=(500, 50)).astype(np.float32)))) < 0.1
    same = 1 + 1e-3 * rng.normal(size=(500, 50))  # what barely trained vectors look like
    assert mean_cosine(Vectors(words, same.astype(np.float32))) > 0.99
    # 14k tokens x 1 epoch: far too little (README: about 5M tokens x epochs separate them).
    r = run("train-vectors", segmented, "-o", tmp_path / "v", "--epochs", "1", "--size", "16",
            "--workers", "1")
    summary = json.loads((tmp_path / "v.json").read_text())
    warned = [line for line in r.output.splitlines() if line.startswith("warning: ")]
    assert summary["mean_cosine"] > 0.9 and len(warned) == 1 and summary["warnings"]
    assert "did not separate" in warned[0] and "--epochs 3" in warned[0]  # ~5M / 14k = 3xx
    assert (tmp_path / "v.bin").is_file()  # a warning, not a refusal


def test_the_note_about_spelled_words_is_a_line_of_its_own(model_dir):
    r = run("continue-text", "老王麒麟", "--model", model_dir, "-n", 8, "--seed", 1)
    notes = [line for line in r.output.splitlines() if "note:" in line]
    assert notes and all(line.startswith("note: not in the vocabulary") for line in notes), r.output
    assert r.stdout.startswith("老王")


def test_every_folder_in_the_package_is_a_listed_package():
    """setuptools warned ~50 times on every install while wordlstm/static was data of no
    listed package ("BuildBackendWarning: Package 'wordlstm.static' is absent...")."""
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    folders = [d for d in (root / "wordlstm").iterdir()
               if d.is_dir() and d.name != "__pycache__" and any(f.is_file() for f in d.iterdir())]
    assert folders and all(f"wordlstm.{d.name}" in listed for d in folders), folders


def test_kill_stops_training_like_ctrl_c_and_leaves_no_lock(segmented, vectors_file, tmp_path):
    import time

    from test_reliability import cli_process, finish

    out = tmp_path / "models" / "m"
    p = cli_process("train", segmented, "--vectors", vectors_file, "-o", out, *SMALL[:-2],
                    "--batch-size", "16", "--epochs", "50", "--patience", "0")
    state = out / "checkpoint" / "state.json"
    deadline = time.time() + 300
    while not state.is_file() and time.time() < deadline and p.poll() is None:
        time.sleep(0.2)
    p.terminate()  # SIGTERM, as `kill PID` sends
    finish(p)
    assert_clear_error(p, "interrupted", "--resume")
    assert state.is_file() and not (out / ".lock").exists()
    assert sorted(d.name for d in (tmp_path / "models").iterdir()) == ["m"]
