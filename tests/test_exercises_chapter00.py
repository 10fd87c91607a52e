"""Chapter 0's checkers accept the right answers and reject planted wrong ones."""

import re

import numpy as np
import pytest

from attention_from_scratch.exercises import ExerciseError
from attention_from_scratch.exercises import chapter00 as ex


def assert_hint(check, attempt, hint):
    """``check`` rejects ``attempt`` with a message matching ``hint``.

    A crash's message quotes the attempt's own line, which in this file
    may also hold the hint the test expects; the quote is left out of
    the search, so only the checker's own words can match.
    """
    with pytest.raises(ExerciseError) as caught:
        check(attempt)
    said = re.sub(r"It happened in `[^`]*`, at `.*`\.(?= Hint:|$)", "",
                  str(caught.value), flags=re.DOTALL)
    assert re.search(hint, said), said


def test_central_difference(capsys):
    ex.check_central_difference(ex.central_difference)
    assert "✓ Exercise 1 (central_difference)" in capsys.readouterr().out
    assert_hint(ex.check_central_difference, lambda f, x, eps: (f(x + eps) - f(x)) / eps,
                "forward difference")
    assert_hint(ex.check_central_difference, lambda f, x, eps: (f(x + eps) - f(x - eps)) / eps,
                "divide by 2\\*eps")
    assert_hint(ex.check_central_difference, lambda f, x, eps: (f(x) - f(x - eps)) / eps,
                "that is the backward difference")


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

    assert_hint(ex.check_linear_backward, averaged, "averaged over positions")
    assert_hint(ex.check_linear_backward, db_not_summed_over_batch,
                "db is summed over the first axis only")
    assert_hint(ex.check_linear_backward, dx_without_transpose,
                r"Exercise 2 \(linear backward\): output 0 is wrong on case 1")


def test_fixed_softmax_backward(capsys):
    ex.check_fixed_softmax_backward(ex.fixed_softmax_backward)
    assert "✓ Exercise 3 (fixed softmax backward)" in capsys.readouterr().out
    assert_hint(ex.check_fixed_softmax_backward, ex.buggy_softmax_backward,
                "still the buggy version")
    assert_hint(ex.check_fixed_softmax_backward, lambda dy, y: y * dy, "only the diagonal")
    assert_hint(ex.check_fixed_softmax_backward,
                lambda dy, y: y * (dy - (dy * y).sum(axis=0, keepdims=True)),
                "softmax axis")


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
    assert_hint(ex.check_central_difference, attempt, hint)


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
    assert_hint(ex.check_linear_backward, attempt, hint)


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
    assert_hint(ex.check_fixed_softmax_backward, attempt, hint)


# Each slip below is written as a learner writes it, and must get its own hint.

@pytest.mark.parametrize(("attempt", "hint"), [
    (lambda f, x, eps: (f(x + eps) + f(x - eps)) / (2 * eps), "the two values are added"),
    (lambda f, x, eps: (f(x + eps) - f(x - eps)) / 2, "you divided by 2 only"),
    (lambda f, x, eps: f(x + eps) - f(x - eps), "the change in f, not its slope"),
    (lambda f, x, eps: (f(x + eps) - f(x)) / (2 * eps), "f\\(x\\) is the middle point"),
    (lambda f, x, eps: (f(x + 2 * eps) - f(x - 2 * eps)) / (2 * eps),
     "you stepped 2\\*eps each way"),
    (lambda f, x, eps: (f(x) + eps - (f(x) - eps)) / (2 * eps), "you stepped f's output"),
    (lambda f, x, eps: (f(x + eps) - 2 * f(x) + f(x - eps)) / eps ** 2,
     "the second difference"),
])
def test_central_difference_more_named_mistakes(attempt, hint):
    assert_hint(ex.check_central_difference, attempt, hint)


def test_linear_backward_with_db_not_summed():
    def my_linear_backward(dout, x, w):
        d_in, d_out = w.shape
        return dout @ w.T, x.reshape(-1, d_in).T @ dout.reshape(-1, d_out), dout
    assert_hint(ex.check_linear_backward, my_linear_backward,
                "db = dout holds one gradient per position")


def test_linear_backward_with_db_over_the_features():
    def my_linear_backward(dout, x, w):
        d_in, d_out = w.shape
        return (dout @ w.T, x.reshape(-1, d_in).T @ dout.reshape(-1, d_out),
                dout.sum(axis=-1))
    assert_hint(ex.check_linear_backward, my_linear_backward,
                "summed over the last axis, the D_out features")


def test_linear_backward_with_db_over_everything():
    def my_linear_backward(dout, x, w):
        d_in, d_out = w.shape
        return dout @ w.T, x.reshape(-1, d_in).T @ dout.reshape(-1, d_out), dout.sum()
    assert_hint(ex.check_linear_backward, my_linear_backward, "db is one number")


def test_linear_backward_written_for_three_axes_only():
    def db_over_two_axes(dout, x, w):
        d_in, d_out = w.shape
        return (dout @ w.T, x.reshape(-1, d_in).T @ dout.reshape(-1, d_out),
                dout.sum(axis=(0, 1)))

    def dw_per_sequence_then_summed(dout, x, w):
        dw = (np.swapaxes(x, -1, -2) @ dout).sum(axis=0)
        return dout @ w.T, dw, dout.reshape(-1, w.shape[1]).sum(axis=0)

    def dw_by_einsum(dout, x, w):
        dw = np.einsum("btd,bte->de", x, dout)
        return dout @ w.T, dw, dout.reshape(-1, w.shape[1]).sum(axis=0)

    def dw_by_transpose(dout, x, w):
        dw = (x.transpose(0, 2, 1) @ dout).sum(axis=0)
        return dout @ w.T, dw, dout.sum(axis=(0, 1))

    assert_hint(ex.check_linear_backward, db_over_two_axes,
                "db is right for x of shape \\(B, T, D_in\\)")
    assert_hint(ex.check_linear_backward, dw_per_sequence_then_summed,
                "dw is right for x of shape \\(B, T, D_in\\)")
    for crashes_on_a_2d_x in (dw_by_einsum, dw_by_transpose):
        assert_hint(ex.check_linear_backward, crashes_on_a_2d_x, "it assumes exactly two")


def test_linear_backward_written_for_a_2d_x_only():
    def dw_by_dot(dout, x, w):
        return dout @ w.T, np.dot(x.T, dout), dout.sum(axis=0)

    def dw_by_outer_products(dout, x, w):
        dw = np.zeros_like(w)
        for x_n, dout_n in zip(x, dout, strict=True):
            dw += np.outer(x_n, dout_n)
        return dout @ w.T, dw, dout.sum(axis=0)

    for attempt in (dw_by_dot, dw_by_outer_products):
        assert_hint(ex.check_linear_backward, attempt, "right for a 2-D x, \\(N, D_in\\)")


def test_linear_backward_averaged_over_the_batch():
    def my_linear_backward(dout, x, w):
        dw = (np.swapaxes(x, -1, -2) @ dout).mean(axis=0)
        return dout @ w.T, dw, dout.reshape(-1, w.shape[1]).sum(axis=0)
    assert_hint(ex.check_linear_backward, my_linear_backward, "dw is averaged over the batch")


def test_linear_backward_in_another_order():
    def my_linear_backward(dout, x, w):
        d_in, d_out = w.shape
        dx = dout @ w.T
        dw = x.reshape(-1, d_in).T @ dout.reshape(-1, d_out)
        db = dout.reshape(-1, d_out).sum(axis=0)
        return dw, dx, db
    assert_hint(ex.check_linear_backward, my_linear_backward,
                "in the wrong order: return \\(dx, dw, db\\)")


@pytest.mark.parametrize(("attempt", "hint"), [
    (lambda dy, y: y * (dy - y.sum()), "y.sum\\(\\) adds up y"),
    (lambda dy, y: y * (dy - y.sum(axis=-1, keepdims=True)), "the row sums of y are all 1"),
    (lambda dy, y: y * (dy - y.sum(axis=-1)), "the row sums of y are all 1"),
    (lambda dy, y: dy * (y - (y * dy).sum(axis=-1, keepdims=True)), "dy and y are swapped"),
    (lambda dy, y: y * (dy - dy @ y), "`@` \\(and np.dot\\) multiplies matrices"),
    (lambda dy, y: y * (dy - dy @ y.T), "every row of dy with every row of y"),
    (lambda dy, y: y * (dy - np.dot(dy, y.T)), "every row of dy with every row of y"),
    (lambda dy, y: y * (dy - (y * y).sum(axis=-1, keepdims=True)), "not y \\* y"),
    (lambda dy, y: y * (dy - dy * y), "which y \\* \\(dy - dy \\* y\\) also gives"),
    (lambda dy, y: y * (dy - (dy * y).sum(axis=-2, keepdims=True)), "or axis=-2"),
])
def test_fixed_softmax_backward_more_named_mistakes(attempt, hint):
    assert_hint(ex.check_fixed_softmax_backward, attempt, hint)


def test_fixed_softmax_backward_with_the_softmax_taken_again():
    def fixed_softmax_backward(dy, y):
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        y = e / e.sum(axis=-1, keepdims=True)
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    assert_hint(ex.check_fixed_softmax_backward, fixed_softmax_backward,
                "y is already the softmax output")


# Right answers written other ways are accepted.

@pytest.mark.parametrize("attempt", [
    lambda f, x, eps: (f(x + eps) - f(x - eps)) / 2 / eps,
    lambda f, x, eps: 0.5 * (f(x + eps) - f(x - eps)) / eps,
    lambda f, x, eps: ((f(x + eps) - f(x)) / eps + (f(x) - f(x - eps)) / eps) / 2,
])
def test_central_difference_accepts_right_answers(attempt, capsys):
    ex.check_central_difference(attempt)
    assert "✓ Exercise 1" in capsys.readouterr().out


def _linear_backward_by_einsum(dout, x, w):
    x_rows, dout_rows = x.reshape(-1, w.shape[0]), dout.reshape(-1, w.shape[1])
    return (np.einsum("...j,ij->...i", dout, w), np.einsum("ni,nj->ij", x_rows, dout_rows),
            np.einsum("nj->j", dout_rows))


def _linear_backward_by_outer_products(dout, x, w):
    d_in, d_out = w.shape
    dw, db = np.zeros((d_in, d_out)), np.zeros(d_out)
    for x_n, dout_n in zip(x.reshape(-1, d_in), dout.reshape(-1, d_out), strict=True):
        dw += np.outer(x_n, dout_n)
        db += dout_n
    return dout @ w.T, dw, db


def _linear_backward_by_tensordot(dout, x, w):
    lead = tuple(range(x.ndim - 1))
    return (dout @ w.T, np.tensordot(x, dout, axes=(lead, lead)),
            dout.sum(axis=lead))


@pytest.mark.parametrize("attempt", [_linear_backward_by_einsum,
                                     _linear_backward_by_outer_products,
                                     _linear_backward_by_tensordot])
def test_linear_backward_accepts_right_answers(attempt, capsys):
    ex.check_linear_backward(attempt)
    assert "✓ Exercise 2" in capsys.readouterr().out


def _softmax_backward_by_jacobian(dy, y):
    dx = np.empty_like(dy)
    for index in np.ndindex(y.shape[:-1]):
        row = y[index]
        jacobian = np.diag(row) - np.outer(row, row)    # (S, S), symmetric
        dx[index] = jacobian @ dy[index]
    return dx


@pytest.mark.parametrize("attempt", [
    lambda dy, y: y * dy - y * (dy * y).sum(axis=-1, keepdims=True),
    lambda dy, y: y * (dy - np.average(dy, axis=-1, weights=y, keepdims=True)),
    lambda dy, y: y * (dy - np.einsum("...j,...j->...", dy, y)[..., None]),
    _softmax_backward_by_jacobian,
])
def test_fixed_softmax_backward_accepts_right_answers(attempt, capsys):
    ex.check_fixed_softmax_backward(attempt)
    assert "✓ Exercise 3" in capsys.readouterr().out
