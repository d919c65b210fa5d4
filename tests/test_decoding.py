"""Decoders turn the network's outputs into log-probabilities over the vocabulary; the fits
find the temperature and the prior's weight that made the data."""

import numpy as np
import pytest

from wordlstm.decoding import (
    CosineDecoder,
    PriorDecoder,
    SoftmaxDecoder,
    _golden,
    fit_decoding,
    fit_tau,
    log_prior,
    make_decoder,
)
from wordlstm.errors import UserError


def _unit(rng, vocab=30, dim=8):
    m = rng.normal(size=(vocab, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _data(seed, vocab, n, tau, scale):
    """Cosines and the true words drawn from softmax(cos / tau + scale log p(w))."""
    rng = np.random.default_rng(seed)
    prior = np.log(1.0 / np.arange(1, vocab + 1))
    prior -= np.log(np.exp(prior).sum())
    cos = rng.uniform(-1, 1, (n, vocab))
    z = cos / tau + scale * prior
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    truth = np.array([rng.choice(vocab, p=row) for row in p])
    return cos, truth, prior


@pytest.mark.parametrize("make, width", [
    (lambda unit, prior: CosineDecoder(unit, tau=0.1), 8),  # outputs are vectors
    (lambda unit, prior: PriorDecoder(unit, prior, tau=0.05, prior_scale=0.8), 8),
    (lambda unit, prior: SoftmaxDecoder(), 30),  # outputs are logits
])
def test_every_decoder_gives_distributions_over_the_vocabulary(make, width):
    rng = np.random.default_rng(0)
    prior = np.log(rng.dirichlet(np.ones(30))).astype(np.float32)
    dec = make(_unit(rng), prior)
    y = rng.normal(size=(5, width)).astype(np.float32) * 40  # large outputs: no overflow
    logp = dec.logprobs(y)
    assert logp.shape == (5, 30) and logp.dtype == np.float32
    assert np.isfinite(logp).all() and (logp <= 0).all()
    np.testing.assert_allclose(np.exp(logp.astype(np.float64)).sum(1), 1.0, rtol=1e-5)


def test_cosine_decoding_depends_on_direction_only_and_tau_sharpens_it():
    rng = np.random.default_rng(1)
    unit = _unit(rng)
    y = rng.normal(size=(3, 8)).astype(np.float32)
    dec = CosineDecoder(unit, tau=0.2)
    np.testing.assert_allclose(dec.logprobs(y), dec.logprobs(7.5 * y), atol=1e-5)
    cos = dec.cosines(y)
    np.testing.assert_allclose(cos, (y / np.linalg.norm(y, axis=1, keepdims=True)) @ unit.T,
                               atol=1e-6)
    nearest = unit[4] * 3
    sharp, soft = CosineDecoder(unit, tau=0.05), CosineDecoder(unit, tau=1.0)
    p_sharp = np.exp(sharp.logprobs(nearest[None]))[0, 4]
    p_soft = np.exp(soft.logprobs(nearest[None]))[0, 4]
    assert p_sharp > p_soft > 1 / 30  # the word the output points at, likelier as tau falls
    assert not dec.cosines(np.zeros((1, 8), np.float32)).any()  # a zero output: no direction


def test_the_prior_moves_probability_towards_frequent_words_by_its_weight():
    """Where the cosines tie, the odds of two words are the prior's odds to the power of
    prior_scale; a zero prior changes nothing."""
    unit = np.eye(4, dtype=np.float32)
    y = np.full((1, 4), 0.5, np.float32)  # the same cosine with every word
    freq = np.array([0.7, 0.2, 0.08, 0.02])
    base = np.exp(CosineDecoder(unit, tau=0.3).logprobs(y)[0])
    np.testing.assert_allclose(base, 0.25, rtol=1e-5)
    for scale in (0.5, 1.0):
        p = np.exp(PriorDecoder(unit, np.log(freq), tau=0.3, prior_scale=scale).logprobs(y)[0])
        assert list(np.argsort(-p)) == [0, 1, 2, 3]
        assert p[0] / p[1] == pytest.approx((0.7 / 0.2) ** scale, rel=1e-4)
    flat = PriorDecoder(unit, np.zeros(4), tau=0.3).logprobs(y)
    np.testing.assert_allclose(flat, np.log(base)[None], atol=1e-6)


def test_prior_decoder_adds_log_frequency_to_cosine():
    unit = np.eye(3, dtype=np.float32)
    prior = np.log(np.array([0.8, 0.1, 0.1], np.float32))
    y = np.array([[0.0, 1.0, 0.9]], np.float32)  # nearest by cosine: word 1
    assert int(np.argmax(CosineDecoder(unit).logprobs(y))) == 1
    dec = PriorDecoder(unit, prior, tau=1.0)  # weak evidence: the frequent word wins
    assert int(np.argmax(dec.logprobs(y))) == 0
    z = CosineDecoder(unit).cosines(y) + prior
    np.testing.assert_allclose(dec.logprobs(y), z - np.log(np.exp(z).sum()), rtol=1e-5)
    assert int(np.argmax(PriorDecoder(unit, prior, tau=0.01).logprobs(y))) == 1  # strong evidence


def test_softmax_decoder_is_the_log_softmax_of_the_logits():
    y = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]], np.float32)
    logp = SoftmaxDecoder().logprobs(y)
    z = y[0].astype(np.float64)
    np.testing.assert_allclose(logp[0], z - np.log(np.exp(z).sum()), rtol=1e-6)
    assert logp[1, 0] == pytest.approx(0.0, abs=1e-6) and logp[1, 2] < -1000


def test_log_prior_counts_targets_add_one_smoothed():
    targets = np.array([0, 0, 0, 1, -1, 7, 2, 0])  # -1 is masked, 7 is outside the vocabulary
    lp = log_prior(targets, 4)
    counts = np.array([4, 1, 1, 0]) + 1.0
    np.testing.assert_allclose(np.exp(lp), counts / counts.sum(), rtol=1e-6)
    assert lp.dtype == np.float32 and np.isfinite(lp).all()  # an unseen word is still possible


def test_fit_tau_recovers_the_temperature_that_made_the_data():
    cos, truth, prior = _data(0, 40, 4000, 0.1, 1.0)
    assert fit_tau(cos, truth, prior) == pytest.approx(0.1, rel=0.2)


def test_fit_decoding_recovers_tau_and_the_weight_of_the_prior():
    cos, truth, prior = _data(1, 40, 6000, 0.1, 0.7)
    got_tau, got_scale = fit_decoding(cos, truth, prior)
    assert got_tau == pytest.approx(0.1, rel=0.15) and got_scale == pytest.approx(0.7, abs=0.1)


def test_golden_section_finds_the_minimum():
    assert _golden(lambda x: (x - 0.37) ** 2 + 1, -2.0, 3.0, 40) == pytest.approx(0.37, abs=1e-4)
    assert _golden(lambda x: abs(x - 2.9), 0.0, 3.0, 40) == pytest.approx(2.9, abs=1e-4)


def test_make_decoder_builds_the_models_decoding_or_the_one_asked_for():
    rng = np.random.default_rng(2)
    matrix = rng.normal(size=(30, 8)).astype(np.float32) * 3  # raw vectors: normalised here
    prior = np.log(np.full(30, 1 / 30, np.float32))
    record = {"kind": "prior", "tau": 0.07, "prior_scale": 0.9, "cosine_tau": 0.2}
    dec = make_decoder(record, matrix, prior)
    assert isinstance(dec, PriorDecoder) and dec.tau == pytest.approx(0.07)
    np.testing.assert_allclose(np.linalg.norm(dec.unit_t, axis=0), 1, rtol=1e-5)
    cosine = make_decoder(record, matrix, prior, kind="cosine")
    assert type(cosine) is CosineDecoder and cosine.tau == pytest.approx(0.2)
    assert type(make_decoder(None, matrix)) is CosineDecoder
    assert isinstance(make_decoder(record, matrix, head="softmax"), SoftmaxDecoder)
    with pytest.raises(UserError, match="no 'prior' decoding"):
        make_decoder({"kind": "cosine"}, matrix, prior, kind="prior")
    with pytest.raises(UserError):
        make_decoder(record, matrix, None)  # the prior decoding needs the word frequencies
