import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct


def test_hand_checkable_case(impl):
    x = np.array([1.0, 2.0, 3.0])                   # mean 2, variance 2/3
    gamma, beta = np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 1.0])
    out, cache = impl.layer_norm.layer_norm_forward(x, gamma, beta, eps=0.0 + 1e-12)
    s = np.sqrt(1.5)                                # (x - 2) / sqrt(2/3) = [-s, 0, s]
    np.testing.assert_allclose(out, [-s, 0.0, 3 * s + 1], rtol=1e-10)
    dout = np.array([0.0, 1.0, 0.0])
    dx, dgamma, dbeta = impl.layer_norm.layer_norm_backward(dout, cache)
    np.testing.assert_array_equal(dbeta, dout)
    np.testing.assert_allclose(dgamma, [0.0, 0.0, 0.0], atol=1e-12)   # x_hat[1] = 0
    # out_1 = 2 * (x_1 - mean) / std: with x_hat_1 = 0 the std path drops out,
    # leaving 2 / std * (e_1 - 1/3)
    np.testing.assert_allclose(dx, 2 * s * (np.array([0.0, 1.0, 0.0]) - 1 / 3), rtol=1e-10)


@pytest.mark.parametrize("shape", [(4,), (3, 5), (2, 3, 4), (2, 1, 3, 6), (3, 1)])
def test_finite_differences(impl, rng, shape):
    d = shape[-1]
    inputs = (rng.normal(size=shape), rng.normal(size=d), rng.normal(size=d))
    assert_gradients_correct(impl.layer_norm.layer_norm_forward,
                             impl.layer_norm.layer_norm_backward, inputs, rng=rng)


def test_finite_differences_large_eps(impl, rng):
    # the layer's own `eps` reaches the forward; the checker's step stays its own
    inputs = (0.1 * rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=4))
    assert_gradients_correct(impl.layer_norm.layer_norm_forward,
                             impl.layer_norm.layer_norm_backward, inputs,
                             kwargs={"eps": 0.05}, rng=rng)


def test_steps_equals_core(rng):
    x, gamma, beta = rng.normal(size=(2, 3, 5)), rng.normal(size=5), rng.normal(size=5)
    dout = rng.normal(size=x.shape)
    out_s, cache_s = steps.layer_norm.layer_norm_forward(x, gamma, beta)
    out_c, cache_c = core.layer_norm.layer_norm_forward(x, gamma, beta)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    for g_s, g_c in zip(steps.layer_norm.layer_norm_backward(dout, cache_s),
                        core.layer_norm.layer_norm_backward(dout, cache_c), strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-10, atol=1e-13)


def test_normalised_rows_and_invariance_to_shift_and_scale(impl, rng):
    x = rng.normal(size=(4, 6))
    ones, zeros = np.ones(6), np.zeros(6)
    out, _ = impl.layer_norm.layer_norm_forward(x, ones, zeros, eps=1e-12)
    np.testing.assert_allclose(out.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=-1), 1.0, rtol=1e-10)
    moved, _ = impl.layer_norm.layer_norm_forward(3.0 * x - 7.0, ones, zeros, eps=1e-12)
    np.testing.assert_allclose(moved, out, rtol=1e-9, atol=1e-9)


def test_gradient_is_blind_to_a_shift(impl, rng):
    # out does not change when the same constant is added to a row,
    # so dx must sum to zero over each row
    x, gamma, beta = rng.normal(size=(3, 5)), rng.normal(size=5), rng.normal(size=5)
    _, cache = impl.layer_norm.layer_norm_forward(x, gamma, beta)
    dx, _, _ = impl.layer_norm.layer_norm_backward(rng.normal(size=x.shape), cache)
    np.testing.assert_allclose(dx.sum(axis=-1), 0.0, atol=1e-12)


def test_constant_row_is_finite(impl, rng):
    out, cache = impl.layer_norm.layer_norm_forward(np.full((2, 4), 3.0), np.ones(4),
                                                    np.arange(4.0))
    np.testing.assert_allclose(out, np.broadcast_to(np.arange(4.0), (2, 4)))
    grads = impl.layer_norm.layer_norm_backward(rng.normal(size=(2, 4)), cache)
    assert all(np.isfinite(g).all() for g in grads)


def test_core_float32_matches_float64(rng):
    x, gamma, beta = rng.normal(size=(2, 3, 8)), rng.normal(size=8), rng.normal(size=8)
    out64, cache64 = core.layer_norm.layer_norm_forward(x, gamma, beta)
    out32, cache32 = core.layer_norm.layer_norm_forward(x.astype(np.float32), gamma, beta)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    dout = rng.normal(size=x.shape)
    for g32, g64 in zip(core.layer_norm.layer_norm_backward(dout.astype(np.float32), cache32),
                        core.layer_norm.layer_norm_backward(dout, cache64), strict=True):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)


def test_bad_inputs_rejected(impl):
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"gamma must have shape \(D,\) = \(4,\), got shape \(3"):
        impl.layer_norm.layer_norm_forward(x, np.ones(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"beta must have shape \(D,\) = \(4,\), got shape \(1,"):
        impl.layer_norm.layer_norm_forward(x, np.ones(4), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="eps must be a positive number, got 0"):
        impl.layer_norm.layer_norm_forward(x, np.ones(4), np.zeros(4), eps=0)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., D\), got shape \(\)"):
        impl.layer_norm.layer_norm_forward(np.float64(1.0), np.ones(1), np.zeros(1))
    _, cache = impl.layer_norm.layer_norm_forward(x, np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"dout must have shape .*\(3, 4\), got shape \(4,\)"):
        impl.layer_norm.layer_norm_backward(np.ones(4), cache)
