"""The model's losses on hand-made vectors whose right answers are known, and the
every-position network against a per-window oracle."""

import numpy as np
import pytest

from wordlstm.errors import UserError
from wordlstm.model import ModelConfig, build_model, custom_objects, make_loss


def test_model_config_keeps_its_config_json_keys():
    cfg = ModelConfig(loss_temperature=0.1)
    saved = cfg.to_json()
    assert saved["temperature"] == 0.1 and "loss_temperature" not in saved
    assert list(saved)[10] == "temperature"  # same key order as config.json always had
    assert ModelConfig.from_json(saved) == cfg


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype("float32")


TABLE = np.vstack([_unit(np.random.default_rng(0).normal(size=(30, 8))), np.zeros((1, 8))]
                  ).astype("float32")  # 30 words and the UNK row


def _loss(name, y_true, y_pred, **kw):
    cfg = ModelConfig(loss=name, dim=8, vocab_size=30, **kw)
    y_true = np.asarray(y_true)[None, :]
    return float(np.asarray(make_loss(cfg, TABLE)(y_true, np.asarray(y_pred)[None])))


def test_contrastive_prefers_the_true_word_and_ignores_its_duplicates():
    ids = np.array([1, 2, 3, 4, 5, 6])
    right = _loss("contrastive", ids, TABLE[ids])
    wrong = _loss("contrastive", ids, TABLE[ids[::-1]])
    assert right < wrong
    # The same word twice in a batch is no negative of itself: with only that word,
    # a perfect prediction costs nothing.
    assert _loss("contrastive", [7, 7], TABLE[[7, 7]]) == pytest.approx(0, abs=1e-5)


def test_masked_positions_cost_nothing():
    ids = np.array([1, -1, 3])
    full = _loss("contrastive", ids, TABLE[[1, 5, 3]])
    assert full == pytest.approx(_loss("contrastive", ids, TABLE[[1, 9, 3]]), abs=1e-6)


def test_margin_is_against_the_most_similar_wrong_word():
    ids = np.array([3, 9])
    pred = TABLE[ids] + 0.3 * TABLE[[4, 4]]
    cos = _unit(pred) @ TABLE[:30].T
    expect = []
    for row, t in zip(cos, ids):
        wrong = np.delete(row, t).max()
        expect.append(max(0.0, 0.5 + wrong - row[t]))
    assert _loss("margin", ids, pred) == pytest.approx(np.mean(expect), rel=1e-4)


def test_vmf_is_lowest_in_the_target_direction_and_penalises_length():
    t = TABLE[[2]]
    aligned = _loss("vmf", [2], 5 * t)
    opposite = _loss("vmf", [2], -5 * t)
    sideways = _loss("vmf", [2], 5 * TABLE[[11]])
    assert aligned < sideways < opposite
    # The l1 regulariser: pointing the right way, an ever longer vector stops paying off.
    assert _loss("vmf", [2], 500 * t) > aligned


def test_softmax_loss_is_the_cross_entropy_of_unmasked_positions():
    logits = np.random.default_rng(1).normal(size=(3, 30)).astype("float32")
    ids = np.array([4, -1, 7])
    cfg = ModelConfig(head="softmax", dim=8, vocab_size=30)
    got = float(np.asarray(make_loss(cfg, None)(ids[None], logits[None])))
    lse = np.log(np.exp(logits).sum(1))
    assert got == pytest.approx((lse[0] - logits[0, 4] + lse[2] - logits[2, 7]) / 3, rel=1e-5)


def test_every_position_equals_the_per_window_oracle():
    """Output t of one pass over a sequence is the output for the window ending at t read
    from a zero state; the loss over all positions is the mean of per-position losses with
    the batch's first targets as negatives."""
    cfg = ModelConfig(window=6, units=5, layers=2, dropout=0.0, dim=8, vocab_size=30,
                      negatives=4)
    model = build_model(cfg, TABLE)
    rng = np.random.default_rng(2)
    x = rng.integers(0, 31, size=(2, 6)).astype("int32")
    y = rng.integers(0, 30, size=(2, 6)).astype("int32")
    y[1, 2] = -1
    out = np.asarray(model(x))
    for t in range(6):
        alone = np.asarray(model(x[:, :t + 1]))[:, -1]
        np.testing.assert_allclose(out[:, t], alone, atol=1e-5)
    pred, ids = _unit(out.reshape(-1, 8)), y.reshape(-1)
    neg = ids[:4]
    losses = []
    for p, t in zip(pred, ids):
        if t < 0:
            losses.append(0.0)
            continue
        pos = p @ TABLE[t] / 0.05
        others = [p @ TABLE[max(n, 0)] / 0.05 for n in neg if n != t]
        losses.append(np.log(np.exp(pos) + np.exp(others).sum()) - pos)
    got = float(np.asarray(make_loss(cfg, TABLE)(y, out)))
    assert got == pytest.approx(np.mean(losses), rel=1e-4)


def test_unk_row_stays_zero_while_the_embedding_trains():
    ModelConfig(window=4, units=4, layers=1, dim=8, vocab_size=30, train_embedding=True)
    w = TABLE.copy()
    w[-1] = 1.0
    out = custom_objects()["ZeroLastRow"]()(w)
    assert np.abs(np.asarray(out)[-1]).sum() == 0 and np.allclose(np.asarray(out)[:-1], w[:-1])
    with pytest.raises(UserError):
        ModelConfig(units=0)


@pytest.mark.parametrize("name", ["default", "dinos", "tang"])
def test_shipped_models_load_with_the_losses_in_their_own_module(name):
    """The losses moved to wordlstm.losses: models saved before still load, and the losses
    keep the names they are known by (and rebuild from their configs)."""
    from wordlstm import losses
    from wordlstm.model import core_weights
    from wordlstm.modeldir import load_keras_model, read_config, resolve_model_dir

    model_dir = resolve_model_dir(name)
    lstm, kernel, _ = core_weights(load_keras_model(model_dir))
    cfg = read_config(model_dir).model
    assert len(lstm) == cfg.layers and kernel.shape[0] == cfg.units
    assert set(custom_objects()) == {"ZeroLastRow", "ContrastiveLoss", "MarginLoss",
                                     "VectorLoss", "MaskedSoftmaxLoss"}
    assert all(custom_objects()[k] is getattr(losses, k) for k in custom_objects())
    loss = make_loss(cfg, TABLE)
    again = type(loss).from_config(loss.get_config())
    assert again.get_config() == loss.get_config()
