import json

import numpy as np
import pytest

import wordlstm.train as train_mod
from wordlstm.errors import UserError
from wordlstm.model import ModelConfig
from wordlstm.modeldir import load_keras_model
from wordlstm.segment import SegmenterConfig
from wordlstm.train import TrainConfig, train

from conftest import TINY


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


def test_interrupted_training_resumes_from_checkpoint(segmented, vectors_file, tmp_path, monkeypatch):
    args = (str(segmented), str(vectors_file))
    quiet = dict(verbose=0, log=lambda *a: None)
    full = train(*args, tmp_path / "full", ModelConfig(**TINY), TrainConfig(epochs=3, batch_size=64),
                 SegmenterConfig(), **quiet)

    out = tmp_path / "resumed"
    with monkeypatch.context() as m:
        m.setattr(train_mod, "_make_callbacks", _interrupt_after(2))
        with pytest.raises(KeyboardInterrupt):
            train(*args, out, ModelConfig(**TINY), TrainConfig(epochs=3, batch_size=64),
                  SegmenterConfig(), **quiet)
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and not (out / "config.json").exists()

    # A fresh process (as after Ctrl-C) can reload the compiled checkpoint and its custom loss.
    code = ("import sys\n"
            "from wordlstm.model import bound_targets\n"
            "from wordlstm.modeldir import load_keras_model\n"
            "from wordlstm.vectors import load_vectors\n"
            "with bound_targets(load_vectors(sys.argv[2]).target_space('centered')):\n"
            "    print(type(load_keras_model(sys.argv[1], compile=True).loss).__name__)\n")
    import subprocess
    import sys
    fresh = subprocess.run([sys.executable, "-c", code, str(out / "checkpoint"), args[1]],
                           capture_output=True, text=True)
    assert fresh.returncode == 0 and "ContrastiveLoss" in fresh.stdout, fresh.stderr[-2000:]

    resumed = train(*args, out, ModelConfig(**TINY), TrainConfig(epochs=3, batch_size=64),
                    SegmenterConfig(), resume=True, **quiet)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    # Same data order and optimizer state: the resumed run ends where the uninterrupted one did
    # (to float noise from recompiling: the loss differed by up to ~0.3% on JAX).
    a = load_keras_model(tmp_path / "full").get_weights()
    b = load_keras_model(out).get_weights()
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=2e-3)
    assert resumed["history"][-1]["loss"] == pytest.approx(full["history"][-1]["loss"], rel=1e-2)


def test_resume_without_checkpoint_is_an_error(segmented, vectors_file, tmp_path):
    with pytest.raises(UserError, match="nothing to resume"):
        train(str(segmented), str(vectors_file), tmp_path / "x", ModelConfig(**TINY),
              TrainConfig(epochs=1), SegmenterConfig(), resume=True, verbose=0, log=lambda *a: None)


def test_training_lowers_validation_loss(model_dir):
    hist = json.loads((model_dir / "history.json").read_text())["epochs"]
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    assert all(h["windows_per_s"] > 0 for h in hist)


def test_too_small_corpus(tmp_path, vectors_file):
    p = tmp_path / "tiny.txt"
    p.write_text("老王 在 院子\n", encoding="utf-8")
    with pytest.raises(UserError, match="too little text"):
        train(str(p), str(vectors_file), tmp_path / "m", ModelConfig(**TINY), TrainConfig(epochs=1),
              SegmenterConfig(), verbose=0, log=lambda *a: None)


def test_softmax_head_trains_evaluates_and_generates(segmented, vectors_file, tmp_path):
    from wordlstm.evaluate import evaluate, held_out
    from wordlstm.generate import SamplingConfig, StepModel
    from wordlstm.modeldir import load_inference, read_config
    from wordlstm.writer import Writer

    out = tmp_path / "softmax"
    train(str(segmented), str(vectors_file), out, ModelConfig(**TINY, head="softmax"),
          TrainConfig(epochs=4, batch_size=64), SegmenterConfig(), verbose=0, log=lambda *a: None)
    config = read_config(out)
    assert config["model"]["head"] == "softmax"
    hist = json.loads((out / "history.json").read_text())["epochs"]
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    # The numpy step model reproduces Keras' logits.
    model = load_keras_model(out)
    weights = load_inference(out, config)
    x = np.random.default_rng(1).integers(0, config["model"]["vocab_size"], (4, TINY["window"]))
    np.testing.assert_allclose(StepModel(weights).run(x)[0],
                               np.asarray(model.predict(x.astype("int32"), verbose=0)),
                               rtol=1e-4, atol=1e-4)
    w = Writer.load(out)
    ids, starts, base = held_out(str(segmented), w.vectors.index, TINY["window"], 0.05, whole=False)
    result = evaluate(w.gen.model, w.gen.decoder, ids, starts, TINY["window"], base)
    assert result["top1"] >= result["baseline_top1"] and result["mean_cosine"] is None
    assert result["top5"] > result["baseline_top1"]
    text = w.continue_text("老王", 20, SamplingConfig(), seed=1)
    assert text == w.continue_text("老王", 20, SamplingConfig(), seed=1) and len(text[0]) >= 20


def test_default_model_decodes_with_word_frequencies(model_dir):
    from wordlstm.modeldir import load_log_prior, read_config

    config = read_config(model_dir)
    assert config["model"]["loss"] == "contrastive" and config["model"]["target"] == "centered"
    decoder = config["decoder"]
    assert decoder["kind"] == "prior" and 0 < decoder["tau"] <= 1 and decoder["fitted_on"] > 0
    prior = load_log_prior(model_dir, config)
    assert prior.shape == (config["model"]["vocab_size"],)
    assert np.exp(prior).sum() == pytest.approx(1, rel=1e-4)
    hist = json.loads((model_dir / "history.json").read_text())["epochs"]
    assert all(0 <= h["val_top1"] <= 1 for h in hist)


def test_early_stopping_keeps_the_best_epoch(segmented, vectors_file, tmp_path, monkeypatch):
    """Validation top-1 falls after epoch 1: training stops after `patience` more epochs and
    ships epoch 1's weights (the same as a 1-epoch run)."""
    quiet = dict(verbose=0, log=lambda *a: None)
    args = (str(segmented), str(vectors_file))
    one = train(*args, tmp_path / "one", ModelConfig(**TINY), TrainConfig(epochs=1, batch_size=64),
                SegmenterConfig(), **quiet)
    falling = iter([0.5, 0.4, 0.3, 0.2, 0.1])
    monkeypatch.setattr(train_mod.Scorer, "top1", lambda self, step, decoding: next(falling))
    out = train(*args, tmp_path / "es", ModelConfig(**TINY),
                TrainConfig(epochs=5, batch_size=64, patience=2), SegmenterConfig(), **quiet)
    assert [h["epoch"] for h in out["history"]] == [1, 2, 3]
    assert json.loads((tmp_path / "es" / "config.json").read_text())["training"]["best_epoch"] == 1
    for a, b in zip(load_keras_model(tmp_path / "one").get_weights(),
                    load_keras_model(tmp_path / "es").get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert one["history"][0]["val_top1"] >= 0


@pytest.mark.parametrize("loss", ["margin", "vmf", "cosine"])
def test_every_vector_loss_trains_and_generates(loss, segmented, vectors_file, tmp_path):
    from wordlstm.generate import SamplingConfig
    from wordlstm.writer import Writer

    out = tmp_path / loss
    res = train(str(segmented), str(vectors_file), out, ModelConfig(**TINY, loss=loss),
                TrainConfig(epochs=2, batch_size=64), SegmenterConfig(), verbose=0,
                log=lambda *a: None)
    assert res["history"][1]["loss"] < res["history"][0]["loss"]
    w = Writer.load(out)
    assert len(w.continue_text("老王", 10, SamplingConfig(), seed=1)[0]) >= 10
