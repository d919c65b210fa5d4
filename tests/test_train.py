import json

import numpy as np
import pytest
from conftest import TINY

import wordlstm.train as train_mod
from wordlstm.errors import UserError
from wordlstm.model import ModelConfig
from wordlstm.modeldir import load, load_core_weights, load_keras_model
from wordlstm.segment import SegmenterConfig
from wordlstm.train import TrainConfig, train

QUIET = dict(verbose=0, log=lambda *a: None)


def _interrupt_after(epochs_done):
    original = train_mod._make_callbacks

    def make(*args, **kwargs):
        import keras

        class Stop(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch + 1 == epochs_done:
                    raise KeyboardInterrupt

        return original(*args, **kwargs) + [Stop()]

    return make


def _same_weights(a_dir, b_dir, atol):
    a, b = load_core_weights(a_dir), load_core_weights(b_dir)
    for x, y in zip([w for layer in a[0] for w in layer] + [a[1]],
                    [w for layer in b[0] for w in layer] + [b[1]]):
        np.testing.assert_allclose(x, y, atol=atol)
    np.testing.assert_allclose(load(a_dir).vectors.matrix,
                               load(b_dir).vectors.matrix, atol=atol)


def test_interrupted_training_resumes_from_checkpoint(segmented, vectors_file, tmp_path, monkeypatch):
    args = (str(segmented), str(vectors_file))
    tcfg = dict(epochs=3, batch_size=16, patience=0)
    full = train(*args, tmp_path / "full", ModelConfig(**TINY), TrainConfig(**tcfg),
                 SegmenterConfig(), **QUIET)

    out = tmp_path / "resumed"
    with monkeypatch.context() as m:
        m.setattr(train_mod, "_make_callbacks", _interrupt_after(2))
        with pytest.raises(KeyboardInterrupt):
            train(*args, out, ModelConfig(**TINY), TrainConfig(**tcfg), SegmenterConfig(), **QUIET)
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and not (out / "config.json").exists()
    # state.json names this epoch's files, and they are there.
    assert all((out / "checkpoint" / f).is_file() for f in state["files"].values())

    resumed = train(*args, out, ModelConfig(**TINY), TrainConfig(**tcfg), SegmenterConfig(),
                    resume=True, **QUIET)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    # Same data order and optimizer state: the resumed run ends where the uninterrupted one did.
    _same_weights(tmp_path / "full", out, atol=2e-3)
    assert resumed["history"][-1]["loss"] == pytest.approx(full["history"][-1]["loss"], rel=1e-2)


def test_checkpoint_reads_the_state_json_keys_it_always_had(tmp_path):
    """state.json is a file format: a checkpoint written before `Checkpoint` existed (these
    keys, a key this version does not know) reads, and writes back the same keys."""
    from dataclasses import asdict

    from wordlstm.train import Checkpoint

    cfg, tcfg = ModelConfig(**TINY, dim=8, vocab_size=30), TrainConfig(epochs=4, patience=0)
    old = {"epoch": 2, "history": [{"epoch": 1, "loss": 3.0}, {"epoch": 2, "loss": 2.5}],
           "model": cfg.to_json(), "training": asdict(tcfg), "vocab_sha256": "ab" * 32,
           "segmenter": SegmenterConfig().to_json(), "vectors_sha256": "cd" * 32,
           "best_bpc": 4.25, "best_epoch": 1, "best_weights": "best-1.weights.h5",
           "files": {"weights": "weights-2.weights.h5", "optimizer": "optimizer-2.npz"},
           "written_by": "a later version"}
    (tmp_path / "state.json").write_text(json.dumps(old))
    state = Checkpoint.read(tmp_path / "state.json")
    assert (state.model, state.training, state.epoch) == (cfg, tcfg, 2)
    assert (state.weights, state.optimizer) == ("weights-2.weights.h5", "optimizer-2.npz")
    assert (state.best_epoch, state.kept_epoch, state.best_bpc) == (1, 1, 4.25)
    assert state.to_json() == {k: v for k, v in old.items() if k != "written_by"}
    state.finished(3)
    assert state.to_json()["files"] == {"weights": "weights-3.weights.h5",
                                        "optimizer": "optimizer-3.npz"}
    fresh = Checkpoint(cfg, tcfg, "ab" * 32, SegmenterConfig())
    assert "best_epoch" not in fresh.to_json() and fresh.kept_epoch == 0
    assert Checkpoint.from_json(fresh.to_json()) == fresh
    (tmp_path / "state.json").write_text(json.dumps({k: v for k, v in old.items()
                                                     if k != "model"}))
    with pytest.raises(UserError, match="damaged checkpoint"):
        Checkpoint.read(tmp_path / "state.json")


def test_resume_without_checkpoint_is_an_error(segmented, vectors_file, tmp_path):
    with pytest.raises(UserError, match="nothing to resume"):
        train(str(segmented), str(vectors_file), tmp_path / "x", ModelConfig(**TINY),
              TrainConfig(epochs=1), SegmenterConfig(), resume=True, **QUIET)


def test_training_lowers_held_out_bits_per_char(model_dir):
    hist = json.loads((model_dir / "history.json").read_text())["epochs"]
    assert hist[-1]["val_bits_per_char"] < hist[0]["val_bits_per_char"]
    assert all(h["targets_per_s"] > 0 for h in hist)


def test_too_small_corpus(tmp_path, vectors_file):
    p = tmp_path / "tiny.txt"
    p.write_text("老王 在 院子\n", encoding="utf-8")
    with pytest.raises(UserError, match="too little text"):
        train(str(p), str(vectors_file), tmp_path / "m", ModelConfig(**TINY), TrainConfig(epochs=1),
              SegmenterConfig(), **QUIET)


def test_training_settings_are_checked():
    for bad in (dict(epochs=0), dict(batch_size=-1), dict(learning_rate=0), dict(lr_decay=2),
                dict(patience=-1), dict(decode="x"), dict(val_fraction=1.0)):
        with pytest.raises(UserError):
            TrainConfig(**bad)


def test_softmax_head_trains_evaluates_and_generates(segmented, vectors_file, tmp_path):
    from wordlstm.dataset import corpus_ids
    from wordlstm.evaluate import evaluate
    from wordlstm.modeldir import load_keras_model
    from wordlstm.sampling import SamplingConfig
    from wordlstm.split import HoldOut
    from wordlstm.writer import Writer

    out = tmp_path / "softmax"
    train(str(segmented), str(vectors_file), out, ModelConfig(**TINY, head="softmax"),
          TrainConfig(epochs=3, batch_size=16, weights_dtype="float32"), SegmenterConfig(),
          **QUIET)
    m = load(out)
    assert m.config.model.head == "softmax" and m.config.decoder.kind == "softmax"
    hist = json.loads((out / "history.json").read_text())["epochs"]
    assert hist[-1]["val_bits_per_char"] < hist[0]["val_bits_per_char"]
    # The numpy step model reproduces Keras' logits.
    core = load_keras_model(out)
    x = np.random.default_rng(1).integers(0, m.config.model.vocab_size, (4, TINY["window"]))
    np.testing.assert_allclose(m.step.run(x)[0],
                               np.asarray(core.predict(m.weights.embedding[x], verbose=0))[:, -1],
                               rtol=1e-4, atol=1e-4)
    corpus = corpus_ids(str(segmented), m.vectors.index, HoldOut())
    result = evaluate(m.step, m.decoder, corpus, m.vectors.words)
    assert result["top5"] > result["baseline_top1"]
    w = Writer.load(out)
    text = w.continue_text("老王", 20, SamplingConfig(), seed=1).texts
    assert text == w.continue_text("老王", 20, SamplingConfig(), seed=1).texts and len(text[0]) >= 20


def test_default_model_decodes_with_word_frequencies(model_dir):
    m = load(model_dir)
    assert m.config.model.loss == "contrastive" and m.config.model.train_embedding
    decoder = m.config.decoder
    assert decoder.kind == "prior" and 0 < decoder.tau <= 1 and decoder.fitted_on > 0
    assert m.log_prior.shape == (m.config.model.vocab_size,)
    assert np.exp(m.log_prior).sum() == pytest.approx(1, rel=1e-4)


def test_fine_tuned_vectors_ship_with_the_model(model_dir, vectors_file):
    from wordlstm.vectors import load_vectors

    start = load_vectors(vectors_file)
    shipped = load(model_dir).vectors
    assert shipped.words == start.words
    centered = start.matrix - start.matrix.mean(0)
    assert not np.allclose(shipped.matrix, centered, atol=1e-4)  # trained jointly
    assert np.corrcoef(shipped.matrix.ravel(), centered.ravel())[0, 1] > 0.5  # from word2vec


def test_early_stopping_keeps_the_best_epoch(segmented, vectors_file, tmp_path, monkeypatch):
    """Held-out bits/char rise after epoch 1: the learning rate is halved, training stops
    after `patience` such epochs and ships epoch 1's weights (the same as a 1-epoch run)."""
    args = (str(segmented), str(vectors_file))
    train(*args, tmp_path / "one", ModelConfig(**TINY), TrainConfig(epochs=1, batch_size=16),
          SegmenterConfig(), **QUIET)
    rising = iter([5.0, 5.1, 5.2, 5.3, 5.4])
    monkeypatch.setattr(train_mod.Validator, "bits_per_char", lambda self, step, d: next(rising))
    out = train(*args, tmp_path / "es", ModelConfig(**TINY),
                TrainConfig(epochs=5, batch_size=16, patience=2), SegmenterConfig(), **QUIET)
    assert [h["epoch"] for h in out["history"]] == [1, 2, 3]
    lrs = [h["learning_rate"] for h in out["history"]]
    assert lrs[1] == lrs[0] and lrs[2] == pytest.approx(lrs[0] / 2)  # halved after epoch 2
    assert json.loads((tmp_path / "es" / "config.json").read_text())["training"]["best_epoch"] == 1
    _same_weights(tmp_path / "one", tmp_path / "es", atol=1e-5)


@pytest.mark.parametrize("loss", ["margin", "vmf", "cosine"])
def test_every_vector_loss_trains_and_generates(loss, segmented, vectors_file, tmp_path):
    from wordlstm.sampling import SamplingConfig
    from wordlstm.writer import Writer

    out = tmp_path / loss
    res = train(str(segmented), str(vectors_file), out, ModelConfig(**TINY, loss=loss),
                TrainConfig(epochs=2, batch_size=16, patience=0), SegmenterConfig(), **QUIET)
    assert res["history"][1]["loss"] < res["history"][0]["loss"]
    w = Writer.load(out)
    assert len(w.continue_text("老王", 10, SamplingConfig(), seed=1).texts[0]) >= 10


def test_carried_state_training_learns_and_ships_a_plain_model(segmented, vectors_file, tmp_path):
    """--carry: the network reads the text in order, its state carried across batches (on
    every backend: the state variables are tracked, so JAX's functional step keeps them);
    what ships is the plain core with the same weights."""
    from wordlstm.backend import import_keras
    from wordlstm.model import build_model, core_weights, initial_embedding

    out = tmp_path / "carry"
    result = train(str(segmented), str(vectors_file), out, ModelConfig(**TINY),
                   TrainConfig(epochs=2, batch_size=8, carry=True, patience=0), SegmenterConfig(),
                   **QUIET)
    history = result["history"]
    assert history[1]["loss"] < history[0]["loss"]
    m = load(out)
    assert m.config.training.carry is True
    assert len(m.weights.lstm) == 1 and m.weights.lstm[0][0].shape[1] == 4 * TINY["units"]

    keras = import_keras()
    cfg = ModelConfig(**TINY, vocab_size=len(m.vectors), dim=m.vectors.dim)
    model = build_model(cfg, initial_embedding(m.vectors.matrix, "raw"), carry_batch=2)
    ids = np.ones((2, 5), np.int32)
    first = np.asarray(model(ids))
    again = np.asarray(model(ids))
    assert not np.allclose(first, again)  # the second call starts from the first's state
    lstm = model.get_layer("core").get_layer("lstm_0")
    assert any(np.abs(np.asarray(s)).sum() > 0 for s in lstm.states)
    assert len(core_weights(model.get_layer("core"))[0][0]) == 3  # the state is no weight
    del keras


def test_carry_needs_one_device_and_enough_text(segmented, vectors_file, tmp_path):
    with pytest.raises(UserError, match="one device"):
        TrainConfig(carry=True, devices="2")
    with pytest.raises(UserError, match="streams"):
        train(str(segmented), str(vectors_file), tmp_path / "x", ModelConfig(**TINY),
              TrainConfig(epochs=1, batch_size=100_000, carry=True), SegmenterConfig(), **QUIET)


def test_float16_storage_halves_the_file_and_loads_as_float32(segmented, vectors_file, tmp_path,
                                                              model_dir):
    from wordlstm.model import build_core, core_weights, set_core_weights

    m = load(model_dir)  # stored as float16, the default
    assert m.config.training.weights_dtype == "float16"
    lstm, kernel, _ = load_core_weights(model_dir)
    assert kernel.dtype == np.float32 and lstm[0][0].dtype == np.float32
    assert np.array_equal(kernel, kernel.astype(np.float16).astype(np.float32))  # rounded
    full = build_core(m.config.model)
    half = build_core(m.config.model, dtype="float16")
    for core in (full, half):
        set_core_weights(core, *core_weights(load_keras_model(model_dir)))
    full.save(tmp_path / "full.keras")
    half.save(tmp_path / "half.keras")
    weight_bytes = sum(np.asarray(w).nbytes for w in full.get_weights())  # float32
    saved = (tmp_path / "full.keras").stat().st_size - (tmp_path / "half.keras").stat().st_size
    assert saved >= 0.45 * weight_bytes  # half of every weight's bytes, less file overhead
    stored = load_keras_model(model_dir)
    assert all(np.asarray(w).dtype == np.float16 for w in stored.get_weights())


def test_without_a_terminal_training_logs_progress_and_the_time_limit_stops_it(
        segmented, vectors_file, tmp_path, monkeypatch):
    monkeypatch.setattr(train_mod, "PROGRESS_EVERY", 0.0)
    lines = []
    train(str(segmented), str(vectors_file), tmp_path / "m", ModelConfig(**TINY),
          TrainConfig(epochs=5, batch_size=16, time_limit=1e-6), SegmenterConfig(),
          verbose=0, log=lines.append)
    progress = [m for m in lines if "targets," in m and "min to the epoch's end" in m]
    assert progress and "/s" in progress[0]
    assert any(m.startswith("time limit:") for m in lines)
    assert len(json.loads((tmp_path / "m" / "history.json").read_text())["epochs"]) == 1


def test_tensorboard_event_files_are_readable(segmented, vectors_file, tmp_path):
    """`train --tensorboard DIR`: one point an epoch that TensorBoard itself reads."""
    import shutil
    import subprocess

    pytest.importorskip("tensorflow")
    if shutil.which("tensorboard") is None:
        pytest.skip("tensorboard is not installed (pip install tensorboard)")
    from conftest import TINY, run

    logs = tmp_path / "tb"
    run("train", segmented, "--vectors", vectors_file, "-o", tmp_path / "m", "--epochs", "2",
        "--window", TINY["window"], "--units", TINY["units"], "--layers", "1", "--dropout",
        "0", "--tensorboard", logs, "-q")
    out = subprocess.run(["tensorboard", "--inspect", "--logdir", str(logs)], check=False,
                         capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    for tag in ("loss", "held_out_bits_per_char", "learning_rate", "targets_per_s"):
        assert tag in text, text[-2000:]
    assert "max_step           2" in text or "max_step 2" in " ".join(text.split()), text[-2000:]
