import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct


def test_hand_checkable_case(impl):
    x = np.array([[1.0, 2.0]])                      # (1, 2)
    w = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])  # (2, 3)
    b = np.array([0.5, 0.0, 1.0])
    out, cache = impl.linear.linear_forward(x, w, b)
    np.testing.assert_array_equal(out, [[1.5, 2.0, 1.0]])
    dx, dw, db = impl.linear.linear_backward(np.array([[1.0, 0.0, 0.0]]), cache)
    # only output 0 matters: out0 = x0 * 1 + x1 * 0 + b0
    np.testing.assert_array_equal(dx, [[1.0, 0.0]])
    np.testing.assert_array_equal(dw, [[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    np.testing.assert_array_equal(db, [1.0, 0.0, 0.0])


@pytest.mark.parametrize("x_shape", [(4,), (3, 4), (2, 3, 4), (1, 1, 4)])
def test_finite_differences(impl, rng, x_shape):
    inputs = (rng.normal(size=x_shape), rng.normal(size=(4, 5)), rng.normal(size=5))
    assert_gradients_correct(impl.linear.linear_forward, impl.linear.linear_backward,
                             inputs, rng=rng)


def test_steps_equals_core(rng):
    x, w, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5)), rng.normal(size=5)
    dout = rng.normal(size=(2, 3, 5))
    out_s, cache_s = steps.linear.linear_forward(x, w, b)
    out_c, cache_c = core.linear.linear_forward(x, w, b)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12)
    for g_s, g_c in zip(steps.linear.linear_backward(dout, cache_s),
                        core.linear.linear_backward(dout, cache_c), strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-12, atol=1e-14)


def test_core_keeps_float32_steps_uses_float64(rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    w, b = rng.normal(size=(4, 2)).astype(np.float32), np.zeros(2, np.float32)
    assert core.linear.linear_forward(x, w, b)[0].dtype == np.float32
    assert steps.linear.linear_forward(x, w, b)[0].dtype == np.float64


def test_integers_are_converted_exactly(impl):
    x = np.array([[3, 4]])
    out, _ = impl.linear.linear_forward(x, np.eye(2, dtype=int), np.zeros(2, dtype=int))
    assert out.dtype.kind == "f"
    np.testing.assert_array_equal(out, [[3.0, 4.0]])


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "b_shape", "match"),
    [
        ((3, 4), (5, 2), (2,), r"x must have shape \(\.\.\., D_in\) with D_in = 5.*\(3, 4\)"),
        ((3, 4), (4,), (2,), r"w must have shape \(D_in, D_out\), got shape \(4,\)"),
        ((3, 4), (4, 2), (3,), r"b must have shape \(D_out,\) = \(2,\), got shape \(3,\)"),
        ((3, 4), (4, 2), (1, 2), r"b must have shape"),
    ],
)
def test_bad_shapes_rejected(impl, x_shape, w_shape, b_shape, match):
    with pytest.raises(ValueError, match=match):
        impl.linear.linear_forward(np.ones(x_shape), np.ones(w_shape), np.ones(b_shape))


def test_bad_dout_and_dtype_rejected(impl):
    _, cache = impl.linear.linear_forward(np.ones((3, 4)), np.ones((4, 2)), np.ones(2))
    with pytest.raises(ValueError, match=r"dout must have shape .* \(3, 2\), got shape \(2, 3\)"):
        impl.linear.linear_backward(np.ones((2, 3)), cache)
    with pytest.raises(TypeError, match="x must be a real numeric array"):
        impl.linear.linear_forward(np.array([["a"]]), np.ones((1, 1)), np.ones(1))
