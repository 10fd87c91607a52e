import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct

SHAPES = [  # (lead, T, K, D_in, D_out, dilation)
    ((), 7, 3, 2, 4, 1),
    ((2,), 6, 2, 3, 1, 2),
    ((2, 3), 5, 4, 1, 2, 3),
    ((1,), 2, 3, 2, 3, 2),          # taps reaching before the start
]


def make_inputs(rng, lead, t, k, d_in, d_out):
    return (rng.normal(size=(*lead, t, d_in)), rng.normal(size=(k, d_in, d_out)),
            rng.normal(size=d_out))


def test_hand_checkable_case(impl):
    x = np.arange(1.0, 6.0)[:, None]                      # 1, 2, 3, 4, 5
    w = np.array([[[1.0]], [[-1.0]]])                     # x_t - x_{t-1}
    out, _ = impl.convolution.convolution_forward(x, w, np.array([0.5]))
    np.testing.assert_allclose(out[:, 0], [1.5, 1.5, 1.5, 1.5, 1.5])


def test_matches_numpy_convolve(impl, rng):
    x, taps = rng.normal(size=9), rng.normal(size=4)      # one channel, independent reference
    out, _ = impl.convolution.convolution_forward(x[:, None], taps[:, None, None], np.zeros(1))
    np.testing.assert_allclose(out[:, 0], np.convolve(x, taps)[:9], rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_finite_differences(impl, rng, shape):
    *sizes, dilation = shape
    assert_gradients_correct(impl.convolution.convolution_forward,
                             impl.convolution.convolution_backward,
                             make_inputs(rng, *sizes), kwargs={"dilation": dilation}, rng=rng)


@pytest.mark.parametrize("shape", SHAPES)
def test_steps_equals_core(rng, shape):
    *sizes, dilation = shape
    inputs = make_inputs(rng, *sizes)
    out_s, cache_s = steps.convolution.convolution_forward(*inputs, dilation=dilation)
    out_c, cache_c = core.convolution.convolution_forward(*inputs, dilation=dilation)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out_s.shape)
    for g_s, g_c in zip(steps.convolution.convolution_backward(dout, cache_s),
                        core.convolution.convolution_backward(dout, cache_c), strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_each_output_sees_exactly_its_taps(impl, rng, dilation):
    x, w, b = make_inputs(rng, (), 12, 3, 2, 2)
    out, cache = impl.convolution.convolution_forward(x, w, b, dilation=dilation)
    dout = np.zeros_like(out)
    dout[9] = rng.normal(size=2)
    dx = impl.convolution.convolution_backward(dout, cache)[0]
    reached = np.flatnonzero(np.any(dx != 0, axis=-1))
    np.testing.assert_array_equal(reached, [9 - 2 * dilation, 9 - dilation, 9])


def test_core_float32_matches_float64(rng):
    inputs = make_inputs(rng, (2, 3), 6, 3, 4, 5)
    out64, cache64 = core.convolution.convolution_forward(*inputs, dilation=2)
    out32, cache32 = core.convolution.convolution_forward(
        *(a.astype(np.float32) for a in inputs), dilation=2)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    dout = rng.normal(size=out64.shape)
    for g32, g64 in zip(core.convolution.convolution_backward(dout.astype(np.float32), cache32),
                        core.convolution.convolution_backward(dout, cache64), strict=True):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)


def test_bad_inputs_rejected(impl):
    x, w, b = np.ones((5, 2)), np.ones((3, 2, 4)), np.ones(4)
    forward = impl.convolution.convolution_forward
    with pytest.raises(ValueError,
                       match=r"w must have shape \(K, D_in, D_out\), got shape \(2, 4\)"):
        forward(x, np.ones((2, 4)), b)
    with pytest.raises(ValueError, match=r"D_in = 2 \(w.shape\[1\]\), got shape \(5, 3\)"):
        forward(np.ones((5, 3)), w, b)
    with pytest.raises(ValueError,
                       match=r"b must have shape \(D_out,\) = \(4,\), got shape \(3,\)"):
        forward(x, w, np.ones(3))
    with pytest.raises(ValueError, match="dilation must be at least 1"):
        forward(x, w, b, dilation=0)
    _, cache = forward(x, w, b)
    with pytest.raises(ValueError, match=r"dout must have shape .*got shape \(5, 2\)"):
        impl.convolution.convolution_backward(np.ones((5, 2)), cache)
