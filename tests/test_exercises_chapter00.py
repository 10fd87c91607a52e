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


@pytest.mark.parametrize(("attempt", "hint"), [
    (lambda f, x, eps: (f(x) - f(x - eps)) / eps, "backward difference"),
    (lambda f, x, eps: (f(x - eps) - f(x + eps)) / (2 * eps), "sign is flipped"),
    (lambda f, x, eps: f(x + eps) - f(x - eps) / (2 * eps), "only f\\(x-eps\\) is divided"),
    (lambda f, x, eps: (f(x + eps / 2) - f(x - eps / 2)) / eps, "eps/2 each way"),
    (lambda f, x, eps: (f(x + 1e-5) - f(x - 1e-5)) / 2e-5, "use the `eps` argument"),
])
def test_central_difference_named_mistakes(attempt, hint):
    with pytest.raises(AssertionError, match=hint):
        ex.check_central_difference(attempt)


def _right_linear_backward(dout, x, w):
    d_in, d_out = w.shape
    return (dout @ w.T, x.reshape(-1, d_in).T @ dout.reshape(-1, d_out),
            dout.reshape(-1, d_out).sum(axis=0))


def _with(dx=None, dw=None, db=None):
    """The right backward with one output replaced by a learner's mistake."""
    def attempt(dout, x, w):
        right = _right_linear_backward(dout, x, w)
        return tuple(right[i] if f is None else f(dout, x, w)
                     for i, f in enumerate((dx, dw, db)))
    return attempt


@pytest.mark.parametrize(("attempt", "hint"), [
    (_with(dx=lambda dout, x, w: dout @ w), "dx = dout @ w.T"),
    (_with(dw=lambda dout, x, w: x.T @ dout), "reverses \\*all\\* axes"),
    (_with(dw=lambda dout, x, w: np.swapaxes(x, -1, -2) @ dout), "one dw per sequence"),
    (_with(dw=lambda dout, x, w: (dout.reshape(-1, w.shape[1]).T
                                  @ x.reshape(-1, w.shape[0]))), "dw is transposed"),
    (_with(db=lambda dout, x, w: dout.reshape(-1, w.shape[1]).mean(axis=0)),
     "db is averaged"),
    (_with(db=lambda dout, x, w: dout.sum(axis=tuple(range(dout.ndim - 1)), keepdims=True)),
     "extra axes of size 1"),
])
def test_linear_backward_named_mistakes(attempt, hint):
    with pytest.raises(AssertionError, match=hint):
        ex.check_linear_backward(attempt)


@pytest.mark.parametrize(("attempt", "hint"), [
    (lambda dy, y: y * ((dy * y).sum(axis=-1, keepdims=True) - dy), "sign is flipped"),
    (lambda dy, y: y * (dy - (dy * y).sum(axis=-1)), "without keepdims=True"),
    (lambda dy, y: y * (dy - (dy * y).sum()), "one sum per row"),
    (lambda dy, y: y * (dy - (dy * y).mean(axis=-1, keepdims=True)), "the mean of dy \\* y"),
    (lambda dy, y: y * (dy - (dy * y).sum(axis=1, keepdims=True)), "axis=-1"),
    (lambda dy, y: y * (dy - dy.sum(axis=-1, keepdims=True)), "weighted by y_j"),
    (lambda dy, y: y * (1 - y) * dy, "only the diagonal"),
    (lambda dy, y: y * dy - (dy * y).sum(axis=-1, keepdims=True), "needs the factor y too"),
])
def test_fixed_softmax_backward_named_mistakes(attempt, hint):
    with pytest.raises(AssertionError, match=hint):
        ex.check_fixed_softmax_backward(attempt)
