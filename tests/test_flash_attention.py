import warnings

import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct
from attention_from_scratch.common.masks import causal_mask, padding_mask
from attention_from_scratch.common.parallel import set_workers
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


def assert_steps_equals_core(rng, q, k, v, **kwargs):
    """Both mirrors' flash attention, forward (output and log-sum-exp) and
    backward with a random ``dout``, agree to round-off."""
    out_s, cache_s = steps.flash_attention.flash_attention_forward(q, k, v, **kwargs)
    out_c, cache_c = core.flash_attention.flash_attention_forward(q, k, v, **kwargs)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cache_s.lse, cache_c.lse, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out_s.shape)
    for g_s, g_c in zip(steps.flash_attention.flash_attention_backward(dout, cache_s),
                        core.flash_attention.flash_attention_backward(dout, cache_c),
                        strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("block_size", [2, 3])
def test_steps_equals_core(rng, shape, block_size):
    q, k, v = make_qkv(rng, *shape)
    mask = random_mask(rng, shape[0], shape[1], shape[2])
    assert_steps_equals_core(rng, q, k, v, mask=mask, block_size=block_size)


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
    # the chapter measures up to T = 8192; here a smaller, faster version, with small
    # tiles: a few (block, block) tiles per thread are a fixed cost, not growing with T
    rng = np.random.default_rng(0)
    lengths = [256, 512, 1024, 2048]
    flash, standard = [], []
    for t in lengths:
        q, k, v, dout = (rng.normal(size=(t, 16)).astype(np.float32) for _ in range(4))

        def run_flash(q=q, k=k, v=v, dout=dout):
            _, cache = core.flash_attention.flash_attention_forward(q, k, v, block_size=32)
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


# ------------------------------------------------- causal and key lengths, by index

OPTION_SHAPES = [  # (lead, T, S, Dk, Dv): T < S, T > S, T = 1, T = S, leading (B, H)
    ((2, 3), 5, 7, 3, 2),
    ((2, 3), 7, 4, 2, 3),
    ((2,), 1, 6, 4, 2),
    ((3, 2), 6, 6, 2, 5),
]
OPTIONS = ["causal", "lengths", "causal + lengths", "causal + mask",
           "causal + lengths + mask"]


def bottom_right_causal(t, s):
    """j <= i + (S - T): causal_mask(t, s), which needs S >= T, or for T > S the
    last S columns of the square mask (the first T - S queries see nothing)."""
    return causal_mask(t, s) if s >= t else causal_mask(t)[:, t - s:]


def option_inputs(rng, option, lead, t, s):
    """Keyword arguments for flash attention, and the equivalent boolean mask."""
    kwargs, mask = {}, np.ones((*lead, t, s), dtype=bool)
    if "causal" in option:
        kwargs["causal"] = True
        mask &= bottom_right_causal(t, s)
    if "lengths" in option:
        lengths = rng.integers(0, s + 1, size=lead[:1])   # one per batch row, every head
        lengths[0] = 0                                    # a sequence with no keys at all
        kwargs["key_lengths"] = lengths
        mask &= padding_mask(lengths, s).reshape(lead[:1] + (1,) * (len(lead) - 1) + (1, s))
    if "mask" in option:
        given = rng.random((*lead, t, s)) < 0.7
        kwargs["mask"] = given
        mask &= given
    return kwargs, mask


@pytest.mark.parametrize("shape", OPTION_SHAPES)
@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("block_size", [2, 3, 128])
def test_options_equal_standard_attention_with_the_same_mask(impl, rng, shape, option,
                                                              block_size):
    lead, t, s = shape[:3]
    q, k, v = make_qkv(rng, *shape)
    kwargs, mask = option_inputs(rng, option, lead, t, s)
    out, cache = impl.attention.attention_forward(q, k, v, mask=mask)
    out_f, cache_f = impl.flash_attention.flash_attention_forward(q, k, v, **kwargs,
                                                                  block_size=block_size)
    np.testing.assert_allclose(out_f, out, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out.shape)
    for g_f, g in zip(impl.flash_attention.flash_attention_backward(dout, cache_f),
                      impl.attention.attention_backward(dout, cache), strict=True):
        np.testing.assert_allclose(g_f, g, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("shape", OPTION_SHAPES)
@pytest.mark.parametrize("option", OPTIONS)
def test_options_steps_equals_core(rng, shape, option):
    lead, t, s = shape[:3]
    q, k, v = make_qkv(rng, *shape)
    kwargs, _ = option_inputs(rng, option, lead, t, s)
    assert_steps_equals_core(rng, q, k, v, **kwargs, block_size=3)


@pytest.mark.parametrize("shape", OPTION_SHAPES[:3])
@pytest.mark.parametrize("option", ["causal", "lengths", "causal + lengths + mask"])
def test_options_finite_differences(impl, rng, shape, option):
    lead, t, s = shape[:3]
    kwargs, _ = option_inputs(rng, option, lead, t, s)
    assert_gradients_correct(impl.flash_attention.flash_attention_forward,
                             impl.flash_attention.flash_attention_backward,
                             make_qkv(rng, *shape), kwargs={**kwargs, "block_size": 2},
                             rng=rng)


def test_rows_with_nothing_to_see_get_zeros_and_zero_gradients(impl, rng):
    # T > S causal: the first T - S = 3 queries come before every key; length 0: no keys
    q, k, v = make_qkv(rng, (2,), 7, 4, 3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # no 'invalid value' on the way
        out, cache = impl.flash_attention.flash_attention_forward(
            q, k, v, causal=True, key_lengths=np.array([4, 0]), block_size=2)
        dq, dk, dv = impl.flash_attention.flash_attention_backward(
            rng.normal(size=out.shape), cache)
    np.testing.assert_array_equal(out[0, :3], 0.0)
    np.testing.assert_array_equal(out[1], 0.0)
    assert np.abs(out[0, 3:]).min() > 0
    assert all(np.isfinite(g).all() for g in (out, dq, dk, dv))
    np.testing.assert_array_equal(dq[0, :3], 0.0)
    np.testing.assert_array_equal(dq[1], 0.0)
    np.testing.assert_array_equal(dk[1], 0.0)
    np.testing.assert_array_equal(dv[1], 0.0)


def test_key_lengths_of_shape_b_mean_one_length_per_batch_row_even_when_b_equals_h(impl,
                                                                                  rng):
    q, k, v = make_qkv(rng, (2, 2), 3, 5, 2, 2)          # B = H = 2
    lengths = np.array([5, 1])
    out, _ = impl.flash_attention.flash_attention_forward(q, k, v, key_lengths=lengths)
    per_row = padding_mask(lengths, 5)[:, None]          # (B, 1, 1, S)
    per_head = padding_mask(lengths, 5)                  # (H, 1, S): what (B,) must not mean
    expected = impl.attention.attention_forward(q, k, v, mask=per_row)[0]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)
    assert not np.allclose(out, impl.attention.attention_forward(q, k, v, mask=per_head)[0])


@pytest.mark.parametrize("lengths_shape", [(), (2,), (2, 3)])
def test_key_lengths_may_have_any_leading_prefix_shape(impl, rng, lengths_shape):
    q, k, v = make_qkv(rng, (2, 3), 4, 6, 2, 3)
    lengths = rng.integers(1, 7, size=lengths_shape)
    out, _ = impl.flash_attention.flash_attention_forward(q, k, v, key_lengths=lengths,
                                                          block_size=4)
    full = np.broadcast_to(lengths.reshape(lengths_shape + (1,) * (2 - len(lengths_shape))),
                           (2, 3))
    mask = np.arange(6) < full[..., None, None]          # (B, H, 1, S)
    np.testing.assert_allclose(out, impl.attention.attention_forward(q, k, v, mask=mask)[0],
                               rtol=1e-12, atol=1e-14)


def test_keys_no_query_may_see_are_never_read(impl, rng):
    # every sequence has at most 4 keys: the tiles of keys 4..8 are skipped, so NaN there
    # cannot reach the result (a computed and then masked tile would give 0 * NaN = NaN)
    q, k, v = make_qkv(rng, (2, 3), 5, 9, 3, 2)
    lengths = np.array([4, 2])
    clean = impl.flash_attention.flash_attention_forward(q, k, v, key_lengths=lengths,
                                                         block_size=2)
    k[..., 4:, :], v[..., 4:, :] = np.nan, np.nan
    out, cache = impl.flash_attention.flash_attention_forward(q, k, v, key_lengths=lengths,
                                                              block_size=2)
    np.testing.assert_array_equal(out, clean[0])
    grads = impl.flash_attention.flash_attention_backward(rng.normal(size=out.shape), cache)
    assert all(np.isfinite(g[..., :4, :]).all() for g in grads)


def test_queries_that_see_no_key_are_never_read(impl, rng):
    # causal with T - S = 4 queries before every key: two whole tiles of queries see nothing
    q, k, v = make_qkv(rng, (2,), 7, 3, 2, 2)
    q[:, :4] = np.nan
    out, cache = impl.flash_attention.flash_attention_forward(q, k, v, causal=True,
                                                              block_size=2)
    dq, dk, dv = impl.flash_attention.flash_attention_backward(rng.normal(size=out.shape),
                                                               cache)
    np.testing.assert_array_equal(out[:, :4], 0.0)
    assert all(np.isfinite(a).all() for a in (out, dk, dv, dq[:, 4:]))


def test_tiles_above_the_causal_diagonal_are_never_multiplied(impl, rng):
    # Queries of the first tile are huge and keys of the second tile are huge: the tile
    # (first queries, second keys), in the future, would overflow if it were multiplied.
    # The other three tiles are of ordinary size.
    q, k, v = make_qkv(rng, (2,), 4, 4, 3, 2)
    q[:, :2] *= 1e160
    q[:, 2:] *= 1e-160
    k[:, :2] *= 1e-160
    k[:, 2:] *= 1e160
    with np.errstate(over="raise", under="ignore"):
        out, cache = impl.flash_attention.flash_attention_forward(q, k, v, causal=True,
                                                                  block_size=2)
        grads = impl.flash_attention.flash_attention_backward(rng.normal(size=out.shape),
                                                              cache)
    assert np.isfinite(out).all() and all(np.isfinite(g).all() for g in grads)
    with np.errstate(over="ignore", under="ignore"):    # standard attention multiplies it
        expected = impl.attention.attention_forward(q, k, v, mask=causal_mask(4))[0]
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_causal_and_lengths_hold_no_array_of_size_t_times_s(impl):
    t = 512
    rng = np.random.default_rng(0)
    q, k, v, dout = (rng.normal(size=(t, 8)) for _ in range(4))

    def run():
        _, cache = impl.flash_attention.flash_attention_forward(
            q, k, v, causal=True, key_lengths=np.array(t - 3), block_size=32)
        impl.flash_attention.flash_attention_backward(dout, cache)

    run()
    # one (T, S) boolean mask alone would be T * S bytes
    assert peak_memory(run) < t * t


def test_results_do_not_depend_on_the_number_of_workers(rng):
    q, k, v = make_qkv(rng, (2, 3), 37, 41, 8, 5)
    q, k, v = (a.astype(np.float32) for a in (q, k, v))
    dout = rng.normal(size=(2, 3, 37, 5)).astype(np.float32)
    results = []
    for workers in (1, 2, 3):
        previous = set_workers(workers)
        try:
            out, cache = core.flash_attention.flash_attention_forward(
                q, k, v, causal=True, key_lengths=np.array([41, 20]), block_size=8)
            results.append((out, *core.flash_attention.flash_attention_backward(dout, cache)))
        finally:
            set_workers(previous)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


def test_core_float32_with_options_matches_float64(rng):
    q, k, v = make_qkv(rng, (2, 3), 9, 7, 4, 5)
    kwargs = {"causal": True, "key_lengths": np.array([7, 3]), "block_size": 3}
    out64, cache64 = core.flash_attention.flash_attention_forward(q, k, v, **kwargs)
    out32, cache32 = core.flash_attention.flash_attention_forward(
        *(a.astype(np.float32) for a in (q, k, v)), **kwargs)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    dout = rng.normal(size=out64.shape)
    for g32, g64 in zip(core.flash_attention.flash_attention_backward(dout.astype(np.float32),
                                                                      cache32),
                        core.flash_attention.flash_attention_backward(dout, cache64),
                        strict=True):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)


def test_bad_options_rejected(impl):
    q, k, v = np.ones((2, 3, 4, 2)), np.ones((2, 3, 5, 2)), np.ones((2, 3, 5, 1))
    forward = impl.flash_attention.flash_attention_forward
    with pytest.raises(TypeError, match="causal must be a bool"):
        forward(q, k, v, causal=1)
    with pytest.raises(TypeError, match="key_lengths must be integers, got dtype float64"):
        forward(q, k, v, key_lengths=np.array([2.0, 3.0]))
    with pytest.raises(ValueError, match=r"key_lengths must have shape \(\) or \(2,\) or "
                                         r"\(2, 3\) .* got shape \(3,\)"):
        forward(q, k, v, key_lengths=np.array([1, 2, 3]))          # (H,): not a prefix
    with pytest.raises(ValueError, match=r"got shape \(2, 1\)"):
        forward(q, k, v, key_lengths=np.array([[1], [2]]))
    with pytest.raises(ValueError, match=r"key_lengths must lie in \[0, S\] = \[0, 5\]"):
        forward(q, k, v, key_lengths=np.array([6, 2]))
    with pytest.raises(ValueError, match=r"key_lengths must lie in \[0, S\] = \[0, 5\]"):
        forward(q, k, v, key_lengths=np.array([-1, 2]))
