import hashlib

import numpy as np

from wordlstm.dynamic import _head_gradient, dynamic_logprobs


def test_head_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    units, dim, vocab = 6, 4, 9
    h = rng.normal(size=units)
    kernel, bias = rng.normal(size=(units, dim)), rng.normal(size=dim)
    unit = rng.normal(size=(vocab, dim)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    prior = np.log(rng.dirichlet(np.ones(vocab))).astype(np.float32)
    tau, target = 0.3, 4

    def loss(k, b):
        y = h @ k + b
        z = (y / np.linalg.norm(y)) @ unit.T.astype(np.float64) / tau + prior
        return -(z[target] - np.log(np.exp(z - z.max()).sum()) - z.max())

    gk, gb, logp = _head_gradient(h, h @ kernel + bias, np.ascontiguousarray(unit.T), unit,
                                  prior, tau, target)
    assert abs(logp + loss(kernel, bias)) < 1e-4
    eps = 1e-5
    for i, j in [(0, 0), (3, 2), (5, 3)]:
        k2 = kernel.copy()
        k2[i, j] += eps
        assert abs((loss(k2, bias) - loss(kernel, bias)) / eps - gk[i, j]) < 1e-3
    b2 = bias.copy()
    b2[1] += eps
    assert abs((loss(kernel, b2) - loss(kernel, bias)) / eps - gb[1]) < 1e-3


def test_dynamic_evaluation_adapts_and_leaves_the_model_untouched(model_dir, segmented):
    from wordlstm.evaluate import evaluate_file
    from wordlstm.modeldir import load

    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in model_dir.iterdir()
              if p.is_file()}
    plain = evaluate_file(str(segmented), model_dir, cache=False, ngram=False)
    adapted = evaluate_file(str(segmented), model_dir, cache=False, dynamic_lr=0.05,
                            ngram=False)
    assert adapted["dynamic_lr"] == 0.05
    assert adapted["bits_per_char_plain"] == plain["bits_per_char"]
    assert adapted["bits_per_char"] != plain["bits_per_char"]
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in model_dir.iterdir()
             if p.is_file()}
    assert after == before
    m = load(model_dir)
    ids = np.array([0, 1, 2, 3], np.int64)
    lp0, _ = dynamic_logprobs(m.step, m.decoder, ids, ids[1:], lr=0.0)
    kernel = m.step.dense_kernel.copy()
    dynamic_logprobs(m.step, m.decoder, ids, ids[1:], lr=0.5)
    np.testing.assert_array_equal(m.step.dense_kernel, kernel)  # adapted a copy only
    assert np.isfinite(lp0).all()
