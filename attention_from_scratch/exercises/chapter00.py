"""Checkers for the exercises of Chapter 0, "How this book checks itself"."""

import copy

import numpy as np

from attention_from_scratch.core.linear import LinearCache, linear_backward
from attention_from_scratch.exercises import ExerciseError, check_exercise

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


def _backward_difference(f, x, eps):
    return (f(x) - f(x - eps)) / eps


def _central_sign_flipped(f, x, eps):
    return (f(x - eps) - f(x + eps)) / (2 * eps)


def _only_second_term_divided(f, x, eps):
    return f(x + eps) - f(x - eps) / (2 * eps)          # read as f(a) - (f(b) / 2eps)


def _half_steps(f, x, eps):
    return (f(x + eps / 2) - f(x - eps / 2)) / eps


def _plus_instead_of_minus(f, x, eps):
    return (f(x + eps) + f(x - eps)) / (2 * eps)


def _divided_by_two_only(f, x, eps):
    return (f(x + eps) - f(x - eps)) / 2


def _not_divided(f, x, eps):
    return f(x + eps) - f(x - eps)


def _forward_over_two_eps(f, x, eps):
    return (f(x + eps) - f(x)) / (2 * eps)


def _two_eps_each_way(f, x, eps):
    return (f(x + 2 * eps) - f(x - 2 * eps)) / (2 * eps)


def _output_stepped(f, x, eps):
    return (f(x) + eps - (f(x) - eps)) / (2 * eps)


def _second_difference(f, x, eps):
    return (f(x + eps) - 2 * f(x) + f(x - eps)) / eps ** 2


def _fixed_step(h):
    def central_with_fixed_step(f, x, eps):
        return (f(x + h) - f(x - h)) / (2 * h)
    return central_with_fixed_step


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
            (_backward_difference, "that is the backward difference (f(x) - f(x-eps)) / eps; "
                                   "step both ways: f(x+eps) - f(x-eps)"),
            (_central_sign_flipped, "the sign is flipped: the difference is "
                                    "f(x+eps) - f(x-eps), the forward point first"),
            (_only_second_term_divided, "only f(x-eps) is divided: Python reads "
                                        "`a - b / c` as `a - (b / c)`; put the difference "
                                        "in brackets, `(f(x+eps) - f(x-eps)) / (2 * eps)`"),
            (_half_steps, "you stepped eps/2 each way; here the step is eps each way: "
                          "f(x+eps) and f(x-eps), divided by 2*eps"),
            (_plus_instead_of_minus, "the two values are added; the slope is their "
                                     "*difference*, f(x+eps) - f(x-eps), over 2*eps"),
            (_divided_by_two_only, "you divided by 2 only; the two points are 2*eps apart, "
                                   "so divide by `(2 * eps)`"),
            (_not_divided, "that is the change in f, not its slope: divide it by the "
                           "distance between the two points, `(2 * eps)`"),
            (_forward_over_two_eps, "f(x) is the middle point, not an end: the two ends are "
                                    "f(x+eps) and f(x-eps), 2*eps apart"),
            (_two_eps_each_way, "you stepped 2*eps each way; here the step is eps each way: "
                                "f(x+eps) and f(x-eps), divided by 2*eps"),
            (_output_stepped, "you stepped f's output, f(x) + eps, which gives 1 whatever f "
                              "is; step its input: f(x + eps) and f(x - eps)"),
            (_second_difference, "that is the second difference, an estimate of the second "
                                 "derivative f''(x); the first derivative needs only the two "
                                 "ends, (f(x+eps) - f(x-eps)) / (2 * eps)"),
            *[(_fixed_step(h), "the step is fixed in your code; use the `eps` argument "
                               "(the hidden cases use different steps)")
              for h in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)],
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


def _db_averaged(dout, x, w):
    dx, dw, db = linear_backward_reference(dout, x, w)
    return dx, dw, db / (x.size // x.shape[-1])


def _dw_transposed(dout, x, w):
    dx, dw, db = linear_backward_reference(dout, x, w)
    return dx, dw.T, db


def _dw_per_sequence(dout, x, w):
    dx, dw, db = linear_backward_reference(dout, x, w)
    return dx, np.swapaxes(x, -1, -2) @ dout, db


def _dw_whole_transpose(dout, x, w):
    dx, dw, db = linear_backward_reference(dout, x, w)
    return dx, x.T @ dout, db


def _db_first_axis_only(dout, x, w):
    dx, dw, db = linear_backward_reference(dout, x, w)
    return dx, dw, dout.sum(axis=0)


def _db_keepdims(dout, x, w):
    dx, dw, db = linear_backward_reference(dout, x, w)
    return dx, dw, db.reshape((1,) * (dout.ndim - 1) + db.shape)


def _db_not_summed(dout, x, w):
    dx, dw, db = linear_backward_reference(dout, x, w)
    return dx, dw, dout


def _db_over_features(dout, x, w):
    dx, dw, db = linear_backward_reference(dout, x, w)
    return dx, dw, dout.sum(axis=-1)


def _db_over_everything(dout, x, w):
    dx, dw, db = linear_backward_reference(dout, x, w)
    return dx, dw, dout.sum()


def _db_over_axes_0_and_1(dout, x, w):
    dx, dw, db = linear_backward_reference(dout, x, w)
    return dx, dw, dout.sum(axis=(0, 1))


def _dw_per_sequence_summed(dout, x, w):
    dx, dw, db = linear_backward_reference(dout, x, w)
    return dx, (np.swapaxes(x, -1, -2) @ dout).sum(axis=0), db


def _dw_per_sequence_averaged(dout, x, w):
    dx, dw, db = linear_backward_reference(dout, x, w)
    return dx, (np.swapaxes(x, -1, -2) @ dout).mean(axis=0), db


def _in_order(order):
    def gradients_in_another_order(dout, x, w):
        grads = linear_backward_reference(dout, x, w)
        return tuple(grads[i] for i in order)
    return gradients_in_another_order


_LEADING_AXES = ("x is (..., D_in), with any number of leading axes: flatten them, "
                 "x.reshape(-1, D_in) and dout.reshape(-1, D_out), and sum over that one "
                 "axis of positions")


def _only_three_axes(error, args):
    """The hint for code that ran on the 3-D cases and raised on a 2-D x."""
    if args[1].ndim != 2:
        return None
    return ("Your code ran on x of shape (B, T, D_in) and raised on this x, which has one "
            "leading axis: it assumes exactly two (an einsum 'btd,...', axis=(0, 1), "
            f"transpose(0, 2, 1)). {_LEADING_AXES}")


def _linear_case(rng, shape, d_out):
    *lead, d_in = shape
    return (rng.normal(size=(*lead, d_out)), rng.normal(size=shape),
            rng.normal(size=(d_in, d_out)))


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
    square = _linear_case(rng, (4, 4), 4)
    probes = [square, _linear_case(rng, (3, 3, 3), 3), _linear_case(rng, (3, 3, 3), 4)]
    flat = _linear_case(rng, (5, 2), 3)
    try:
        _check_linear_backward(attempt, cases, probes=probes)
    except ExerciseError as error:
        if not error.message.startswith("your function raised"):
            raise
        if _dx_is(attempt, square, lambda dout, x, w: dout @ w):
            raise ExerciseError(error.exercise, f"{error.message} Hint: dx = dout @ w only "
                                "runs when w is square; out = x @ w, so dx = dout @ w.T, "
                                "of x's shape.") from None
        if _is_right_on(attempt, flat):
            raise ExerciseError(error.exercise, f"{error.message} Hint: your function is "
                                "right for a 2-D x, (N, D_in), and raised on one with two "
                                "leading axes: .T reverses *all* the axes of a 3-D array, "
                                "and np.outer or np.dot(a.T, b) assume 2-D. "
                                f"{_LEADING_AXES}.") from None
        raise


def _is_right_on(attempt, args):
    """Whether every output of the attempt is right on ``args``."""
    try:
        with np.errstate(all="ignore"):
            got = [np.asarray(g, dtype=float) for g in attempt(*copy.deepcopy(args))]
    except Exception:                        # noqa: BLE001 - it crashes here too
        return False
    expected = linear_backward_reference(*args)
    return len(got) == len(expected) and all(
        g.shape == e.shape and np.allclose(g, e) for g, e in zip(got, expected, strict=True))


def _dx_is(attempt, args, wrong_dx):
    """Whether the attempt's first output is ``wrong_dx`` on ``args``."""
    try:
        with np.errstate(all="ignore"):
            dx = np.asarray(attempt(*copy.deepcopy(args))[0], dtype=float)
    except Exception:                        # noqa: BLE001 - it crashes here too
        return False
    expected = wrong_dx(*args)
    return dx.shape == expected.shape and np.allclose(dx, expected)


def _check_linear_backward(attempt, cases, probes):
    check_exercise(
        "Exercise 2 (linear backward)", attempt, linear_backward_reference, cases,
        mistakes=[
            (_dw_averaged, "dw and db are averaged over positions; every position "
                           "adds its own term, so they are sums"),
            (_db_averaged, "db is averaged over positions; every position adds its own "
                           "dout, so it is a sum"),
            (_dw_transposed, "dw is transposed: it has w's shape (D_in, D_out), "
                             "so it is x^T dout, not dout^T x"),
            (_dw_per_sequence, "that is one dw per sequence, of shape (B, D_in, D_out); "
                               "the same w serves every sequence, so add them up: sum over "
                               "every position, e.g. x.reshape(-1, D_in).T @ "
                               "dout.reshape(-1, D_out)"),
            (_dw_whole_transpose, "x.T reverses *all* axes of an x with leading axes, not "
                                  "just the last two; flatten the positions first, "
                                  "x.reshape(-1, D_in).T @ dout.reshape(-1, D_out)"),
            (_db_first_axis_only, "db is summed over the first axis only, so its shape is "
                                  "wrong; b is added at every position, so sum dout over "
                                  "every axis but the last"),
            (_db_keepdims, "db has extra axes of size 1: sum without keepdims, so db has "
                           "b's shape (D_out,)"),
            (_db_not_summed, "db = dout holds one gradient per position; b is one vector "
                             "shared by every position, so add them up: sum dout over every "
                             "axis but the last"),
            (_db_over_features, "db is summed over the last axis, the D_out features; b has "
                                "one entry per feature, so keep that axis and sum over every "
                                "other one (the positions)"),
            (_db_over_everything, "db is one number, dout summed over every axis; b has one "
                                  "entry per output feature, so sum over every axis but the "
                                  "last"),
            (_db_over_axes_0_and_1, "db is right for x of shape (B, T, D_in) but not for a "
                                    "2-D x: axis=(0, 1) assumes exactly two leading axes. "
                                    + _LEADING_AXES),
            (_dw_per_sequence_summed, "dw is right for x of shape (B, T, D_in) but not for "
                                      "a 2-D x: summing the per-sequence products over axis 0 "
                                      "assumes exactly two leading axes. " + _LEADING_AXES),
            (_dw_per_sequence_averaged, "dw is averaged over the batch; every sequence adds "
                                        "its own term to the one shared w, so it is a sum"),
            *[(_in_order(order), "the three gradients are in the wrong order: return "
                                 "(dx, dw, db), the order of the inputs x, w, b")
              for order in [(0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]],
        ],
        # square w and B = T = D_in: shapes where the mistakes above that crash
        # on the hidden cases run, so a crash can still be named
        probes=probes, crash_hint=_only_three_axes,
    )


def _softmax(scores):
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


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


def _axis_one(dy, y):
    return y * (dy - (dy * y).sum(axis=1, keepdims=True))


def _summed_over_everything(dy, y):
    return y * (dy - (dy * y).sum())


def _without_keepdims(dy, y):
    return y * (dy - (dy * y).sum(axis=-1))


def _sign_flipped(dy, y):
    return y * ((dy * y).sum(axis=-1, keepdims=True) - dy)


def _weighted_mean(dy, y):
    return y * (dy - (dy * y).mean(axis=-1, keepdims=True))


def _unweighted_sum(dy, y):
    return y * (dy - dy.sum(axis=-1, keepdims=True))


def _diagonal_only(dy, y):
    return y * (1 - y) * dy


def _y_on_first_term_only(dy, y):
    return y * dy - (dy * y).sum(axis=-1, keepdims=True)


def _sum_of_y(dy, y):
    return y * (dy - y.sum())


def _row_sums_of_y(dy, y):
    return y * (dy - y.sum(axis=-1, keepdims=True))


def _dy_and_y_swapped(dy, y):
    return dy * (y - (y * dy).sum(axis=-1, keepdims=True))


def _matrix_product(dy, y):
    return y * (dy - dy @ y)


def _matrix_product_transposed(dy, y):
    return y * (dy - dy @ np.swapaxes(y, -1, -2))


def _sum_of_y_squared(dy, y):
    return y * (dy - (y * y).sum(axis=-1, keepdims=True))


def _softmax_taken_again(dy, y):
    s = _softmax(y)
    return s * (dy - (dy * s).sum(axis=-1, keepdims=True))


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
            (_wrong_axis, "the sum runs over the softmax axis (axis=-1, along each "
                          "row), not down the columns (axis=0, or axis=-2)"),
            (_axis_one, "axis=1 is the last axis only of a 2-D array; the softmax axis is "
                        "the last one whatever the number of axes: axis=-1"),
            (_summed_over_everything, "the sum runs over every entry of the array; it is one "
                                      "sum per row: (dy * y).sum(axis=-1, keepdims=True)"),
            (_without_keepdims, "without keepdims=True the row sums lose their axis and "
                                "broadcast against the wrong one; write "
                                "(dy * y).sum(axis=-1, keepdims=True)"),
            (_sign_flipped, "the sign is flipped: y * (dy - (dy * y).sum(...)), "
                            "dy first"),
            (_weighted_mean, "that is the mean of dy * y; the weights y already sum to 1, "
                             "so the weighted mean of dy is the plain sum (dy * y).sum(...)"),
            (_unweighted_sum, "each dy_j must be weighted by y_j inside the sum: "
                              "(dy * y).sum(...), not dy.sum(...)"),
            (_diagonal_only, "your result is y * (1 - y) * dy (which y * (dy - dy * y) "
                             "also gives): only the diagonal of the Jacobian; the "
                             "off-diagonal terms -y_i y_j dy_j need the sum over the row, "
                             "(dy * y).sum(axis=-1, keepdims=True)"),
            (_y_on_first_term_only, "the subtracted sum needs the factor y too: "
                                    "y * (dy - (dy * y).sum(...))"),
            (_sum_of_y, "y.sum() adds up y, and over the whole array: the subtracted "
                        "number is, for each row, the sum of dy * y, "
                        "(dy * y).sum(axis=-1, keepdims=True)"),
            (_row_sums_of_y, "the row sums of y are all 1 (y is a softmax output), so that "
                             "subtracts 1 from dy; the subtracted number is the row sum of "
                             "dy * y, (dy * y).sum(axis=-1, keepdims=True)"),
            (_dy_and_y_swapped, "dy and y are swapped: the leading factor is the softmax "
                                "output y and the gradient dy comes first in the bracket, "
                                "y * (dy - (dy * y).sum(axis=-1, keepdims=True))"),
            (_matrix_product, "`@` (and np.dot) multiplies matrices; <dy, y> is one dot "
                              "product per row, entry by entry then summed: "
                              "(dy * y).sum(axis=-1, keepdims=True)"),
            (_matrix_product_transposed, "dy @ y.T (or np.dot(dy, y.T)) holds the dot "
                                         "product of every row of dy with every row of y; "
                                         "only row i with row i is wanted: "
                                         "(dy * y).sum(axis=-1, keepdims=True)"),
            (_sum_of_y_squared, "the sum is of dy * y, not y * y: "
                                "(dy * y).sum(axis=-1, keepdims=True)"),
            (_softmax_taken_again, "y is already the softmax output: use it as it is, "
                                   "without taking the softmax of it again"),
        ],
        # a square case, on which a sum without keepdims runs (wrongly) and so
        # can be named
        probes=[(rng.normal(size=(4, 4)), _softmax(rng.normal(size=(4, 4))))],
    )
