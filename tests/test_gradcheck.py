"""The gradient checker must reject wrong backward passes, not just accept right ones."""

import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest

from attention_from_scratch.checking import verify
from attention_from_scratch.checking.gradcheck import (
    DEFAULT_EPS,
    DEFAULT_SCALE_FLOOR,
    DEFAULT_TOLERANCE,
    assert_gradients_correct,
    gradient_check,
    numerical_gradients,
)
from attention_from_scratch.core.linear import linear_backward, linear_forward
from attention_from_scratch.core.softmax import softmax_backward, softmax_forward


def linear_inputs(rng):
    return rng.normal(size=(3, 4)), rng.normal(size=(4, 5)), rng.normal(size=5)


def zeros_backward(dout, cache):
    dx, dw, db = linear_backward(dout, cache)
    return np.zeros_like(dx), np.zeros_like(dw), np.zeros_like(db)


def missing_transpose_backward(dout, cache):
    # dw = x^T dout written as (dout^T x)^T ... forgotten: dout^T x has shape (5, 4)
    x, w = cache
    dx, dw, db = linear_backward(dout, cache)
    return dx, (dout.T @ x).reshape(w.shape), db


def factor_two_backward(dout, cache):
    dx, dw, db = linear_backward(dout, cache)
    return 2 * dx, dw, db


def ones_blind_softmax_backward(dy, cache):
    y, axis = cache
    return y * (dy - dy.mean(axis=axis, keepdims=True))  # unweighted mean


def test_accepts_a_right_backward(rng):
    report = gradient_check(linear_forward, linear_backward, linear_inputs(rng), rng=rng)
    assert report.passed
    assert [r.name for r in report.rows] == ["x", "w", "b"]
    assert report.max_relative_error < 1e-8


@pytest.mark.parametrize("wrong", [zeros_backward, missing_transpose_backward,
                                   factor_two_backward])
def test_rejects_planted_wrong_backwards(rng, wrong):
    report = gradient_check(linear_forward, wrong, linear_inputs(rng), rng=rng)
    assert not report.passed
    assert "FAIL" in str(report)
    with pytest.raises(AssertionError, match="gradient check failed"):
        assert_gradients_correct(linear_forward, wrong, linear_inputs(rng), rng=rng)


def test_report_names_the_wrong_input(rng):
    report = gradient_check(linear_forward, factor_two_backward, linear_inputs(rng), rng=rng)
    verdicts = {r.name: r.relative_error <= report.tolerance for r in report.rows}
    assert verdicts == {"x": False, "w": True, "b": True}


def test_random_upstream_gradient_catches_what_ones_would_miss(rng):
    x = rng.normal(size=(3, 4))
    _, cache = softmax_forward(x)
    ones = np.ones((3, 4))
    # with dout = ones both backwards agree (both give 0) ...
    np.testing.assert_allclose(ones_blind_softmax_backward(ones, cache),
                               softmax_backward(ones, cache), atol=1e-15)
    # ... and the checker, which draws a random dout, still rejects the wrong one
    assert not gradient_check(softmax_forward, ones_blind_softmax_backward, (x,), rng=rng).passed
    assert gradient_check(softmax_forward, softmax_backward, (x,), rng=rng).passed


def test_wrong_shapes_counts_and_nans_are_failures(rng):
    def wrong_shape(dout, cache):
        dx, dw, db = linear_backward(dout, cache)
        return dx, dw.T, db

    def nan_backward(dout, cache):
        dx, dw, db = linear_backward(dout, cache)
        return dx * np.nan, dw, db

    report = gradient_check(linear_forward, wrong_shape, linear_inputs(rng), rng=rng)
    assert not report.passed and "shape (5, 4)" in str(report)
    assert not gradient_check(linear_forward, nan_backward, linear_inputs(rng), rng=rng).passed
    with pytest.raises(AssertionError, match="returned 2 gradients for 3 inputs"):
        gradient_check(linear_forward, lambda d, c: linear_backward(d, c)[:2],
                       linear_inputs(rng), rng=rng)


def params_forward(x, params):
    out, cache = linear_forward(x, params["w"], params["b"])
    return out, cache


def params_backward(dout, cache):
    dx, dw, db = linear_backward(dout, cache)
    return dx, {"w": dw, "b": db}


def test_dict_parameters_checked_entry_by_entry(rng):
    x, w, b = linear_inputs(rng)
    report = gradient_check(params_forward, params_backward, (x, {"w": w, "b": b}), rng=rng)
    assert report.passed
    assert [r.name for r in report.rows] == ["x", "params['w']", "params['b']"]

    def wrong_bias(dout, cache):
        dx, grads = params_backward(dout, cache)
        return dx, {"w": grads["w"], "b": grads["b"] * 0}

    def missing_key(dout, cache):
        dx, grads = params_backward(dout, cache)
        return dx, {"w": grads["w"]}

    assert not gradient_check(params_forward, wrong_bias, (x, {"w": w, "b": b}), rng=rng).passed
    report = gradient_check(params_forward, missing_key, (x, {"w": w, "b": b}), rng=rng)
    assert not report.passed and "keys ['w']" in str(report)


def test_inputs_are_not_modified(rng):
    inputs = linear_inputs(rng)
    before = [a.copy() for a in inputs]
    gradient_check(linear_forward, linear_backward, inputs, rng=rng)
    for a, b in zip(inputs, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_numerical_gradient_of_a_known_function():
    # L = sum(x**2 * dout) -> dL/dx = 2 x dout
    x, dout = np.array([1.0, -2.0, 3.0]), np.array([0.5, 1.0, -1.0])
    (grad,) = numerical_gradients(lambda a: (a ** 2, None), [x.copy()], dout)
    np.testing.assert_allclose(grad, 2 * x * dout, rtol=1e-9)


def scaled_backward(factor):
    """The linear backward with ``dw`` off by the relative amount ``factor - 1``."""
    def backward(dout, cache):
        dx, dw, db = linear_backward(dout, cache)
        return dx, dw * factor, db
    return backward


def test_the_defaults_are_the_named_constants():
    parameters = inspect.signature(gradient_check).parameters
    assert parameters["eps"].default == DEFAULT_EPS
    assert parameters["tolerance"].default == DEFAULT_TOLERANCE
    assert parameters["scale_floor"].default == DEFAULT_SCALE_FLOOR
    assert inspect.signature(numerical_gradients).parameters["eps"].default == DEFAULT_EPS
    assert verify.FD_TOLERANCE == DEFAULT_TOLERANCE


def test_a_backward_a_tenth_of_a_percent_off_fails_under_the_defaults(rng):
    # passes if the default tolerance were ever loosened to 1e-2 (or 1e-3)
    report = gradient_check(linear_forward, scaled_backward(1.001), linear_inputs(rng), rng=rng)
    assert not report.passed
    assert report.max_relative_error == pytest.approx(1e-3, rel=0.01)


@pytest.mark.parametrize("decades", [1, 2])
def test_the_default_tolerance_is_pinned_within_a_decade(rng, decades):
    # 10x the tolerance off fails; a tenth of it passes. Either bound moves if the
    # default does, so a loosened or tightened default changes a test outcome.
    off = 10.0 ** decades * DEFAULT_TOLERANCE
    assert not gradient_check(linear_forward, scaled_backward(1 + off),
                              linear_inputs(rng), rng=rng).passed
    assert gradient_check(linear_forward, scaled_backward(1 + DEFAULT_TOLERANCE / 10),
                          linear_inputs(rng), rng=rng).passed


def test_the_default_step_is_accurate_enough_for_the_default_tolerance(rng):
    # a right backward passes with four decades to spare: the step is not too coarse
    report = gradient_check(softmax_forward, softmax_backward, (rng.normal(size=(3, 4)),),
                            rng=rng)
    assert report.max_relative_error < DEFAULT_TOLERANCE * 1e-4


def _decade(value):
    return f"10^{{{round(np.log10(value))}}}"


def test_the_book_states_the_tolerance_and_step_the_code_uses():
    root = Path(__file__).resolve().parents[1]
    chapter = json.loads((root / "chapters" / "00_how_this_book_checks_itself.ipynb")
                         .read_text(encoding="utf-8"))
    text = " ".join("".join(cell["source"]) for cell in chapter["cells"]
                    if cell["cell_type"] == "markdown")
    text = " ".join(text.split())
    stated = re.findall(r"tolerance of \$(10\^\{-?\d+\})\$", text)
    steps_stated = re.findall(r"\$h = (10\^\{-?\d+\})\$", text)
    assert stated and set(stated) == {_decade(DEFAULT_TOLERANCE)}
    assert steps_stated and set(steps_stated) == {_decade(DEFAULT_EPS)}
    readme = (root / "README.md").read_text(encoding="utf-8")
    readme_tolerances = re.findall(r"central differences \(tolerance `([0-9.e-]+)`\)", readme)
    assert [float(t) for t in readme_tolerances] == [DEFAULT_TOLERANCE]
    assert [float(h) for h in re.findall(r"by ±([0-9.e-]+) in float64", readme)] == [DEFAULT_EPS]


def test_sampled_entries_check_only_some_and_still_catch_a_bug(rng):
    x, w, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 5)), rng.normal(size=5)
    dout = rng.normal(size=(3, 5))
    grads = numerical_gradients(linear_forward, [x, w, b], dout, n_entries=3, rng=rng)
    assert [int(np.sum(~np.isnan(g))) for g in grads] == [3, 3, 3]
    assert gradient_check(linear_forward, linear_backward, (x, w, b), rng=rng,
                          n_entries=3).passed

    def doubled_dw(dout, cache):
        dx, dw, db = linear_backward(dout, cache)
        return dx, 2 * dw, db

    assert not gradient_check(linear_forward, doubled_dw, (x, w, b), rng=rng,
                              n_entries=3).passed
