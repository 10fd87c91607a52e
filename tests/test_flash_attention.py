import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct
from attention_from_scratch.common.masks import causal_mask
from attention_from_scratch.measure.complexity import loglog_slope, peak_memory

SHAPES = [  # (lead, T, S, Dk, Dv): all different, T != S, Dk != Dv
    ((), 7, 5, 2, 3),
    ((2,), 5, 9, 4, 2),
    ((2, 3), 4, 1, 3, 5),
    ((1,), 1, 6, 2, 1),
]
BLOCK_SIZES = [1, 2, 3, 4, 128]    # 2, 3 and 4 do not divide most T and S above


def make_qkv(rng, lead, t, s, d_k, d_v):
    return (rng.normal(size=(*lead, t, d_k)), rng.normal(size=(*lead, s, d_k)),
            rng.normal(size=(*lead, s, d_v)))


def random_mask(rng, lead, t, s):
    mask = rng.random((*lead, t, s)) < 0.5
    mask[..., 0, :] = False            # a query with nothing to attend to
    return mask


def assert_same_as_standard(impl, rng, q, k, v, mask, block_size):
    out, cache = impl.attention.attention_forward(q, k, v, mask=mask)
    out_f, cache_f = impl.flash_attention.flash_attention_forward(q, k, v, mask=mask,
                                                                  block_size=block_size)
    np.testing.assert_allclose(out_f, out, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out.shape)
    for g_f, g in zip(impl.flash_attention.flash_attention_backward(dout, cache_f),
                      impl.attention.attention_backward(dout, cache), strict=True):
        np.testing.assert_allclose(g_f, g, rtol=1e-10, atol=1e-13)


def test_hand_checkable_case(impl):
    # one query, two keys in two tiles: scores [0, ln 3] -> weights [1/4, 3/4]
    q = np.array([[np.sqrt(2.0) * np.log(3.0), 0.0]])
    k = np.array([[0.0, 1.0], [1.0, 0.0]])
    v = np.array([[4.0], [8.0]])
    out, cache = impl.flash_attention.flash_attention_forward(q, k, v, block_size=1)
    np.testing.assert_allclose(out, [[0.25 * 4 + 0.75 * 8]])
    np.testing.assert_allclose(cache.lse, [np.log(1.0 + 3.0)])   # log(e^0 + e^ln 3)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("block_size", BLOCK_SIZES)
@pytest.mark.parametrize("masking", ["none", "random", "causal"])
def test_equals_standard_attention(impl, rng, shape, block_size, masking):
    lead, t, s = shape[:3]
    q, k, v = make_qkv(rng, *shape)
    mask = {"none": None, "random": random_mask(rng, lead, t, s),
            "causal": causal_mask(t, max(s, t))[:, :s]}[masking]
    assert_same_as_standard(impl, rng, q, k, v, mask, block_size)


@pytest.mark.parametrize("shape", SHAPES[:3])
@pytest.mark.parametrize("block_size", [2, 3])
def test_finite_differences(impl, rng, shape, block_size):
    assert_gradients_correct(impl.flash_attention.flash_attention_forward,
                             impl.flash_attention.flash_attention_backward,
                             make_qkv(rng, *shape), kwargs={"block_size": block_size},
                             rng=rng)


def test_finite_differences_with_mask(impl, rng):
    q, k, v = make_qkv(rng, (2,), 5, 6, 3, 2)
    assert_gradients_correct(impl.flash_attention.flash_attention_forward,
                             impl.flash_attention.flash_attention_backward, (q, k, v),
                             kwargs={"block_size": 4, "mask": random_mask(rng, (2,), 5, 6)},
                             rng=rng)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("block_size", [2, 3])
def test_steps_equals_core(rng, shape, block_size):
    q, k, v = make_qkv(rng, *shape)
    mask = random_mask(rng, shape[0], shape[1], shape[2])
    out_s, cache_s = steps.flash_attention.flash_attention_forward(
        q, k, v, mask=mask, block_size=block_size)
    out_c, cache_c = core.flash_attention.flash_attention_forward(
        q, k, v, mask=mask, block_size=block_size)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cache_s.lse, cache_c.lse, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out_s.shape)
    for g_s, g_c in zip(steps.flash_attention.flash_attention_backward(dout, cache_s),
                        core.flash_attention.flash_attention_backward(dout, cache_c),
                        strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-10, atol=1e-13)


def test_lse_is_the_log_sum_exp_of_the_scores(impl, rng):
    q, k, v = make_qkv(rng, (2,), 5, 7, 3, 2)
    _, cache = impl.flash_attention.flash_attention_forward(q, k, v, block_size=3)
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(3)
    np.testing.assert_allclose(cache.lse, np.log(np.exp(scores).sum(axis=-1)), rtol=1e-12)


def test_the_cache_holds_nothing_of_size_t_times_s(impl, rng):
    q, k, v = make_qkv(rng, (), 40, 30, 3, 2)
    mask = np.ones(30, dtype=bool)                       # broadcasts to (T, S)
    _, cache = impl.flash_attention.flash_attention_forward(q, k, v, mask=mask, block_size=8)
    arrays = [a for a in cache if isinstance(a, np.ndarray)]
    assert all(a.size < 40 * 30 for a in arrays if a is not cache.mask)
    assert cache.mask.shape == (40, 30) and cache.mask.strides[0] == 0   # a view, no copy


def test_fully_masked_rows_give_zeros_and_zero_gradients(impl, rng):
    q, k, v = make_qkv(rng, (2,), 4, 5, 3, 2)
    mask = np.ones((4, 5), dtype=bool)
    mask[1] = False
    mask[3, :2] = False
    out, cache = impl.flash_attention.flash_attention_forward(q, k, v, mask=mask,
                                                              block_size=2)
    np.testing.assert_array_equal(out[:, 1], 0.0)
    dq, dk, dv = impl.flash_attention.flash_attention_backward(rng.normal(size=out.shape),
                                                               cache)
    assert all(np.isfinite(g).all() for g in (dq, dk, dv))
    np.testing.assert_array_equal(dq[:, 1], 0.0)


def test_core_float32_matches_float64(rng):
    q, k, v = make_qkv(rng, (2, 3), 9, 7, 4, 5)
    out64, cache64 = core.flash_attention.flash_attention_forward(q, k, v, block_size=3)
    out32, cache32 = core.flash_attention.flash_attention_forward(
        *(a.astype(np.float32) for a in (q, k, v)), block_size=3)
    assert out32.dtype == cache32.lse.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    dout = rng.normal(size=out64.shape)
    grads32 = core.flash_attention.flash_attention_backward(dout.astype(np.float32), cache32)
    for g32, g64 in zip(grads32, core.flash_attention.flash_attention_backward(dout, cache64),
                        strict=True):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)


def test_large_scores_do_not_overflow(impl, rng):
    q, k, v = make_qkv(rng, (2,), 5, 6, 3, 2)
    out, cache = impl.flash_attention.flash_attention_forward(q * 1e3, k * 1e3, v,
                                                              block_size=2)
    grads = impl.flash_attention.flash_attention_backward(rng.normal(size=out.shape), cache)
    assert np.isfinite(out).all() and all(np.isfinite(g).all() for g in grads)


def test_extra_memory_grows_linearly_in_t():
    # the chapter measures up to T = 8192; here a smaller, faster version
    rng = np.random.default_rng(0)
    lengths = [256, 512, 1024, 2048]
    flash, standard = [], []
    for t in lengths:
        q, k, v, dout = (rng.normal(size=(t, 16)).astype(np.float32) for _ in range(4))

        def run_flash(q=q, k=k, v=v, dout=dout):
            _, cache = core.flash_attention.flash_attention_forward(q, k, v, block_size=64)
            core.flash_attention.flash_attention_backward(dout, cache)

        def run_standard(q=q, k=k, v=v, dout=dout):
            _, cache = core.attention.attention_forward(q, k, v)
            core.attention.attention_backward(dout, cache)

        flash.append(peak_memory(run_flash))
        standard.append(peak_memory(run_standard))
    assert 0.8 < loglog_slope(lengths, flash) < 1.2
    assert 1.8 < loglog_slope(lengths, standard) < 2.2
    assert standard[-1] > 10 * flash[-1]


def test_bad_inputs_rejected(impl):
    q, k, v = np.ones((3, 2)), np.ones((4, 2)), np.ones((4, 5))
    forward = impl.flash_attention.flash_attention_forward
    with pytest.raises(ValueError, match="block_size must be at least 1, got 0"):
        forward(q, k, v, block_size=0)
    with pytest.raises(TypeError, match="block_size must be an int"):
        forward(q, k, v, block_size=2.5)
    with pytest.raises(ValueError, match=r"v must have shape \(\.\.\., S, Dv\).*\(5, 5\)"):
        forward(q, k, np.ones((5, 5)))
    with pytest.raises(ValueError, match=r"mask must broadcast .* got shape \(4, 3\)"):
        forward(q, k, v, mask=np.ones((4, 3), bool))
    _, cache = forward(q, k, v)
    with pytest.raises(ValueError, match=r"dout must have shape .*got shape \(3, 4\)"):
        impl.flash_attention.flash_attention_backward(np.ones((3, 4)), cache)
