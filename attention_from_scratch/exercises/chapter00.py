"""Checkers for the exercises of Chapter 0, "How this book checks itself"."""

import numpy as np

from attention_from_scratch.core.linear import LinearCache, linear_backward
from attention_from_scratch.exercises import check_exercise

_RNG_SEED = 2024


def central_difference(f, x, eps):
    """Reference: ``(f(x + eps) - f(x - eps)) / (2 eps)``."""
    return (f(x + eps) - f(x - eps)) / (2 * eps)


def _forward_difference(f, x, eps):
    return (f(x + eps) - f(x)) / eps


def _central_without_two(f, x, eps):
    return (f(x + eps) - f(x - eps)) / eps


def _central_times_eps_over_two(f, x, eps):
    return (f(x + eps) - f(x - eps)) / 2 * eps              # read as (... / 2) * eps


def check_central_difference(attempt):
    """Exercise 1: ``central_difference(f, x, eps)`` for a scalar ``f``."""
    cases = [(np.sin, 0.3, 1e-3), (np.exp, -1.2, 1e-2), (np.tanh, 0.5, 1e-3),
             (lambda t: t ** 3 - 2 * t, 1.7, 1e-2)]
    check_exercise(
        "Exercise 1 (central_difference)", attempt, central_difference, cases,
        mistakes=[
            (_forward_difference, "that is the forward difference (f(x+eps) - f(x)) / eps; "
                                  "step both ways: f(x+eps) - f(x-eps)"),
            (_central_without_two, "the two points are 2*eps apart: divide by 2*eps"),
            (_central_times_eps_over_two, "Python reads `a / 2*eps` as `(a / 2) * eps`: it "
                                          "divides by 2 and then *multiplies* by eps; write "
                                          "`/ (2 * eps)`"),
        ],
        rtol=1e-10, atol=1e-12,
    )


def linear_backward_reference(dout, x, w):
    """Reference: ``(dx, dw, db)`` of ``x @ w + b``."""
    return linear_backward(dout, LinearCache(x, w))


def _dw_averaged(dout, x, w):
    dx, dw, db = linear_backward_reference(dout, x, w)
    n = x.size // x.shape[-1]
    return dx, dw / n, db / n


def check_linear_backward(attempt):
    """Exercise 2: ``my_linear_backward(dout, x, w) -> (dx, dw, db)``."""
    rng = np.random.default_rng(_RNG_SEED)
    cases = []
    for shape in [(3, 4, 5), (2, 6, 3), (7, 2)]:
        *lead, d_in = shape
        d_out = d_in + 1
        x = rng.normal(size=shape)
        w = rng.normal(size=(d_in, d_out))
        dout = rng.normal(size=(*lead, d_out))
        cases.append((dout, x, w))
    check_exercise(
        "Exercise 2 (linear backward)", attempt, linear_backward_reference, cases,
        mistakes=[
            (_dw_averaged, "dw and db are averaged over positions; every position "
                           "adds its own term, so they are sums"),
        ],
    )


def buggy_softmax_backward(dy, y):
    """Softmax backward with a bug that an all-ones ``dy`` cannot see."""
    return y * (dy - dy.mean(axis=-1, keepdims=True))


def fixed_softmax_backward(dy, y):
    """Reference: ``y * (dy - sum(dy * y))`` over the last axis."""
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def _dropped_correction(dy, y):
    return y * dy


def _leading_y_forgotten(dy, y):
    return dy - (dy * y).sum(axis=-1, keepdims=True)


def _wrong_axis(dy, y):
    return y * (dy - (dy * y).sum(axis=0, keepdims=True))


def check_fixed_softmax_backward(attempt):
    """Exercise 3: repair ``buggy_softmax_backward(dy, y)``."""
    rng = np.random.default_rng(_RNG_SEED + 1)
    cases = []
    for shape in [(3, 4), (2, 3, 5), (4, 4)]:
        scores = rng.normal(size=shape)
        y = np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)
        cases.append((rng.normal(size=shape), y))
    check_exercise(
        "Exercise 3 (fixed softmax backward)", attempt, fixed_softmax_backward, cases,
        mistakes=[
            (buggy_softmax_backward, "still the buggy version: the mean must weight each "
                                     "dy_j by y_j, i.e. (dy * y).sum(...)"),
            (_dropped_correction, "y * dy is only the diagonal of the Jacobian; subtract "
                                  "y * sum(dy * y) for the off-diagonal part"),
            (_leading_y_forgotten, "the leading y is missing: every term is scaled by the "
                                   "weight it came through, y * (dy - (dy * y).sum(...))"),
            (_wrong_axis, "the sum runs over the softmax axis (the last one), "
                          "not over rows"),
        ],
    )
