import numpy as np
import pytest

from wordlstm.cache import CacheConfig, NeuralCache, cache_probs, fit_cache, mixed_logprobs
from wordlstm.errors import UserError


def _logsoftmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_mixed_distribution_sums_to_one_and_weight_zero_is_the_model():
    rng = np.random.default_rng(0)
    logp = _logsoftmax(rng.normal(size=(3, 50))).astype(np.float32)
    cache = NeuralCache(CacheConfig(size=8, theta=5.0, weight=0.3, gap=0), batch=3, dim=4)
    for _ in range(12):  # more than `size`: the ring buffer wraps
        cache.add(rng.normal(size=(3, 4)), rng.integers(0, 50, 3))
    mixed = cache.mix(logp, rng.normal(size=(3, 4)))
    np.testing.assert_allclose(np.exp(mixed.astype(np.float64)).sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(mixed, logp)
    off = NeuralCache(CacheConfig(size=8, weight=0.0, gap=0), batch=3, dim=4)
    off.add(rng.normal(size=(3, 4)), rng.integers(0, 50, 3))
    assert off.mix(logp, rng.normal(size=(3, 4))) is logp


def test_cache_raises_the_words_that_followed_similar_predictions():
    logp = np.log(np.full((1, 10), 0.1, np.float32))
    cache = NeuralCache(CacheConfig(size=16, theta=2.0, weight=0.5, gap=0), batch=1, dim=2)
    cache.add(np.array([[1.0, 0.0]]), np.array([3]))
    cache.add(np.array([[0.0, 1.0]]), np.array([7]))
    p = np.exp(cache.mix(logp, np.array([[1.0, 0.05]]))[0])
    assert p.argmax() == 3 and p[3] > p[7] > 0.05


def test_gap_leaves_out_the_most_recent_positions():
    logp = np.log(np.full((1, 10), 0.1, np.float32))
    cache = NeuralCache(CacheConfig(size=16, theta=1.0, weight=0.5, gap=1), batch=1, dim=2)
    cache.add(np.array([[1.0, 0.0]]), np.array([3]))
    assert cache.mix(logp, np.array([[1.0, 0.0]])) is logp  # its one entry is inside the gap
    cache.add(np.array([[1.0, 0.0]]), np.array([5]))
    p = np.exp(cache.mix(logp, np.array([[1.0, 0.0]]))[0])
    assert p[3] > p[5] == pytest.approx(0.05)


def test_cache_probs_equal_a_direct_computation():
    rng = np.random.default_rng(1)
    n, size, theta, gap = 300, 40, 3.0, 2
    outputs = rng.normal(size=(n, 5)).astype(np.float32)
    targets = rng.integers(0, 6, n)
    targets[17] = -1  # masked: neither cached nor scored
    got = cache_probs(outputs, targets, size, theta, gap, rows=64)
    u = outputs / np.linalg.norm(outputs, axis=1, keepdims=True)
    for t in (0, 1, 3, 50, 299):
        js = [j for j in range(max(0, t - size), t - gap) if targets[j] >= 0]
        if not js:
            assert got[t] == 0
            continue
        a = np.exp(theta * (u[js] @ u[t]))
        want = sum(a[k] for k, j in enumerate(js) if targets[j] == targets[t]) / a.sum()
        assert got[t] == pytest.approx(want, rel=1e-5)


def test_fit_finds_a_cache_weight_on_text_that_repeats_itself():
    rng = np.random.default_rng(2)
    n, vocab = 2000, 40
    targets = np.tile(rng.integers(0, vocab, 50), n // 50)  # a 50-word passage, again and again
    outputs = rng.normal(size=(50, 8))[np.arange(n) % 50] + 0.05 * rng.normal(size=(n, 8))
    logp_model = np.full(n, np.log(1 / vocab))
    cfg = fit_cache(outputs, targets, logp_model, size=200, gap=0)
    assert cfg.weight > 0.2
    assert np.mean(mixed_logprobs(logp_model, cache_probs(outputs, targets, 200, cfg.theta),
                                  cfg.weight)) > np.mean(logp_model)
    noise = fit_cache(rng.normal(size=(n, 8)), rng.integers(0, vocab, n), logp_model + np.log(3),
                      size=200, gap=0)
    assert noise.weight <= 0.04  # nothing to gain: (almost) no cache


@pytest.mark.parametrize("kwargs", [dict(size=0), dict(theta=-1.0), dict(weight=1.0),
                                    dict(size=8, gap=8)])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(UserError):
        CacheConfig(**kwargs)


def test_fit_cache_fits_an_older_models_adaptation(model_dir, segmented, tmp_path):
    import json
    import shutil

    from conftest import run

    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    config = json.loads((old / "config.json").read_text(encoding="utf-8"))
    config["decoder"].pop("cache", None)
    config["decoder"].pop("dynamic_lr", None)
    (old / "config.json").write_text(json.dumps(config), encoding="utf-8")
    run("fit-cache", segmented, "--model", old, "-q")
    config = json.loads((old / "config.json").read_text(encoding="utf-8"))
    assert "cache" in config["decoder"] and "dynamic_lr" in config["decoder"]
