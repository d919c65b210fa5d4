"""The vector head's losses, on hand-made vectors whose right answers are known."""

import numpy as np
import pytest

from wordlstm.model import ModelConfig, bound_targets, make_loss


def _unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype("float32")


TARGETS = _unit(np.random.default_rng(0).normal(size=(30, 8)))


def _loss(name, y_true, y_pred, **kw):
    cfg = ModelConfig(loss=name, dim=8, vocab_size=len(TARGETS), **kw)
    return float(np.asarray(make_loss(cfg, TARGETS)(y_true, y_pred)))


def test_contrastive_prefers_the_true_word_and_ignores_its_duplicates():
    ids = np.array([1, 2, 3, 4, 5, 6])
    right = _loss("contrastive", ids, TARGETS[ids])
    wrong = _loss("contrastive", ids, TARGETS[ids[::-1]])
    assert right < wrong
    # The same word twice in a batch is no negative of itself: with only that word,
    # a perfect prediction costs nothing.
    assert _loss("contrastive", np.array([7, 7]), TARGETS[[7, 7]]) == pytest.approx(0, abs=1e-5)


def test_margin_is_against_the_most_similar_wrong_word():
    ids = np.array([3, 9])
    pred = TARGETS[ids] + 0.3 * TARGETS[[4, 4]]
    cos = _unit(pred) @ TARGETS.T
    expect = []
    for row, t in zip(cos, ids):
        wrong = np.delete(row, t).max()
        expect.append(max(0.0, 0.5 + wrong - row[t]))
    assert _loss("margin", ids, pred) == pytest.approx(np.mean(expect), rel=1e-4)


def test_vmf_is_lowest_in_the_target_direction_and_penalises_length():
    t = TARGETS[[2]]
    aligned = _loss("vmf", t, 5 * t)
    opposite = _loss("vmf", t, -5 * t)
    sideways = _loss("vmf", t, 5 * TARGETS[[11]])
    assert aligned < sideways < opposite
    # The l1 regulariser: pointing the right way, an ever longer vector stops paying off.
    assert _loss("vmf", t, 500 * t) > aligned


def test_losses_that_need_targets_say_so_and_bound_targets_supplies_them():
    cfg = ModelConfig(loss="contrastive", dim=8, vocab_size=len(TARGETS))
    with pytest.raises(ValueError, match="target vectors"):
        make_loss(cfg, None)
    with bound_targets(TARGETS):
        assert make_loss(cfg, None) is not None
