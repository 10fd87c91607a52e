"""Chapter 0's checkers accept the right answers and reject planted wrong ones."""

import numpy as np
import pytest

from attention_from_scratch.exercises import chapter00 as ex


def test_central_difference(capsys):
    ex.check_central_difference(ex.central_difference)
    assert "✓ Exercise 1 (central_difference)" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="forward difference"):
        ex.check_central_difference(lambda f, x, eps: (f(x + eps) - f(x)) / eps)
    with pytest.raises(AssertionError, match="divide by 2\\*eps"):
        ex.check_central_difference(lambda f, x, eps: (f(x + eps) - f(x - eps)) / eps)
    with pytest.raises(AssertionError, match="central_difference"):
        ex.check_central_difference(lambda f, x, eps: (f(x) - f(x - eps)) / eps)


def test_linear_backward(capsys):
    ex.check_linear_backward(ex.linear_backward_reference)
    assert "✓ Exercise 2 (linear backward)" in capsys.readouterr().out

    def averaged(dout, x, w):
        n = x.size // x.shape[-1]
        dx = dout @ w.T
        return dx, x.reshape(-1, x.shape[-1]).T @ dout.reshape(-1, w.shape[1]) / n, \
            dout.reshape(-1, w.shape[1]).mean(axis=0)

    def db_not_summed_over_batch(dout, x, w):
        dx, dw, db = ex.linear_backward_reference(dout, x, w)
        return dx, dw, dout.sum(axis=0)

    def dx_without_transpose(dout, x, w):
        dx, dw, db = ex.linear_backward_reference(dout, x, w)
        return dout[..., : w.shape[0]] @ w[:, : w.shape[0]], dw, db

    with pytest.raises(AssertionError, match="averaged over positions"):
        ex.check_linear_backward(averaged)
    with pytest.raises(AssertionError, match="shape"):
        ex.check_linear_backward(db_not_summed_over_batch)
    with pytest.raises(AssertionError, match=r"Exercise 2 \(linear backward\): output 0"):
        ex.check_linear_backward(dx_without_transpose)


def test_fixed_softmax_backward(capsys):
    ex.check_fixed_softmax_backward(ex.fixed_softmax_backward)
    assert "✓ Exercise 3 (fixed softmax backward)" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="still the buggy version"):
        ex.check_fixed_softmax_backward(ex.buggy_softmax_backward)
    with pytest.raises(AssertionError, match="only the diagonal"):
        ex.check_fixed_softmax_backward(lambda dy, y: y * dy)
    with pytest.raises(AssertionError, match="softmax axis"):
        ex.check_fixed_softmax_backward(
            lambda dy, y: y * (dy - (dy * y).sum(axis=0, keepdims=True)))


def test_the_buggy_version_passes_with_ones():
    # the point of exercise 3: an all-ones dout cannot tell the two apart
    y = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    ones = np.ones_like(y)
    np.testing.assert_allclose(ex.buggy_softmax_backward(ones, y),
                               ex.fixed_softmax_backward(ones, y), atol=1e-15)
