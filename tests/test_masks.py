"""Mask builders, and attention with masks in both implementations (Chapter 3)."""

import warnings

import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct
from attention_from_scratch.common.masks import causal_mask, padding_mask, sliding_window_mask

# ---------------------------------------------------------------- builders


def as_int(mask):
    return mask.astype(int).tolist()


def test_causal_mask_by_hand():
    assert as_int(causal_mask(3)) == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    # 2 cached keys, then 2 new queries at positions 2 and 3
    assert as_int(causal_mask(2, 4)) == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert as_int(causal_mask(1, 3)) == [[1, 1, 1]]   # the newest token sees everything
    assert as_int(causal_mask(1)) == [[1]]


@pytest.mark.parametrize(("t", "s"), [(1, 1), (4, 4), (1, 5), (3, 5), (5, 6)])
def test_causal_mask_is_the_last_rows_of_the_square_mask(t, s):
    mask = causal_mask(t, s)
    assert mask.dtype == np.bool_ and mask.shape == (t, s)
    np.testing.assert_array_equal(mask, np.tril(np.ones((s, s), bool))[s - t:])
    # query i sits at position s - t + i and sees exactly that many keys plus itself
    np.testing.assert_array_equal(mask.sum(axis=1), np.arange(s - t, s) + 1)


def test_causal_mask_default_s_is_t():
    np.testing.assert_array_equal(causal_mask(4), causal_mask(4, 4))


def test_padding_mask_by_hand():
    right = padding_mask([2, 0, 3], 3)
    assert right.dtype == np.bool_ and right.shape == (3, 1, 3)
    assert as_int(right[:, 0]) == [[1, 1, 0], [0, 0, 0], [1, 1, 1]]
    left = padding_mask(np.array([2, 0, 3], dtype=np.uint8), 3, side="left")
    assert as_int(left[:, 0]) == [[0, 1, 1], [0, 0, 0], [1, 1, 1]]


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_mask_counts_and_sides(rng, side):
    lengths = rng.integers(0, 7, size=5)
    mask = padding_mask(lengths, 6, side=side)[:, 0]                  # (B, S)
    np.testing.assert_array_equal(mask.sum(axis=1), lengths)
    # real tokens are contiguous and sit on the named side
    np.testing.assert_array_equal(np.sort(mask, axis=1)[:, ::-1] if side == "right"
                                  else np.sort(mask, axis=1), mask)
    np.testing.assert_array_equal(padding_mask(lengths, 6, side="left")[:, 0],
                                  padding_mask(lengths, 6, side="right")[:, 0, ::-1])


def test_sliding_window_mask_by_hand():
    assert as_int(sliding_window_mask(4, 2)) == [
        [1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    # 2 queries after 3 cached keys, window 2
    assert as_int(sliding_window_mask(2, 2, 5)) == [[0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]


@pytest.mark.parametrize(("t", "window", "s"), [(5, 1, 5), (4, 3, 6), (3, 2, 3), (2, 9, 7)])
def test_sliding_window_mask_properties(t, window, s):
    mask = sliding_window_mask(t, window, s)
    assert mask.dtype == np.bool_ and mask.shape == (t, s)
    np.testing.assert_array_equal(mask, sliding_window_mask(s, window)[s - t:])
    assert not np.any(mask & ~causal_mask(t, s))                     # never sees the future
    positions = np.arange(s - t, s)
    np.testing.assert_array_equal(mask.sum(axis=1), np.minimum(window, positions + 1))
    if window == 1:
        np.testing.assert_array_equal(mask, np.eye(s, dtype=bool)[s - t:])
    if window >= s:
        np.testing.assert_array_equal(mask, causal_mask(t, s))


def test_combining_causal_and_left_padding():
    lengths = np.array([1, 3, 4])
    mask = causal_mask(4) & padding_mask(lengths, 4, side="left")      # (B, T, S)
    assert mask.shape == (3, 4, 4) and mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, np.logical_and(causal_mask(4)[None],
                                                       padding_mask(lengths, 4, side="left")))
    # a padding query (position < S - length) sees only padding: nothing to attend to
    empty_rows = ~mask.any(axis=-1)                                   # (B, T)
    np.testing.assert_array_equal(empty_rows, np.arange(4)[None, :] < 4 - lengths[:, None])


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: causal_mask(0), ValueError, r"t must be at least 1, got 0"),
    (lambda: causal_mask(-2), ValueError, r"t must be at least 1"),
    (lambda: causal_mask(2.0), TypeError, r"t must be an int, got float"),
    (lambda: causal_mask(True), TypeError, r"t must be an int, got bool"),
    (lambda: causal_mask("3"), TypeError, r"t must be an int, got str"),
    (lambda: causal_mask(4, 3), ValueError, r"s must be at least t = 4 .* got s = 3"),
    (lambda: causal_mask(3, 0), ValueError, r"s must be at least 1"),
    (lambda: padding_mask([2, 1], 0), ValueError, r"s must be at least 1"),
    (lambda: padding_mask([2, 4], 3), ValueError, r"lengths must lie in \[0, s\] = \[0, 3\]"),
    (lambda: padding_mask([2, -1], 3), ValueError, r"lengths must lie in .* \[2, -1\]"),
    (lambda: padding_mask([[2, 1]], 3), ValueError, r"lengths must have shape \(B,\).*"
                                                    r"got shape \(1, 2\)"),
    (lambda: padding_mask(2, 3), ValueError, r"lengths must have shape \(B,\).*got shape \(\)"),
    (lambda: padding_mask([], 3), ValueError, r"lengths must have shape \(B,\) with B >= 1"),
    (lambda: padding_mask([2.0, 1.0], 3), TypeError, r"lengths must be integers.*float64"),
    (lambda: padding_mask([True, False], 3), TypeError, r"lengths must be integers.*bool"),
    (lambda: padding_mask([2, 1], 3, side="top"), ValueError, r'side must be "right" or "left"'),
    (lambda: sliding_window_mask(3, 0), ValueError, r"window must be at least 1"),
    (lambda: sliding_window_mask(3, 2, 2), ValueError, r"s must be at least t = 3"),
    (lambda: sliding_window_mask(3, 1.5), TypeError, r"window must be an int"),
])
def test_builders_reject_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_builders_accept_numpy_integers():
    np.testing.assert_array_equal(causal_mask(np.int32(3), np.int64(4)), causal_mask(3, 4))
    np.testing.assert_array_equal(sliding_window_mask(np.int16(3), np.uint8(2)),
                                  sliding_window_mask(3, 2))


# ------------------------------------------------------- attention with masks


def make_qkv(rng, lead, t, s, d_k, d_v, dtype=np.float64):
    return tuple(rng.normal(size=shape).astype(dtype) for shape in
                 ((*lead, t, d_k), (*lead, s, d_k), (*lead, s, d_v)))


def random_mask(shape):
    """A fixed random mask (seeded by its shape) with one query row all False."""
    mask = np.random.default_rng(sum(shape) * 31 + len(shape)).random(shape) < 0.6
    mask[(0,) * (len(shape) - 2) + (-1,)] = False      # nothing to attend to
    return mask


# (label, lead, T, S, Dk, Dv, mask): all sizes different within a case, T != S mostly
MASKED_CASES = [
    ("causal T=S over batch", (2,), 4, 4, 3, 2, causal_mask(4)),
    ("causal offset T<S", (), 3, 5, 2, 4, causal_mask(3, 5)),
    ("causal offset over B and H", (2, 3), 2, 4, 5, 1, causal_mask(2, 4)),
    ("right padding, a fully padded sequence", (3,), 4, 5, 2, 6,
     padding_mask([5, 2, 0], 5)),
    ("padding over heads", (2, 3), 4, 5, 6, 1, padding_mask([3, 5], 5)[:, None]),
    ("causal & left padding", (3,), 4, 4, 2, 5,
     causal_mask(4) & padding_mask([1, 3, 4], 4, side="left")),
    ("causal offset & left padding, heads", (2, 3), 3, 5, 4, 2,
     causal_mask(3, 5) & padding_mask([4, 2], 5, side="left")[:, None]),
    ("sliding window offset", (2,), 4, 6, 3, 5, sliding_window_mask(4, 3, 6)),
    ("random, full shape", (2, 3), 4, 5, 2, 3, random_mask((2, 3, 4, 5))),
    ("random, shared over batch", (2, 3), 3, 4, 5, 2, random_mask((1, 3, 3, 4))),
    ("random, shared over heads", (2, 3), 3, 5, 4, 2, random_mask((2, 1, 3, 5))),
    ("random, one (T, S) for all", (2, 3), 4, 3, 2, 5, random_mask((4, 3))),
    ("random keys only", (2, 3), 4, 5, 3, 2, random_mask((2, 1, 1, 5))),
    ("random T > S", (3,), 5, 2, 4, 3, random_mask((3, 5, 2))),
]
IDS = [case[0] for case in MASKED_CASES]


def test_cases_include_fully_masked_rows():
    # the fully masked row is the edge the package must get right: make sure we test it
    assert sum(bool(np.any(~case[-1].any(axis=-1))) for case in MASKED_CASES) >= 4


def test_masked_hand_checkable_case(impl):
    # causal, T = S = 2, Dk = 2: query 0 sees only key 0; query 1 sees both, scores [0, ln 3]
    q = np.array([[5.0, -7.0], [np.sqrt(2.0) * np.log(3.0), 0.0]])
    k = np.array([[0.0, 1.0], [1.0, 0.0]])
    v = np.array([[4.0, 1.0], [8.0, -1.0]])
    out, cache = impl.attention.attention_forward(q, k, v, mask=causal_mask(2))
    np.testing.assert_array_equal(cache.weights[0], [1.0, 0.0])
    np.testing.assert_array_equal(out[0], v[0])
    np.testing.assert_allclose(cache.weights[1], [0.25, 0.75])
    np.testing.assert_allclose(out[1], [0.25 * 4 + 0.75 * 8, 0.25 - 0.75])


@pytest.mark.parametrize("case", MASKED_CASES, ids=IDS)
def test_finite_differences_with_masks(impl, rng, case):
    _, lead, t, s, d_k, d_v, mask = case
    assert_gradients_correct(impl.attention.attention_forward,
                             impl.attention.attention_backward,
                             make_qkv(rng, lead, t, s, d_k, d_v),
                             kwargs={"mask": mask}, rng=rng)


@pytest.mark.parametrize("case", MASKED_CASES, ids=IDS)
def test_steps_equals_core_with_masks(rng, case):
    _, lead, t, s, d_k, d_v, mask = case
    q, k, v = make_qkv(rng, lead, t, s, d_k, d_v)
    out_s, cache_s = steps.attention.attention_forward(q, k, v, mask=mask)
    out_c, cache_c = core.attention.attention_forward(q, k, v, mask=mask)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    # the same weights are exactly 0 in both
    np.testing.assert_array_equal(cache_s.weights == 0, cache_c.weights == 0)
    dout = rng.normal(size=out_s.shape)
    for g_s, g_c in zip(steps.attention.attention_backward(dout, cache_s),
                        core.attention.attention_backward(dout, cache_c), strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("case", MASKED_CASES, ids=IDS)
def test_masked_weights_are_exactly_zero_and_rows_sum_to_one_or_zero(impl, rng, case):
    _, lead, t, s, d_k, d_v, mask = case
    q, k, v = make_qkv(rng, lead, t, s, d_k, d_v)
    out, cache = impl.attention.attention_forward(q, k, v, mask=mask)
    full = np.broadcast_to(mask, cache.weights.shape)
    assert np.all(cache.weights[~full] == 0.0)
    assert np.all(cache.weights[full] > 0.0)
    row_sums = cache.weights.sum(axis=-1)
    empty = ~full.any(axis=-1)
    np.testing.assert_allclose(row_sums[~empty], 1.0)
    np.testing.assert_array_equal(row_sums[empty], 0.0)
    np.testing.assert_array_equal(out[empty], 0.0)


@pytest.mark.parametrize("case", MASKED_CASES, ids=IDS)
def test_masked_positions_receive_exactly_zero_gradient(impl, rng, case):
    # for the upstream gradient of one query row alone, every key that row may not
    # see gets exactly 0 in dk and dv; and every other query row gets exactly 0 in dq
    _, lead, t, s, d_k, d_v, mask = case
    q, k, v = make_qkv(rng, lead, t, s, d_k, d_v)
    out, cache = impl.attention.attention_forward(q, k, v, mask=mask)
    full = np.broadcast_to(mask, out.shape[:-1] + (s,))                # (..., T, S)
    for i in range(t):
        dout = np.zeros_like(out)
        dout[..., i, :] = rng.normal(size=dout[..., i, :].shape)
        dq, dk, dv = impl.attention.attention_backward(dout, cache)
        hidden = ~full[..., i, :]                                     # (..., S)
        assert np.all(dk[hidden] == 0.0) and np.all(dv[hidden] == 0.0)
        assert np.all(np.delete(dq, i, axis=-2) == 0.0)
        assert np.any(dv[~hidden] != 0.0) or not np.any(~hidden)      # the test can fail


def test_keys_masked_for_every_query_get_zero_gradient(impl, rng):
    q, k, v = make_qkv(rng, (2, 3), 4, 6, 2, 5)
    mask = causal_mask(4, 6) & padding_mask([4, 6], 6)[:, None]       # (B, 1, T, S)
    out, cache = impl.attention.attention_forward(q, k, v, mask=mask)
    dq, dk, dv = impl.attention.attention_backward(rng.normal(size=out.shape), cache)
    np.testing.assert_array_equal(dk[0, :, 4:], 0.0)                  # padding of sequence 0
    np.testing.assert_array_equal(dv[0, :, 4:], 0.0)
    assert np.all(dv[1, :, 4:] != 0.0)                                # sequence 1 has no padding


def test_steps_dscores_are_exactly_zero_where_masked(rng):
    # steps keeps each sub-step's cache: look inside, at the gradient of the scores
    q, k, v = make_qkv(rng, (2,), 3, 5, 4, 2)
    mask = random_mask((2, 3, 5))
    out, cache = steps.attention.attention_forward(q, k, v, mask=mask)
    dweights, _ = steps.attention.weighted_sum_backward(rng.normal(size=out.shape),
                                                        cache.weighted_sum)
    dscores = steps.softmax.softmax_backward(dweights, cache.softmax)
    assert np.all(dscores[~mask] == 0.0) and np.any(dscores[mask] != 0.0)


@pytest.mark.parametrize(("t", "s"), [(5, 5), (3, 6), (1, 4)])
def test_causal_future_inputs_cannot_change_the_output(impl, rng, t, s):
    q, k, v = make_qkv(rng, (2, 3), t, s, 4, 2)
    mask = causal_mask(t, s)
    out, _ = impl.attention.attention_forward(q, k, v, mask=mask)
    for i in range(t):
        position = s - t + i
        q2, k2, v2 = q.copy(), k.copy(), v.copy()
        q2[..., i + 1:, :] += 10 * rng.normal(size=q2[..., i + 1:, :].shape)
        k2[..., position + 1:, :] = 1e3 * rng.normal(size=k2[..., position + 1:, :].shape)
        v2[..., position + 1:, :] = 1e3 * rng.normal(size=v2[..., position + 1:, :].shape)
        out2, _ = impl.attention.attention_forward(q2, k2, v2, mask=mask)
        np.testing.assert_array_equal(out2[..., :i + 1, :], out[..., :i + 1, :])  # bitwise
        if i + 1 < t:
            assert not np.array_equal(out2[..., i + 1:, :], out[..., i + 1:, :])


@pytest.mark.parametrize(("t", "s"), [(5, 5), (3, 6)])
def test_causal_gradient_to_the_future_is_exactly_zero(impl, rng, t, s):
    q, k, v = make_qkv(rng, (2,), t, s, 3, 4)
    out, cache = impl.attention.attention_forward(q, k, v, mask=causal_mask(t, s))
    for i in range(t):
        position = s - t + i
        dout = np.zeros_like(out)
        dout[..., :i + 1, :] = rng.normal(size=dout[..., :i + 1, :].shape)   # outputs 0..i
        dq, dk, dv = impl.attention.attention_backward(dout, cache)
        np.testing.assert_array_equal(dq[..., i + 1:, :], 0.0)
        np.testing.assert_array_equal(dk[..., position + 1:, :], 0.0)
        np.testing.assert_array_equal(dv[..., position + 1:, :], 0.0)
        assert np.all(dv[..., :position + 1, :] != 0.0)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("heads", [False, True])
def test_padding_cannot_change_real_tokens(impl, rng, side, heads):
    lengths, s = np.array([5, 3, 1]), 5
    lead = (3, 2) if heads else (3,)
    q, k, v = make_qkv(rng, lead, s, s, 4, 2)                           # self-attention shape
    mask = padding_mask(lengths, s, side=side)
    mask = mask[:, None] if heads else mask
    out, _ = impl.attention.attention_forward(q, k, v, mask=mask)
    real = padding_mask(lengths, s, side=side)[:, 0]                    # (B, S)
    real_lead = real[:, None] if heads else real                       # (B, [1,] S)
    pad = np.broadcast_to(~real_lead, q.shape[:-1])                     # (B, [H,] S)
    q2, k2, v2 = q.copy(), k.copy(), v.copy()
    for x in (q2, k2, v2):                                             # garbage in the padding
        x[pad] = 50 + 100 * rng.normal(size=x[pad].shape)
    out2, _ = impl.attention.attention_forward(q2, k2, v2, mask=mask)
    real_rows = np.broadcast_to(real_lead, out.shape[:-1])
    np.testing.assert_array_equal(out2[real_rows], out[real_rows])     # bitwise
    # and each sequence's real tokens get what they would get with no padding at all
    for b, n in enumerate(lengths):
        keep = np.flatnonzero(real[b])
        alone, _ = impl.attention.attention_forward(q[b][..., keep, :], k[b][..., keep, :],
                                                    v[b][..., keep, :])
        np.testing.assert_allclose(out[b][..., keep, :], alone, rtol=1e-12, atol=1e-14)
        assert len(keep) == n


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fully_masked_rows_give_zeros_and_no_nan(impl, rng, dtype):
    q, k, v = make_qkv(rng, (2,), 3, 4, 5, 2, dtype=dtype)
    mask = np.array([[True, False, True, True],
                     [False, False, False, False],
                     [False, True, False, False]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # 0/0 would warn: make it fail
        out, cache = impl.attention.attention_forward(q, k, v, mask=mask)
        dout = rng.normal(size=out.shape).astype(dtype)
        dq, dk, dv = impl.attention.attention_backward(dout, cache)
    for x in (out, cache.weights, dq, dk, dv):
        assert np.isfinite(x).all()
    np.testing.assert_array_equal(out[:, 1], 0.0)
    np.testing.assert_array_equal(cache.weights[:, 1], 0.0)
    np.testing.assert_array_equal(dq[:, 1], 0.0)
    np.testing.assert_array_equal(cache.weights[:, 2], [[0, 1, 0, 0]] * 2)
    np.testing.assert_array_equal(out[:, 2], v[:, 1])       # one allowed key: copy its value
    # a single allowed key: its weight is 1 whatever q is, so dq is 0 up to round-off
    np.testing.assert_allclose(dq[:, 2], 0.0, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_everything_masked_gives_zero_output_and_zero_gradients(impl, rng, dtype):
    q, k, v = make_qkv(rng, (2, 3), 4, 5, 2, 3, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = impl.attention.attention_forward(q, k, v, mask=np.zeros((4, 5), bool))
        grads = impl.attention.attention_backward(rng.normal(size=out.shape), cache)
    np.testing.assert_array_equal(out, 0.0)
    for grad, x in zip(grads, (q, k, v), strict=True):
        assert grad.shape == x.shape
        np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_with_masks(impl, rng, dtype):
    q, k, v = make_qkv(rng, (2, 3), 4, 6, 5, 3, dtype=dtype)
    mask = causal_mask(4, 6) & padding_mask([2, 6], 6, side="left")[:, None]
    out, cache = impl.attention.attention_forward(q, k, v, mask=mask)
    dout = rng.normal(size=out.shape).astype(dtype)
    grads = impl.attention.attention_backward(dout, cache)
    expected = dtype if impl is core else np.float64    # steps always computes in float64
    assert out.dtype == expected and all(g.dtype == expected for g in grads)
    assert np.all(cache.weights[np.broadcast_to(~mask, cache.weights.shape)] == 0.0)
    out64, cache64 = steps.attention.attention_forward(q, k, v, mask=mask)
    grads64 = steps.attention.attention_backward(dout, cache64)
    single = out.dtype == np.float32
    tol = {"rtol": 1e-4, "atol": 1e-5} if single else {"rtol": 1e-10, "atol": 1e-14}
    np.testing.assert_allclose(out, out64, **tol)
    for g, g64 in zip(grads, grads64, strict=True):
        np.testing.assert_allclose(g, g64, rtol=10 * tol["rtol"], atol=10 * tol["atol"])


def test_all_true_mask_changes_nothing(impl, rng):
    q, k, v = make_qkv(rng, (2,), 3, 4, 5, 2)
    out, _ = impl.attention.attention_forward(q, k, v)
    out_masked, _ = impl.attention.attention_forward(q, k, v, mask=np.ones((3, 4), bool))
    np.testing.assert_array_equal(out_masked, out)


def test_mask_as_nested_list_and_inputs_untouched(impl, rng):
    q, k, v = make_qkv(rng, (), 2, 3, 4, 5)
    mask = causal_mask(2, 3)
    copies = [x.copy() for x in (q, k, v, mask)]
    out, _ = impl.attention.attention_forward(q, k, v, mask=mask)
    out_list, _ = impl.attention.attention_forward(q, k, v, mask=mask.tolist())
    np.testing.assert_array_equal(out_list, out)
    for x, x_copy in zip((q, k, v, mask), copies, strict=True):
        np.testing.assert_array_equal(x, x_copy)


@pytest.mark.parametrize(("lead", "t", "s", "mask_shape", "expected"), [
    ((), 3, 4, (4, 3), r"\(3, 4\), got shape \(4, 3\)"),               # transposed: S, T
    ((2,), 3, 4, (2, 4), r"\(2, 3, 4\), got shape \(2, 4\)"),          # forgot the query axis
    ((2, 3), 3, 4, (2, 1, 4), r"\(2, 3, 3, 4\), got shape \(2, 1, 4\)"),  # forgot the head axis
    ((2,), 3, 4, (5, 2, 3, 4), r"\(2, 3, 4\), got shape \(5, 2, 3, 4\)"),  # would enlarge
    ((2,), 3, 4, (2, 3, 5), r"\(2, 3, 4\), got shape \(2, 3, 5\)"),
    ((), 3, 4, (3,), r"\(3, 4\), got shape \(3,\)"),                   # (T,) is not (T, 1)
])
def test_mask_of_wrong_shape_is_rejected_naming_the_expected_shape(impl, rng, lead, t, s,
                                                                   mask_shape, expected):
    q, k, v = make_qkv(rng, lead, t, s, 2, 5)
    with pytest.raises(ValueError, match=r"mask must broadcast to the scores' shape "
                                         r"\(\.\.\., T, S\) = " + expected):
        impl.attention.attention_forward(q, k, v, mask=np.ones(mask_shape, bool))


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float32, np.float64])
def test_mask_of_wrong_dtype_is_rejected(impl, rng, dtype):
    # 0/1 masks of other dtypes are ambiguous: is 1 "keep" or "mask out"?
    q, k, v = make_qkv(rng, (), 3, 4, 2, 5)
    with pytest.raises(TypeError, match=rf"mask must be a boolean array \(True = may "
                                        rf"attend\), got dtype {np.dtype(dtype).name}"):
        impl.attention.attention_forward(q, k, v, mask=causal_mask(3, 4).astype(dtype))


def test_padding_mask_needs_a_head_axis_for_heads(impl, rng):
    # B != H: the forgotten axis is caught; with it, the mask covers every head
    q, k, v = make_qkv(rng, (2, 3), 4, 5, 2, 1)
    mask = padding_mask([2, 5], 5)
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 5\), got shape \(2, 1, 5\)"):
        impl.attention.attention_forward(q, k, v, mask=mask)
    _, cache = impl.attention.attention_forward(q, k, v, mask=mask[:, None])
    np.testing.assert_array_equal(cache.weights[0, :, :, 2:], 0.0)
    assert np.all(cache.weights[1] > 0.0)
