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
                assert loaded.config["training"]["seed"] == old_seed
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
    assert load(out).config["training"]["seed"] == old_seed + 1
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
