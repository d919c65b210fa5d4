"""The word n-gram mixed with the network (wordlstm/ngram.py)."""

import json

import numpy as np
import pytest
from conftest import assert_clear_error, run

from wordlstm.errors import UserError
from wordlstm.ngram import NgramConfig, WordNgram, fit_weight, mix_rows


def _stream(n=4000, vocab=30, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, vocab + 1, size=n), vocab  # id `vocab` is the unknown word


@pytest.mark.parametrize("order", [2, 3, 4])
def test_every_row_is_a_distribution_over_the_vocabulary(order):
    ids, vocab = _stream()
    ng = WordNgram.fit(ids, vocab, order)
    hist = np.stack([ids[i:i + order - 1] for i in range(0, 600, 7)])
    p = ng.probs(hist)
    assert p.shape == (len(hist), vocab)
    assert np.allclose(p.sum(axis=1), 1.0) and (p > 0).all()


def test_target_probs_are_the_dense_rows_at_the_targets():
    ids, vocab = _stream(seed=1)
    ng = WordNgram.fit(ids[:3000], vocab, 3)
    test = ids[3000:3400]
    got = ng.target_probs(test)
    hist = np.concatenate([[test[0]], test])
    want = [ng.probs(hist[None, i:i + 2])[0, test[i + 1]] if test[i + 1] < vocab else 0.0
            for i in range(len(test) - 1)]
    assert np.allclose(got, want)


def test_a_phrase_always_seen_together_is_predicted():
    a, b, c, d = 0, 1, 2, 3
    ids = np.array([a, b, c, d] * 200 + [d, b, d] * 50)
    ng = WordNgram.fit(ids, 5, 3)
    p = ng.probs(np.array([[a, b]]))[0]
    assert p.argmax() == c and p[c] > 0.9
    assert ng.probs(np.array([[d, b]]))[0].argmax() == d  # the context decides, not b alone


def test_weight_zero_is_the_plain_model_and_mixtures_sum_to_one():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3, 30))
    logp = (logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(np.float32)
    ids, vocab = _stream()
    png = WordNgram.fit(ids, vocab, 3).probs(np.stack([ids[:2], ids[5:7], ids[9:11]]))
    assert mix_rows(logp, png, 0.0) is logp
    assert np.allclose(np.exp(mix_rows(logp, png, 0.3)).sum(1), 1.0, atol=1e-5)


def test_the_weight_follows_the_text():
    rng = np.random.default_rng(3)
    n = 2000
    logp = np.full(n, np.log(0.1))
    ok = np.ones(n, bool)
    assert fit_weight(logp, np.full(n, 1e-4), ok) == 0.0  # a useless n-gram gets no share
    assert fit_weight(logp, rng.uniform(0.5, 1.0, n), ok) >= 0.5  # a good one a large one


def test_saved_and_loaded_without_pickles(tmp_path):
    ids, vocab = _stream()
    ng = WordNgram.fit(ids, vocab, 3)
    ng.save(tmp_path / "ngram.npz")
    with np.load(tmp_path / "ngram.npz", allow_pickle=False) as z:  # plain arrays only
        assert {"keys2", "keys3", "counts2", "counts3", "unigram"} <= set(z.files)
    back = WordNgram.load(tmp_path / "ngram.npz", vocab)
    hist = np.stack([ids[:2], ids[10:12]])
    assert np.array_equal(back.probs(hist), ng.probs(hist))
    with pytest.raises(UserError, match="words for a"):
        WordNgram.load(tmp_path / "ngram.npz", vocab + 1)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable"):
        WordNgram.load(tmp_path / "bad.npz", vocab)


def test_config_is_checked():
    with pytest.raises(UserError, match="order"):
        NgramConfig(order=7)
    with pytest.raises(UserError, match="weight"):
        NgramConfig(weight=1.0)
    assert NgramConfig.from_json(NgramConfig(4, 0.2).to_json()) == NgramConfig(4, 0.2)


def test_a_trained_model_has_one_and_uses_it(model_dir, segmented):
    config = json.loads((model_dir / "config.json").read_text())
    assert 0 <= config["decoder"]["ngram"]["weight"] < 1
    assert "ngram.npz" in config["files"]
    r = json.loads(run("evaluate", segmented, "--model", model_dir, "--json").output)
    plain = json.loads(run("evaluate", segmented, "--model", model_dir, "--json",
                           "--no-ngram").output)
    if config["decoder"]["ngram"]["weight"] > 0:
        assert r["ngram"] == config["decoder"]["ngram"]
    assert "ngram" not in plain
    out = run("continue-text", "老王", "--model", model_dir, "-n", "20", "--ngram",
              "--ngram-weight", "0.5", "--seed", "1", "-q")
    assert out.output.strip().startswith("老王")


def test_fit_ngram_adds_it_to_an_older_model(model_dir, segmented, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    config = json.loads((old / "config.json").read_text())
    del config["decoder"]["ngram"], config["files"]["ngram.npz"]
    (old / "ngram.npz").unlink()
    (old / "config.json").write_text(json.dumps(config))
    run("fit-ngram", segmented, "--model", old, "--order", "2", "-q")
    config = json.loads((old / "config.json").read_text())
    assert config["decoder"]["ngram"]["order"] == 2 and (old / "ngram.npz").is_file()
    run("evaluate", segmented, "--model", old)  # every file's hash still checks
    (old / "ngram.npz").unlink()
    assert_clear_error(run("continue-text", "老王", "--model", old, "--ngram", ok=False),
                       "ngram.npz")
