import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct
from attention_from_scratch.common.masks import causal_mask, padding_mask
from attention_from_scratch.common.params import init_multi_head_params

KEYS = ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")

# (lead, T, S, D, H): all different where they can be; Dh = D / H
SHAPES = [
    ((), 3, 4, 6, 3),            # no batch axis, Dh = 2
    ((2,), 4, 5, 6, 2),          # Dh = 3
    ((1,), 3, 2, 4, 1),          # B = 1, H = 1
    ((2, 3), 2, 3, 4, 2),        # two leading axes
    ((2,), 1, 3, 5, 5),          # T = 1, Dh = 1
]


def random_params(rng, d):
    """Random non-zero weights and biases of scale 0.5.

    b_k's true gradient is exactly 0 (a shift of every score of a row), so
    its finite-difference check measures round-off; small weights keep it small.
    """
    return {key: 0.5 * rng.normal(size=(d, d) if key[0] == "w" else d) for key in KEYS}


def make_inputs(rng, lead, t, s, d, h):
    return rng.normal(size=(*lead, t, d)), rng.normal(size=(*lead, s, d)), random_params(rng, d)


def random_mask(rng, lead, h, t, s, *, per_head):
    mask = rng.random((*lead, h if per_head else 1, t, s)) < 0.6
    mask[..., 0, :] = False                      # query 0 has nothing to attend to
    return mask


# ---------------------------------------------------------------- split / merge

def test_split_heads_hand_checkable(impl):
    x = np.arange(12.0).reshape(2, 6)            # T = 2, D = 6: row t = 6 t + column
    heads = impl.multi_head.split_heads(x, n_heads=3)    # H = 3, Dh = 2
    assert heads.shape == (3, 2, 2)
    np.testing.assert_array_equal(heads[0], [[0, 1], [6, 7]])
    np.testing.assert_array_equal(heads[1], [[2, 3], [8, 9]])
    np.testing.assert_array_equal(heads[2], [[4, 5], [10, 11]])


@pytest.mark.parametrize(("shape", "h"), [((3, 4), 2), ((2, 3, 6), 3), ((2, 1, 5, 4), 4),
                                          ((2, 3, 5), 1)])
def test_split_merge_round_trip(impl, rng, shape, h):
    x = rng.normal(size=shape)
    heads = impl.multi_head.split_heads(x, n_heads=h)
    *lead, t, d = shape
    assert heads.shape == (*lead, h, t, d // h)
    np.testing.assert_array_equal(impl.multi_head.merge_heads(heads), x)
    np.testing.assert_array_equal(impl.multi_head.split_heads(impl.multi_head.merge_heads(heads),
                                                              n_heads=h), heads)


def test_steps_and_core_split_agree(rng):
    x = rng.normal(size=(2, 3, 8))
    np.testing.assert_array_equal(steps.multi_head.split_heads(x, n_heads=4),
                                  core.multi_head.split_heads(x, n_heads=4))
    assert core.multi_head.split_heads(x, n_heads=4).flags.c_contiguous


def test_split_and_merge_pairs_finite_differences(impl, rng):
    mh = impl.multi_head
    assert_gradients_correct(mh.split_heads_forward, mh.split_heads_backward,
                             (rng.normal(size=(2, 3, 6)),), kwargs={"n_heads": 3}, rng=rng)
    assert_gradients_correct(mh.merge_heads_forward, mh.merge_heads_backward,
                             (rng.normal(size=(2, 3, 4, 2)),), rng=rng)


def test_the_backward_of_split_is_merge(impl, rng):
    x = rng.normal(size=(2, 3, 6))
    out, cache = impl.multi_head.split_heads_forward(x, n_heads=2)
    dout = rng.normal(size=out.shape)
    np.testing.assert_array_equal(impl.multi_head.split_heads_backward(dout, cache),
                                  impl.multi_head.merge_heads(dout))
    with pytest.raises(ValueError, match=r"dout must have shape .*\(2, 2, 3, 3\)"):
        impl.multi_head.split_heads_backward(dout[..., :2], cache)


def straight_split(x, n_heads):
    """The classic bug: reshape (..., T, D) straight to (..., H, T, Dh)."""
    *lead, t, d = x.shape
    return x.reshape(*lead, n_heads, t, d // n_heads)


def straight_merge(heads):
    """Its partner: reshape (..., H, T, Dh) straight back to (..., T, D)."""
    *lead, h, t, d_head = heads.shape
    return heads.reshape(*lead, t, h * d_head)


def causal_layer(x, params, split, merge, n_heads):
    """Causal multi-head self-attention built with the given split and merge."""
    q, k, v = (split(x @ params[w] + params[b], n_heads=n_heads)
               for w, b in (("w_q", "b_q"), ("w_k", "b_k"), ("w_v", "b_v")))
    heads, _ = core.attention.attention_forward(q, k, v, mask=causal_mask(x.shape[-2]))
    return merge(heads) @ params["w_o"] + params["b_o"]


def test_split_heads_passes_the_one_token_test(impl, rng):
    # B = 4, T = 5, D = 6, H = 2, Dh = 3: position t is row t of every head, nothing else
    x = rng.normal(size=(4, 5, 6))
    for t in range(5):
        assert steps.multi_head.rows_fed_by(impl.multi_head.split_heads, x, t, 2) == [
            (0, t), (1, t)]


def test_the_one_token_test_catches_a_straight_reshape(rng):
    x = rng.normal(size=(4, 5, 6))
    right = core.multi_head.split_heads(x, n_heads=2)
    assert straight_split(x, 2).shape == right.shape          # same shape ...
    assert not np.allclose(straight_split(x, 2), right)       # ... different numbers
    # position 2 is the flat numbers 12 .. 17: row 4 of "head 0" and row 0 of "head 1"
    assert steps.multi_head.rows_fed_by(straight_split, x, 2, 2) == [(0, 4), (1, 0)]


def test_a_straight_reshape_both_ways_stays_causal_and_passes_finite_differences(rng):
    # the usual form of the bug: split AND merge by straight reshapes
    x, _, params = make_inputs(rng, (4,), 5, 5, 6, 2)
    future = x.copy()
    future[:, 3:] += 1.0                                       # change positions 3 and 4
    wrong = causal_layer(x, params, straight_split, straight_merge, 2)
    np.testing.assert_allclose(causal_layer(future, params, straight_split, straight_merge, 2)
                               [:, :3], wrong[:, :3], rtol=1e-12, atol=1e-14)
    # so the causality test does not catch it, nor does the round trip ...
    np.testing.assert_array_equal(straight_merge(straight_split(x, 2)), x)
    # ... nor finite differences: the straight merge is the exact backward of the split
    assert_gradients_correct(lambda a, *, n_heads: (straight_split(a, n_heads), None),
                             lambda dout, _: straight_merge(dout), (x,),
                             kwargs={"n_heads": 2}, rng=rng)
    # what does catch it: the per-head reference (multi-head attention) ...
    right, _ = core.multi_head.self_multi_head_attention_forward(x, params, n_heads=2,
                                                                 mask=causal_mask(5))
    np.testing.assert_allclose(causal_layer(x, params, core.multi_head.split_heads,
                                            core.multi_head.merge_heads, 2), right,
                               rtol=1e-12, atol=1e-14)
    assert not np.allclose(wrong, right)
    # ... and the one-token test
    assert steps.multi_head.rows_fed_by(straight_split, x, 1, 2) != [(0, 1), (1, 1)]


def test_a_straight_split_with_a_right_merge_leaks_the_future(rng):
    # row 0 of head 1 is made of position 2; the right merge puts it at position 0
    x, _, params = make_inputs(rng, (4,), 5, 5, 6, 2)
    future = x.copy()
    future[:, 1:] += 1.0                                       # change every later position
    merge = core.multi_head.merge_heads
    first = causal_layer(x, params, straight_split, merge, 2)[:, 0]
    assert not np.allclose(causal_layer(future, params, straight_split, merge, 2)[:, 0], first)


def test_split_rejects_bad_input(impl):
    with pytest.raises(ValueError, match="n_heads = 3 must divide D = 8"):
        impl.multi_head.split_heads(np.ones((2, 8)), n_heads=3)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., T, D\), got shape \(8,\)"):
        impl.multi_head.split_heads(np.ones(8), n_heads=2)
    with pytest.raises(ValueError, match=r"heads must have shape \(\.\.\., H, T, Dh\)"):
        impl.multi_head.merge_heads(np.ones((3, 2)))


# ---------------------------------------------------------------- multi-head attention

def test_hand_checkable_case(impl):
    # identity projections, D = 2, H = 2: head 0 reads column 0, head 1 column 1
    eye, zero = np.eye(2), np.zeros(2)
    params = {"w_q": eye, "b_q": zero, "w_k": eye, "b_k": zero,
              "w_v": eye, "b_v": zero, "w_o": eye, "b_o": zero}
    x_q = np.array([[np.log(3.0), 0.0]])                  # T = 1
    x_kv = np.array([[0.0, 4.0], [1.0, 8.0]])             # S = 2
    out, cache = impl.multi_head.multi_head_attention_forward(x_q, x_kv, params, n_heads=2)
    # head 0: scores [0, ln 3] (Dh = 1, no scaling) -> weights [1/4, 3/4]
    # head 1: scores [0, 0] -> weights [1/2, 1/2]
    np.testing.assert_allclose(cache.weights, [[[0.25, 0.75]], [[0.5, 0.5]]])
    np.testing.assert_allclose(out, [[0.25 * 0 + 0.75 * 1, 0.5 * 4 + 0.5 * 8]])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masking", ["none", "causal", "shared", "per head"])
def test_finite_differences_cross(impl, rng, shape, masking):
    lead, t, s, d, h = shape
    x_q, x_kv, params = make_inputs(rng, *shape)
    kwargs = {"n_heads": h}
    if masking == "causal" and s >= t:
        kwargs["mask"] = causal_mask(t, s)
    elif masking in ("shared", "per head"):
        kwargs["mask"] = random_mask(rng, lead, h, t, s, per_head=masking == "per head")
    assert_gradients_correct(impl.multi_head.multi_head_attention_forward,
                             impl.multi_head.multi_head_attention_backward,
                             (x_q, x_kv, params), kwargs=kwargs, rng=rng)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masked", [False, True], ids=["no mask", "causal"])
def test_finite_differences_self(impl, rng, shape, masked):
    lead, t, _, d, h = shape
    x, _, params = make_inputs(rng, *shape)
    kwargs = {"n_heads": h, "mask": causal_mask(t) if masked else None}
    assert_gradients_correct(impl.multi_head.self_multi_head_attention_forward,
                             impl.multi_head.self_multi_head_attention_backward,
                             (x, params), kwargs=kwargs, rng=rng)


def test_self_attention_gradient_is_the_sum_of_both_paths(impl, rng):
    x, _, params = make_inputs(rng, (2,), 4, 4, 6, 3)
    mask = causal_mask(4)
    out, cache = impl.multi_head.self_multi_head_attention_forward(x, params, n_heads=3,
                                                                   mask=mask)
    out2, cache2 = impl.multi_head.multi_head_attention_forward(x, x, params, n_heads=3,
                                                                mask=mask)
    np.testing.assert_allclose(out, out2, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out.shape)
    dx, dparams = impl.multi_head.self_multi_head_attention_backward(dout, cache)
    dx_q, dx_kv, dparams2 = impl.multi_head.multi_head_attention_backward(dout, cache2)
    np.testing.assert_allclose(dx, dx_q + dx_kv, rtol=1e-10, atol=1e-13)
    assert not np.allclose(dx, dx_q) and not np.allclose(dx, dx_kv)   # both paths matter
    for key in KEYS:
        np.testing.assert_allclose(dparams[key], dparams2[key], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("shape", SHAPES)
def test_steps_equals_core(rng, shape):
    lead, t, s, d, h = shape
    x_q, x_kv, params = make_inputs(rng, *shape)
    mask = random_mask(rng, lead, h, t, s, per_head=True)
    out_s, cache_s = steps.multi_head.multi_head_attention_forward(x_q, x_kv, params,
                                                                   n_heads=h, mask=mask)
    out_c, cache_c = core.multi_head.multi_head_attention_forward(x_q, x_kv, params,
                                                                  n_heads=h, mask=mask)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cache_s.weights, cache_c.weights, rtol=1e-12, atol=1e-15)
    dout = rng.normal(size=out_s.shape)
    dx_q_s, dx_kv_s, dp_s = steps.multi_head.multi_head_attention_backward(dout, cache_s)
    dx_q_c, dx_kv_c, dp_c = core.multi_head.multi_head_attention_backward(dout, cache_c)
    np.testing.assert_allclose(dx_q_s, dx_q_c, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dx_kv_s, dx_kv_c, rtol=1e-10, atol=1e-13)
    assert set(dp_s) == set(dp_c) == set(KEYS)
    for key in KEYS:
        assert dp_c[key].shape == params[key].shape
        np.testing.assert_allclose(dp_s[key], dp_c[key], rtol=1e-10, atol=1e-13)


def test_steps_equals_core_self(rng):
    x, _, params = make_inputs(rng, (2,), 5, 5, 6, 3)
    mask = causal_mask(5) & padding_mask([3, 5], 5)           # (B, T, S)
    out_s, cache_s = steps.multi_head.self_multi_head_attention_forward(x, params, n_heads=3,
                                                                        mask=mask)
    out_c, cache_c = core.multi_head.self_multi_head_attention_forward(x, params, n_heads=3,
                                                                       mask=mask)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out_s.shape)
    dx_s, dp_s = steps.multi_head.self_multi_head_attention_backward(dout, cache_s)
    dx_c, dp_c = core.multi_head.self_multi_head_attention_backward(dout, cache_c)
    np.testing.assert_allclose(dx_s, dx_c, rtol=1e-10, atol=1e-13)
    for key in KEYS:
        np.testing.assert_allclose(dp_s[key], dp_c[key], rtol=1e-10, atol=1e-13)


def test_h_separate_projections_equal_one_split_projection(impl, rng):
    # H heads, each with its own (D, Dh) matrices, concatenated, then W_O ...
    x_q, x_kv, params = make_inputs(rng, (2,), 3, 4, 6, 3)
    d_head = 2
    heads = []
    for h in range(3):
        columns = slice(h * d_head, (h + 1) * d_head)
        q = x_q @ params["w_q"][:, columns] + params["b_q"][columns]     # (B, T, Dh)
        k = x_kv @ params["w_k"][:, columns] + params["b_k"][columns]    # (B, S, Dh)
        v = x_kv @ params["w_v"][:, columns] + params["b_v"][columns]    # (B, S, Dh)
        heads.append(impl.attention.attention_forward(q, k, v)[0])
    expected = np.concatenate(heads, axis=-1) @ params["w_o"] + params["b_o"]
    # ... is one (D, D) projection split into heads: the same parameters, the same output
    out, _ = impl.multi_head.multi_head_attention_forward(x_q, x_kv, params, n_heads=3)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)


def test_one_head_is_attention_of_width_d(impl, rng):
    x_q, x_kv, params = make_inputs(rng, (2,), 3, 4, 5, 1)
    q = x_q @ params["w_q"] + params["b_q"]
    k = x_kv @ params["w_k"] + params["b_k"]
    v = x_kv @ params["w_v"] + params["b_v"]
    expected = impl.attention.attention_forward(q, k, v)[0] @ params["w_o"] + params["b_o"]
    out, _ = impl.multi_head.multi_head_attention_forward(x_q, x_kv, params, n_heads=1)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)


def test_masks_broadcast_over_heads(impl, rng):
    x_q, x_kv, params = make_inputs(rng, (2,), 3, 4, 6, 3)
    pad = padding_mask([2, 4], 4)                             # (B, 1, S), Chapter 3
    _, cache = impl.multi_head.multi_head_attention_forward(x_q, x_kv, params, n_heads=3,
                                                            mask=pad)
    assert np.all(cache.weights[0, :, :, 2:] == 0.0)          # every head of sequence 0
    assert np.all(cache.weights[1] > 0.0)
    per_head = np.ones((1, 3, 3, 4), dtype=bool)
    per_head[0, 1, :, 0] = False                              # only head 1 ignores key 0
    _, cache = impl.multi_head.multi_head_attention_forward(x_q, x_kv, params, n_heads=3,
                                                            mask=per_head)
    assert np.all(cache.weights[:, 1, :, 0] == 0.0)
    assert np.all(cache.weights[:, [0, 2], :, 0] > 0.0)
    np.testing.assert_allclose(cache.weights.sum(axis=-1), 1.0)


def test_causal_output_does_not_depend_on_the_future(impl, rng):
    x, _, params = make_inputs(rng, (2,), 5, 5, 6, 2)
    out, _ = impl.multi_head.self_multi_head_attention_forward(x, params, n_heads=2,
                                                               mask=causal_mask(5))
    changed = x.copy()
    changed[:, 3:] = rng.normal(size=(2, 2, 6))
    out2, _ = impl.multi_head.self_multi_head_attention_forward(changed, params, n_heads=2,
                                                                mask=causal_mask(5))
    np.testing.assert_allclose(out2[:, :3], out[:, :3], rtol=1e-12, atol=1e-14)
    assert not np.allclose(out2[:, 3:], out[:, 3:])


def test_a_query_with_nothing_to_attend_to_outputs_the_bias(impl, rng):
    x_q, x_kv, params = make_inputs(rng, (2,), 3, 4, 6, 2)
    mask = np.ones((3, 4), dtype=bool)
    mask[1] = False
    out, cache = impl.multi_head.multi_head_attention_forward(x_q, x_kv, params, n_heads=2,
                                                              mask=mask)
    assert np.all(cache.weights[:, :, 1] == 0.0)
    np.testing.assert_allclose(out[:, 1], np.broadcast_to(params["b_o"], (2, 6)))
    dx_q, dx_kv, _ = impl.multi_head.multi_head_attention_backward(
        rng.normal(size=out.shape), cache)
    np.testing.assert_array_equal(dx_q[:, 1], 0.0)
    assert np.isfinite(dx_kv).all()


def test_core_float32_matches_float64(rng):
    x_q, x_kv, params = make_inputs(rng, (2,), 6, 7, 8, 2)
    mask = causal_mask(6, 7)
    fwd, bwd = (core.multi_head.multi_head_attention_forward,
                core.multi_head.multi_head_attention_backward)
    out64, cache64 = fwd(x_q, x_kv, params, n_heads=2, mask=mask)
    out32, cache32 = fwd(x_q.astype(np.float32), x_kv.astype(np.float32), params,
                         n_heads=2, mask=mask)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    dout = rng.normal(size=out64.shape)
    grads64 = bwd(dout, cache64)
    grads32 = bwd(dout.astype(np.float32), cache32)
    for g32, g64 in zip(grads32[:2], grads64[:2], strict=True):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)
    for key in KEYS:
        assert grads32[2][key].dtype == np.float32
        np.testing.assert_allclose(grads32[2][key], grads64[2][key], rtol=1e-3, atol=1e-4)
    x32 = x_q.astype(np.float32)
    out, cache = core.multi_head.self_multi_head_attention_forward(x32, params, n_heads=2)
    dx, dparams = core.multi_head.self_multi_head_attention_backward(
        dout[:, :6].astype(np.float32), cache)
    assert out.dtype == dx.dtype == dparams["w_q"].dtype == np.float32


def test_inputs_are_not_modified(impl, rng):
    x_q, x_kv, params = make_inputs(rng, (2,), 3, 4, 6, 3)
    copies = (x_q.copy(), x_kv.copy(), {k: v.copy() for k, v in params.items()})
    out, cache = impl.multi_head.multi_head_attention_forward(x_q, x_kv, params, n_heads=3)
    dout = rng.normal(size=out.shape)
    dout_copy = dout.copy()
    impl.multi_head.multi_head_attention_backward(dout, cache)
    np.testing.assert_array_equal(x_q, copies[0])
    np.testing.assert_array_equal(x_kv, copies[1])
    np.testing.assert_array_equal(dout, dout_copy)
    for key in KEYS:
        np.testing.assert_array_equal(params[key], copies[2][key])


def test_d_not_divisible_by_h_rejected(impl, rng):
    x = rng.normal(size=(2, 3, 8))
    params = random_params(rng, 8)
    with pytest.raises(ValueError, match="n_heads = 3 must divide the model width D = 8"):
        impl.multi_head.multi_head_attention_forward(x, x, params, n_heads=3)
    with pytest.raises(ValueError, match="n_heads = 3 must divide"):
        impl.multi_head.self_multi_head_attention_forward(x, params, n_heads=3)
    with pytest.raises(ValueError, match="n_heads must be at least 1"):
        impl.multi_head.multi_head_attention_forward(x, x, params, n_heads=0)
    with pytest.raises(TypeError, match="n_heads must be an int"):
        impl.multi_head.multi_head_attention_forward(x, x, params, n_heads=2.0)


def test_bad_params_rejected_naming_the_key(impl, rng):
    x = rng.normal(size=(2, 3, 6))
    params = random_params(rng, 6)
    missing = {k: v for k, v in params.items() if k != "w_o"}
    with pytest.raises(ValueError, match="params is missing key 'w_o'"):
        impl.multi_head.multi_head_attention_forward(x, x, missing, n_heads=2)
    with pytest.raises(ValueError, match=r"params\['w_k'\] must have shape \(D, D\) = "
                                         r"\(6, 6\), got shape \(6, 3\)"):
        impl.multi_head.multi_head_attention_forward(x, x, {**params, "w_k": np.ones((6, 3))},
                                                     n_heads=2)
    with pytest.raises(ValueError, match=r"params\['b_v'\] must have shape \(D,\) = \(6,\)"):
        impl.multi_head.self_multi_head_attention_forward(
            x, {**params, "b_v": np.ones((1, 6))}, n_heads=2)
    with pytest.raises(ValueError, match="params has unexpected key 'w_qkv'"):
        impl.multi_head.multi_head_attention_forward(x, x, {**params, "w_qkv": 1.0},
                                                     n_heads=2)
    with pytest.raises(TypeError, match="params must be a dict"):
        impl.multi_head.multi_head_attention_forward(x, x, list(params.values()), n_heads=2)


def test_bad_shapes_and_masks_rejected(impl, rng):
    x_q, x_kv, params = make_inputs(rng, (2,), 3, 4, 6, 3)
    fwd = impl.multi_head.multi_head_attention_forward
    with pytest.raises(ValueError, match=r"x_kv must have shape .*got shape \(3, 4, 6\)"):
        fwd(x_q, np.ones((3, 4, 6)), params, n_heads=3)      # no silent broadcast of B
    with pytest.raises(ValueError, match=r"x_kv must have shape .*got shape \(2, 4, 5\)"):
        fwd(x_q, np.ones((2, 4, 5)), params, n_heads=3)
    with pytest.raises(ValueError, match=r"x_q must have shape \(\.\.\., T, D\)"):
        fwd(np.ones(6), x_kv, params, n_heads=3)
    with pytest.raises(ValueError, match=r"mask must have shape \(T, S\), \(\.\.\., T, S\) "
                                         r"or \(\.\.\., H, T, S\) .*got shape \(4,\)"):
        fwd(x_q, x_kv, params, n_heads=3, mask=np.ones(4, bool))
    with pytest.raises(ValueError, match=r"mask must broadcast .*\(2, 3, 3, 4\), "
                                         r"got shape \(3, 4, 4\)"):
        fwd(x_q, x_kv, params, n_heads=3, mask=np.ones((3, 4, 4), bool))
    with pytest.raises(ValueError, match=r"mask must broadcast .*got shape \(2, 2, 3, 4\)"):
        fwd(x_q, x_kv, params, n_heads=3, mask=np.ones((2, 2, 3, 4), bool))
    with pytest.raises(TypeError, match="mask must be a boolean array"):
        fwd(x_q, x_kv, params, n_heads=3, mask=np.ones((3, 4)))
    out, cache = fwd(x_q, x_kv, params, n_heads=3)
    with pytest.raises(ValueError, match=r"dout must have shape .*got shape \(2, 4, 6\)"):
        impl.multi_head.multi_head_attention_backward(np.ones((2, 4, 6)), cache)


def test_init(impl):
    params = init_multi_head_params(8, rng=np.random.default_rng(0))
    again = init_multi_head_params(8, rng=np.random.default_rng(0))
    assert sorted(params) == sorted(KEYS)
    for key in KEYS:
        assert params[key].shape == ((8, 8) if key[0] == "w" else (8,))
        np.testing.assert_array_equal(params[key], again[key])
    assert not np.allclose(params["w_q"], params["w_k"])
    np.testing.assert_allclose(params["w_q"].std(), 1 / np.sqrt(8), rtol=0.4)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        init_multi_head_params(8, rng=0)


def test_parameter_count_does_not_depend_on_heads(impl, rng):
    x = rng.normal(size=(2, 3, 12))
    params = init_multi_head_params(12, rng=rng)
    assert sum(p.size for p in params.values()) == 4 * 12 * 12 + 4 * 12
    outs = [impl.multi_head.self_multi_head_attention_forward(x, params, n_heads=h)[0]
            for h in (1, 2, 3, 4, 6, 12)]                    # same params, any H dividing D
    assert all(o.shape == x.shape for o in outs)
    assert not np.allclose(outs[0], outs[1])                 # but different functions


def test_either_backward_accepts_either_forwards_cache(impl, rng):
    mh = impl.multi_head
    x, _, params = make_inputs(rng, (4,), 5, 5, 6, 2)
    dout = rng.normal(size=x.shape)
    _, self_cache = mh.self_multi_head_attention_forward(x, params, n_heads=2)
    _, cross_cache = mh.multi_head_attention_forward(x, x.copy(), params, n_heads=2)
    dx, dparams = mh.self_multi_head_attention_backward(dout, self_cache)
    # a self-attention cache is a cross-attention cache with x_q = x_kv ...
    dx_q, dx_kv, dparams_cross = mh.multi_head_attention_backward(dout, self_cache)
    np.testing.assert_allclose(dx_q + dx_kv, dx, rtol=1e-12, atol=1e-14)
    assert not np.allclose(dx_q, dx)
    # ... and a cross-attention cache with equal inputs is a self-attention cache
    dx_again, dparams_again = mh.self_multi_head_attention_backward(dout, cross_cache)
    np.testing.assert_allclose(dx_again, dx, rtol=1e-12, atol=1e-14)
    for key in KEYS:
        np.testing.assert_allclose(dparams_cross[key], dparams[key], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dparams_again[key], dparams[key], rtol=1e-12, atol=1e-14)


def test_self_backward_rejects_a_cross_attention_cache(impl, rng):
    mh = impl.multi_head
    x_q, x_kv, params = make_inputs(rng, (4,), 3, 5, 6, 2)
    _, cache = mh.multi_head_attention_forward(x_q, x_kv, params, n_heads=2)
    with pytest.raises(ValueError, match=r"needs the cache of a self-attention forward .*"
                                         r"x_q of shape \(4, 3, 6\) and x_kv of shape "
                                         r"\(4, 5, 6\): use multi_head_attention_backward"):
        mh.self_multi_head_attention_backward(rng.normal(size=x_q.shape), cache)
    _, cache = mh.multi_head_attention_forward(x_q, x_q + 1.0, params, n_heads=2)
    with pytest.raises(ValueError, match="with different values"):
        mh.self_multi_head_attention_backward(rng.normal(size=x_q.shape), cache)


def test_a_per_head_mask_for_a_batch_needs_its_batch_axis(impl, rng):
    # B = H = 2 on purpose: a bare (H, T, S) mask is then ambiguous and refused (see the
    # next test); with the head axis or the batch axis said, each reading is exact
    x_q, x_kv, params = make_inputs(rng, (2,), 3, 4, 6, 2)
    per_head = rng.random((2, 3, 4)) < 0.6
    per_head[..., 0] = True                                   # every query sees key 0
    fwd = impl.multi_head.multi_head_attention_forward
    _, as_heads = fwd(x_q, x_kv, params, n_heads=2, mask=per_head[None])   # (1, H, T, S)
    _, as_sequences = fwd(x_q, x_kv, params, n_heads=2, mask=per_head[:, None])  # (B, 1, T, S)
    for b in range(2):
        for h in range(2):
            assert np.all(as_heads.weights[b, h][~per_head[h]] == 0.0)
            assert np.all(as_sequences.weights[b, h][~per_head[b]] == 0.0)
    x_q3, x_kv3, _ = make_inputs(rng, (3,), 3, 4, 6, 2)      # B = 3 != H: refused
    with pytest.raises(ValueError, match=r"mask must broadcast .*got shape \(2, 3, 4\), "
                                         r"read as \(2, 1, 3, 4\): one per sequence"):
        fwd(x_q3, x_kv3, params, n_heads=2, mask=per_head)
    _, cache = fwd(x_q3, x_kv3, params, n_heads=2, mask=per_head[None])
    assert np.all(cache.weights[2, 1][~per_head[1]] == 0.0)


def test_a_mask_ambiguous_between_batch_and_heads_is_refused(impl, rng):
    # B = H = 2: a (2, T, S) mask could be one per sequence or one per head
    x_q, x_kv = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    params = init_multi_head_params(4, rng=rng)
    mask = rng.random((2, 3, 5)) < 0.7
    with pytest.raises(ValueError, match=r"mask of shape \(2, 3, 5\) is ambiguous.*pass "
                                         r"\(2, 1, 3, 5\) for one mask per sequence or "
                                         r"\(1, 2, 3, 5\) for one mask per head"):
        impl.multi_head.multi_head_attention_forward(x_q, x_kv, params, n_heads=2, mask=mask)
    # either explicit shape is accepted, and they mean different things
    per_sequence, _ = impl.multi_head.multi_head_attention_forward(
        x_q, x_kv, params, n_heads=2, mask=mask[:, None])
    per_head, _ = impl.multi_head.multi_head_attention_forward(
        x_q, x_kv, params, n_heads=2, mask=mask[None])
    assert per_sequence.shape == per_head.shape == (2, 3, 4)
    assert not np.allclose(per_sequence, per_head)
    # with B != H the same number of axes is read as one mask per sequence, as before
    out, _ = impl.multi_head.multi_head_attention_forward(
        x_q[:1], x_kv[:1], params, n_heads=2, mask=mask[:1])
    assert out.shape == (1, 3, 4)


@pytest.mark.parametrize("width", [10, 12])      # 10: n_heads = 4 does not divide it either
@pytest.mark.parametrize("layer", ["cross", "self", "encoder block", "decoder block"])
def test_an_input_of_the_wrong_width_is_blamed_not_the_heads_or_params(impl, rng, layer,
                                                                      width):
    from attention_from_scratch.common.params import init_decoder_params, init_encoder_params
    x, right = rng.normal(size=(2, 3, width)), rng.normal(size=(2, 4, 8))
    calls = {                                 # the other input has the right width
        "cross": lambda: impl.multi_head.multi_head_attention_forward(
            x, right, init_multi_head_params(8, rng=rng), n_heads=4),
        "self": lambda: impl.multi_head.self_multi_head_attention_forward(
            x, init_multi_head_params(8, rng=rng), n_heads=4),
        "encoder block": lambda: impl.encoder.encoder_block_forward(
            x, init_encoder_params(8, 16, rng=rng), n_heads=4),
        "decoder block": lambda: impl.decoder.decoder_block_forward(
            x, right, init_decoder_params(8, 16, rng=rng), n_heads=4),
    }
    name = {"cross": "x_q", "decoder block": "y"}.get(layer, "x")
    with pytest.raises(ValueError, match=rf"^{name} must have width D = 8, the width params "
                                         rf"were made for .*got shape \(2, 3, {width}\)$"):
        calls[layer]()


def test_a_shared_mask_of_the_wrong_size_is_not_said_to_be_read_per_sequence(impl, rng):
    x_q, x_kv, params = make_inputs(rng, (2,), 5, 6, 4, 2)
    with pytest.raises(ValueError, match=r"got shape \(5, 4\)$"):       # no "read as"
        impl.multi_head.multi_head_attention_forward(x_q, x_kv, params, n_heads=2,
                                                     mask=np.ones((5, 4), dtype=bool))
