import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct


def test_hand_checkable_case(impl):
    # softmax([0, ln 3]) = [1/4, 3/4]
    y, cache = impl.softmax.softmax_forward(np.array([0.0, np.log(3.0)]))
    np.testing.assert_allclose(y, [0.25, 0.75])
    # Jacobian [[y0(1-y0), -y0 y1], [-y0 y1, y1(1-y1)]] = [[3, -3], [-3, 3]] / 16
    dx = impl.softmax.softmax_backward(np.array([1.0, 0.0]), cache)
    np.testing.assert_allclose(dx, [3 / 16, -3 / 16])


@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
def test_finite_differences(impl, rng, axis):
    assert_gradients_correct(impl.softmax.softmax_forward, impl.softmax.softmax_backward,
                             (rng.normal(size=(2, 3, 4)),), kwargs={"axis": axis}, rng=rng)


@pytest.mark.parametrize("axis", [-1, 0])
def test_steps_equals_core(rng, axis):
    x, dy = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    y_s, cache_s = steps.softmax.softmax_forward(x, axis=axis)
    y_c, cache_c = core.softmax.softmax_forward(x, axis=axis)
    np.testing.assert_allclose(y_s, y_c, rtol=1e-13)
    np.testing.assert_allclose(steps.softmax.softmax_backward(dy, cache_s),
                               core.softmax.softmax_backward(dy, cache_c),
                               rtol=1e-10, atol=1e-15)


def test_jacobian_matrix_is_diag_minus_outer():
    y = np.array([0.2, 0.3, 0.5])
    jacobian = steps.softmax.softmax_jacobian(y)
    np.testing.assert_allclose(jacobian, jacobian.T)
    np.testing.assert_allclose(jacobian.sum(axis=0), 0.0, atol=1e-16)
    assert jacobian[0, 0] == pytest.approx(0.2 * 0.8)
    assert jacobian[0, 2] == pytest.approx(-0.1)


def test_rows_sum_to_one_and_shift_invariance(impl, rng):
    x = rng.normal(size=(4, 6))
    y, _ = impl.softmax.softmax_forward(x)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0)
    shifted, _ = impl.softmax.softmax_forward(x + rng.normal(size=(4, 1)) * 100)
    np.testing.assert_allclose(shifted, y, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_overflow_at_plus_minus_1e4(dtype):
    x = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4], [1e4, 1e4, 0.0]], dtype=dtype)
    for module in (steps, core):
        y, cache = module.softmax.softmax_forward(x)
        dx = module.softmax.softmax_backward(np.ones_like(x) * [1, 2, 3], cache)
        assert np.isfinite(y).all() and np.isfinite(dx).all()
        np.testing.assert_allclose(y, [[1, 0, 0], [1 / 3] * 3, [0.5, 0.5, 0]], atol=1e-6)
    assert core.softmax.softmax_forward(x)[0].dtype == dtype


def test_all_minus_inf_row_gives_zeros_not_nan(impl, rng):
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]])
    y, cache = impl.softmax.softmax_forward(x)
    np.testing.assert_array_equal(y[1], 0.0)
    assert y[0, 1] == 0.0
    dx = impl.softmax.softmax_backward(rng.normal(size=x.shape), cache)
    assert np.isfinite(dx).all()
    np.testing.assert_array_equal(dx[1], 0.0)
    assert dx[0, 1] == 0.0


def test_backward_of_ones_is_zero(impl, rng):
    # why gradient checks never use an all-ones upstream gradient
    _, cache = impl.softmax.softmax_forward(rng.normal(size=(3, 4)))
    np.testing.assert_allclose(impl.softmax.softmax_backward(np.ones((3, 4)), cache), 0.0,
                               atol=1e-16)


def test_bad_inputs_rejected(impl):
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        impl.softmax.softmax_forward(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        impl.softmax.softmax_forward(np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        impl.softmax.softmax_forward(np.zeros((2, 2)), axis=2)
    with pytest.raises(TypeError, match="x must be a real numeric array"):
        impl.softmax.softmax_forward(np.array([True, False]))
    _, cache = impl.softmax.softmax_forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dy must have shape .*got shape \(3, 2\)"):
        impl.softmax.softmax_backward(np.zeros((3, 2)), cache)
