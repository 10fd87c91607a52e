import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct
from attention_from_scratch.common.masks import causal_mask, sliding_window_mask

SHAPES = [  # (lead, T, S, Dk, Dv, window)
    ((), 5, 5, 2, 3, 2),
    ((2,), 4, 7, 3, 2, 3),          # T < S: queries are the last positions
    ((2, 3), 6, 6, 3, 5, 4),        # window does not divide T
    ((1,), 1, 5, 2, 1, 2),
    ((), 3, 4, 2, 3, 9),            # window longer than the sequence
]


def make_qkv(rng, lead, t, s, d_k, d_v):
    return (rng.normal(size=(*lead, t, d_k)), rng.normal(size=(*lead, s, d_k)),
            rng.normal(size=(*lead, s, d_v)))


def test_window_of_one_returns_the_own_value(impl, rng):
    q, k, v = make_qkv(rng, (), 4, 6, 2, 3)
    out, _ = impl.local_attention.local_attention_forward(q, k, v, window=1)
    np.testing.assert_allclose(out, v[2:], rtol=1e-15)    # query i sits at position 2 + i


@pytest.mark.parametrize("shape", SHAPES)
def test_equals_attention_with_a_sliding_window_mask(impl, rng, shape):
    *sizes, window = shape
    q, k, v = make_qkv(rng, *sizes)
    t, s = sizes[1], sizes[2]
    out, cache = impl.attention.attention_forward(q, k, v,
                                                  mask=sliding_window_mask(t, window, s))
    out_l, cache_l = impl.local_attention.local_attention_forward(q, k, v, window=window)
    np.testing.assert_allclose(out_l, out, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out.shape)
    for g_l, g in zip(impl.local_attention.local_attention_backward(dout, cache_l),
                      impl.attention.attention_backward(dout, cache), strict=True):
        np.testing.assert_allclose(g_l, g, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("shape", SHAPES)
def test_finite_differences(impl, rng, shape):
    *sizes, window = shape
    assert_gradients_correct(impl.local_attention.local_attention_forward,
                             impl.local_attention.local_attention_backward,
                             make_qkv(rng, *sizes), kwargs={"window": window}, rng=rng)


@pytest.mark.parametrize("shape", SHAPES)
def test_steps_equals_core(rng, shape):
    *sizes, window = shape
    q, k, v = make_qkv(rng, *sizes)
    out_s, cache_s = steps.local_attention.local_attention_forward(q, k, v, window=window)
    out_c, cache_c = core.local_attention.local_attention_forward(q, k, v, window=window)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out_s.shape)
    for g_s, g_c in zip(steps.local_attention.local_attention_backward(dout, cache_s),
                        core.local_attention.local_attention_backward(dout, cache_c),
                        strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-10, atol=1e-13)


def test_converges_to_causal_attention_as_the_window_grows(impl, rng):
    t = 32
    q, k, v = make_qkv(rng, (3,), t, t, 4, 4)
    exact, _ = impl.attention.attention_forward(q, k, v, mask=causal_mask(t))
    errors = [np.abs(impl.local_attention.local_attention_forward(q, k, v, window=w)[0]
                     - exact).mean() for w in (2, 4, 8, 16, 32)]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))
    assert errors[0] > 0.1 and errors[-1] < 1e-14


def test_the_cache_holds_no_t_by_s_weights(impl, rng):
    q, k, v = make_qkv(rng, (), 64, 64, 3, 2)
    _, cache = impl.local_attention.local_attention_forward(q, k, v, window=4)
    assert cache.weights.size <= 64 * 2 * 4 < 64 * 64


def test_core_float32_matches_float64(rng):
    q, k, v = make_qkv(rng, (2, 3), 9, 11, 4, 5)
    out64, cache64 = core.local_attention.local_attention_forward(q, k, v, window=3)
    out32, cache32 = core.local_attention.local_attention_forward(
        *(a.astype(np.float32) for a in (q, k, v)), window=3)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    dout = rng.normal(size=out64.shape)
    for g32, g64 in zip(core.local_attention.local_attention_backward(
            dout.astype(np.float32), cache32),
            core.local_attention.local_attention_backward(dout, cache64), strict=True):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)


def test_bad_inputs_rejected(impl):
    q, k, v = np.ones((3, 2)), np.ones((4, 2)), np.ones((4, 5))
    forward = impl.local_attention.local_attention_forward
    with pytest.raises(ValueError, match=r"k must have at least T = 3 positions.*\(2, 2\)"):
        forward(q, np.ones((2, 2)), np.ones((2, 5)), window=2)
    with pytest.raises(ValueError, match="window must be at least 1, got 0"):
        forward(q, k, v, window=0)
    with pytest.raises(TypeError, match="window must be an int"):
        forward(q, k, v, window=None)
    with pytest.raises(ValueError, match=r"v must have shape \(\.\.\., S, Dv\).*\(5, 5\)"):
        forward(q, k, np.ones((5, 5)), window=2)
    _, cache = forward(q, k, v, window=2)
    with pytest.raises(ValueError, match=r"dout must have shape .*got shape \(3, 4\)"):
        impl.local_attention.local_attention_backward(np.ones((3, 4)), cache)
