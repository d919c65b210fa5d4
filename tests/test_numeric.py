"""The shared arithmetic: unit rows, the unknown word's row, log-sum-exp."""

import numpy as np
import pytest

from wordlstm.numeric import log_softmax, logsumexp, unit_rows, with_unknown_row


def test_unit_rows_have_length_one_and_zero_rows_stay_zero():
    m = np.array([[3.0, 4.0], [0.0, 0.0], [1e-12, 0.0], [-2.0, 0.0]])
    u = unit_rows(m)
    assert u.dtype == np.float32 and u.flags.c_contiguous
    np.testing.assert_allclose(u[[0, 3]], [[0.6, 0.8], [-1.0, 0.0]], rtol=1e-6)
    assert not u[1].any() and np.abs(u[2]).max() < 1e-3  # no division by zero, no blow-up


def test_the_unknown_row_is_one_zero_row_after_the_vocabulary():
    m = np.arange(6, dtype=np.float64).reshape(3, 2)
    e = with_unknown_row(m)
    assert e.shape == (4, 2) and e.dtype == np.float32
    np.testing.assert_array_equal(e[:3], m)
    assert not e[3].any()


def test_logsumexp_is_exact_where_the_naive_sum_overflows():
    z = np.array([[1000.0, 1000.0], [-1000.0, -np.inf], [0.0, np.log(3.0)]])
    np.testing.assert_allclose(logsumexp(z, axis=1), [1000 + np.log(2), -1000, np.log(4)])
    assert logsumexp(z, axis=1, keepdims=True).shape == (3, 1)
    assert float(logsumexp(np.log(np.array([0.25, 0.25, 0.5])))) == pytest.approx(0.0, abs=1e-12)


def test_log_softmax_rows_are_distributions():
    z = np.random.default_rng(0).normal(size=(4, 50)) * 30
    lp = log_softmax(z)
    assert lp.dtype == np.float32 and (lp <= 0).all()
    np.testing.assert_allclose(np.exp(lp.astype(np.float64)).sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(lp - lp[:, :1], (z - z[:, :1]).astype(np.float32), atol=1e-3)
