import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct

SHAPES = [  # (lead, T, S, Dk, Dv): all different, T != S, Dk != Dv
    ((), 3, 5, 2, 4),
    ((2,), 3, 4, 5, 2),
    ((2, 3), 4, 1, 3, 5),
    ((1,), 1, 3, 2, 1),
]


def make_qkv(rng, lead, t, s, d_k, d_v):
    return (rng.normal(size=(*lead, t, d_k)), rng.normal(size=(*lead, s, d_k)),
            rng.normal(size=(*lead, s, d_v)))


def test_hand_checkable_case(impl):
    # one query, two keys, Dk = 2: q k^T = [0, sqrt 2 ln 3], times 1/sqrt 2 gives
    # scores [0, ln 3], so the weights are [1, 3] / 4
    q = np.array([[np.sqrt(2.0) * np.log(3.0), 0.0]])   # (1, 2)
    k = np.array([[0.0, 1.0], [1.0, 0.0]])              # (2, 2)
    v = np.array([[4.0], [8.0]])                        # (2, 1)
    out, cache = impl.attention.attention_forward(q, k, v)
    np.testing.assert_allclose(cache.weights, [[0.25, 0.75]])
    np.testing.assert_allclose(out, [[0.25 * 4 + 0.75 * 8]])


@pytest.mark.parametrize("shape", SHAPES)
def test_finite_differences(impl, rng, shape):
    assert_gradients_correct(impl.attention.attention_forward,
                             impl.attention.attention_backward,
                             make_qkv(rng, *shape), rng=rng)


SUB_STEPS = [  # (forward, backward, input shapes): T = 3, S = 5, Dk = 4, Dv = 2
    ("scores_forward", "scores_backward", [(3, 4), (5, 4)]),
    ("scores_forward", "scores_backward", [(2, 3, 3, 4), (2, 3, 5, 4)]),
    ("weighted_sum_forward", "weighted_sum_backward", [(3, 5), (5, 2)]),
    ("weighted_sum_forward", "weighted_sum_backward", [(2, 3, 3, 5), (2, 3, 5, 2)]),
]


@pytest.mark.parametrize(("forward", "backward", "shapes"), SUB_STEPS)
def test_sub_steps_finite_differences(impl, rng, forward, backward, shapes):
    inputs = tuple(rng.normal(size=s) for s in shapes)
    assert_gradients_correct(getattr(impl.attention, forward),
                             getattr(impl.attention, backward), inputs, rng=rng)


@pytest.mark.parametrize(("forward", "backward", "shapes"), SUB_STEPS)
def test_sub_steps_steps_equals_core(rng, forward, backward, shapes):
    inputs = tuple(rng.normal(size=s) for s in shapes)
    out_s, cache_s = getattr(steps.attention, forward)(*inputs)
    out_c, cache_c = getattr(core.attention, forward)(*inputs)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out_s.shape)
    grads_s = getattr(steps.attention, backward)(dout, cache_s)
    grads_c = getattr(core.attention, backward)(dout, cache_c)
    for g_s, g_c, x in zip(grads_s, grads_c, inputs, strict=True):
        assert g_s.shape == g_c.shape == x.shape
        np.testing.assert_allclose(g_s, g_c, rtol=1e-12, atol=1e-14)


def test_scores_hand_checkable(impl):
    # q k^T = [[1*3 + 2*4]] = [[11]], then times 1/sqrt(2)
    scores, cache = impl.attention.scores_forward(np.array([[1.0, 2.0]]),
                                                  np.array([[3.0, 4.0]]))
    np.testing.assert_allclose(scores, [[11 / np.sqrt(2)]])
    dq, dk = impl.attention.scores_backward(np.array([[2.0]]), cache)
    np.testing.assert_allclose(dq, [[6 / np.sqrt(2), 8 / np.sqrt(2)]])   # 2 k / sqrt 2
    np.testing.assert_allclose(dk, [[2 / np.sqrt(2), 4 / np.sqrt(2)]])   # 2 q / sqrt 2


def test_weighted_sum_hand_checkable(impl):
    weights = np.array([[0.25, 0.75], [1.0, 0.0], [0.5, 0.5]])   # (T=3, S=2)
    v = np.array([[4.0], [8.0]])                                  # (S=2, Dv=1)
    out, cache = impl.attention.weighted_sum_forward(weights, v)
    np.testing.assert_allclose(out, [[7.0], [4.0], [6.0]])
    dweights, dv = impl.attention.weighted_sum_backward(np.array([[1.0], [2.0], [3.0]]), cache)
    np.testing.assert_allclose(dweights, [[4, 8], [8, 16], [12, 24]])
    # every query that used a value row sends gradient back to it: dv sums over T
    np.testing.assert_allclose(dv, [[0.25 + 2.0 + 1.5], [0.75 + 0.0 + 1.5]])


@pytest.mark.parametrize("shape", SHAPES)
def test_steps_equals_core(rng, shape):
    q, k, v = make_qkv(rng, *shape)
    out_s, cache_s = steps.attention.attention_forward(q, k, v)
    out_c, cache_c = core.attention.attention_forward(q, k, v)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out_s.shape)
    for g_s, g_c in zip(steps.attention.attention_backward(dout, cache_s),
                        core.attention.attention_backward(dout, cache_c), strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-10, atol=1e-13)


def test_steps_equals_core_with_a_mask(rng):
    q, k, v = make_qkv(rng, (2,), 3, 5, 4, 2)
    mask = rng.random((2, 3, 5)) < 0.6
    mask[0, 1] = False                      # a query with nothing to attend to
    out_s, cache_s = steps.attention.attention_forward(q, k, v, mask=mask)
    out_c, cache_c = core.attention.attention_forward(q, k, v, mask=mask)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out_s.shape)
    for g_s, g_c in zip(steps.attention.attention_backward(dout, cache_s),
                        core.attention.attention_backward(dout, cache_c), strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-10, atol=1e-13)


# float32 keeps about 7 significant digits; after a softmax over 7 keys and two matmuls
# of width <= 8 the forward agrees with float64 to 1e-4 relative, and the backward, one
# chain of products longer, to 1e-3.
FLOAT32_FORWARD_RTOL, FLOAT32_BACKWARD_RTOL = 1e-4, 1e-3


def test_core_float32_matches_float64(rng):
    q, k, v = make_qkv(rng, (2, 3), 6, 7, 8, 5)
    out64, cache64 = core.attention.attention_forward(q, k, v)
    out32, cache32 = core.attention.attention_forward(*(a.astype(np.float32) for a in (q, k, v)))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=FLOAT32_FORWARD_RTOL, atol=1e-5)
    dout = rng.normal(size=out64.shape)
    grads32 = core.attention.attention_backward(dout.astype(np.float32), cache32)
    for g32, g64 in zip(grads32, core.attention.attention_backward(dout, cache64), strict=True):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=FLOAT32_BACKWARD_RTOL, atol=1e-4)


@pytest.mark.parametrize(("forward", "backward", "shapes"), SUB_STEPS)
def test_core_sub_steps_keep_float32(rng, forward, backward, shapes):
    inputs = tuple(rng.normal(size=s).astype(np.float32) for s in shapes)
    out, cache = getattr(core.attention, forward)(*inputs)
    grads = getattr(core.attention, backward)(rng.normal(size=out.shape).astype(np.float32),
                                              cache)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    assert steps.attention.attention_forward(*make_qkv(rng, (), 3, 5, 4, 2))[0].dtype \
        == np.float64


def test_rows_sum_to_one(impl, rng):
    q, k, v = make_qkv(rng, (2,), 3, 4, 5, 2)
    _, cache = impl.attention.attention_forward(q, k, v)
    np.testing.assert_allclose(cache.weights.sum(axis=-1), 1.0)


def test_permuting_keys_and_values_together_changes_nothing(impl, rng):
    q, k, v = make_qkv(rng, (), 3, 5, 2, 4)
    perm = rng.permutation(5)
    out, _ = impl.attention.attention_forward(q, k, v)
    out_perm, _ = impl.attention.attention_forward(q, k[perm], v[perm])
    np.testing.assert_allclose(out_perm, out, rtol=1e-12)


def test_permuting_queries_permutes_outputs(impl, rng):
    q, k, v = make_qkv(rng, (), 4, 5, 2, 3)
    perm = rng.permutation(4)
    out, _ = impl.attention.attention_forward(q, k, v)
    out_perm, _ = impl.attention.attention_forward(q[perm], k, v)
    np.testing.assert_allclose(out_perm, out[perm], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_inputs_do_not_overflow(impl, rng, dtype):
    q, k, v = (a.astype(dtype) for a in make_qkv(rng, (2,), 3, 4, 5, 2))
    out, cache = impl.attention.attention_forward(q * dtype(1e4), k * dtype(1e4),
                                                  v * dtype(1e4))
    grads = impl.attention.attention_backward(rng.normal(size=out.shape).astype(dtype), cache)
    assert np.isfinite(out).all()
    assert all(np.isfinite(g).all() for g in grads)
    np.testing.assert_allclose(cache.weights.sum(axis=-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plus_minus_1e4_hand_checkable(impl, dtype):
    # scores (1e4 * 1e4 * 2) / sqrt 2 = +-1.4e8: exp would overflow without the row max
    q = np.array([[1e4, 1e4], [-1e4, -1e4]], dtype=dtype)                # (T=2, Dk=2)
    k = np.array([[1e4, 1e4], [1e4, 1e4], [-1e4, -1e4]], dtype=dtype)   # (S=3, Dk=2)
    v = np.array([[1e4], [-1e4], [3.0]], dtype=dtype)                   # (S=3, Dv=1)
    out, cache = impl.attention.attention_forward(q, k, v)
    np.testing.assert_array_equal(cache.weights, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(out, [[0.0], [3.0]])
    grads = impl.attention.attention_backward(np.ones_like(out) * [[1.0], [2.0]], cache)
    assert all(np.isfinite(g).all() for g in grads)
    # a saturated softmax passes (almost) no gradient to q and k, all of it to v
    np.testing.assert_array_equal(grads[2], [[0.5], [0.5], [2.0]])


def test_masked_weights_are_exactly_zero_and_get_zero_gradient(impl, rng):
    q, k, v = make_qkv(rng, (2,), 3, 4, 5, 2)
    mask = np.array([[True, False, True, True],
                     [False, False, False, False],   # nothing to attend to
                     [True, True, False, True]])
    out, cache = impl.attention.attention_forward(q, k, v, mask=mask)
    assert np.all(cache.weights[:, ~mask] == 0.0)
    np.testing.assert_array_equal(out[:, 1], 0.0)
    dq, dk, dv = impl.attention.attention_backward(rng.normal(size=out.shape), cache)
    assert all(np.isfinite(g).all() for g in (dq, dk, dv))
    np.testing.assert_array_equal(dq[:, 1], 0.0)
    assert_gradients_correct(impl.attention.attention_forward,
                             impl.attention.attention_backward, (q, k, v),
                             kwargs={"mask": mask}, rng=rng)


def test_bad_shapes_rejected(impl):
    q, k, v = np.ones((3, 2)), np.ones((4, 2)), np.ones((4, 5))
    with pytest.raises(ValueError, match=r"k must have shape \(\.\.\., S, Dk\).*\(4, 3\)"):
        impl.attention.attention_forward(q, np.ones((4, 3)), v)
    with pytest.raises(ValueError, match=r"v must have shape \(\.\.\., S, Dv\).*\(5, 5\)"):
        impl.attention.attention_forward(q, k, np.ones((5, 5)))
    with pytest.raises(ValueError, match=r"k must have shape.*got shape \(2, 4, 2\)"):
        impl.attention.attention_forward(q, np.ones((2, 4, 2)), v)   # no silent broadcast
    with pytest.raises(ValueError, match=r"q must have shape \(\.\.\., T, Dk\), got shape \(2,\)"):
        impl.attention.attention_forward(np.ones(2), k, v)
    with pytest.raises(ValueError, match=r"mask must broadcast .* \(3, 4\), got shape \(4, 3\)"):
        impl.attention.attention_forward(q, k, v, mask=np.ones((4, 3), bool))
    with pytest.raises(ValueError, match=r"mask must broadcast .* got shape \(2, 3, 4\)"):
        impl.attention.attention_forward(q, k, v, mask=np.ones((2, 3, 4), bool))
    with pytest.raises(TypeError, match="mask must be a boolean array"):
        impl.attention.attention_forward(q, k, v, mask=np.ones((3, 4)))
    _, cache = impl.attention.attention_forward(q, k, v)
    with pytest.raises(ValueError, match=r"dout must have shape .*got shape \(3, 4\)"):
        impl.attention.attention_backward(np.ones((3, 4)), cache)


def test_sub_steps_reject_bad_shapes(impl):
    with pytest.raises(ValueError, match=r"k must have shape \(\.\.\., S, Dk\).*\(4, 3\)"):
        impl.attention.scores_forward(np.ones((3, 2)), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"v must have shape \(\.\.\., S, Dv\).*\(5, 2\)"):
        impl.attention.weighted_sum_forward(np.ones((3, 4)), np.ones((5, 2)))
    _, cache = impl.attention.scores_forward(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"dscores must .*\(3, 4\), got shape \(4, 3\)"):
        impl.attention.scores_backward(np.ones((4, 3)), cache)
    with pytest.raises(TypeError, match="q must be a real numeric array"):
        impl.attention.attention_forward(np.ones((3, 2), bool), np.ones((4, 2)), np.ones((4, 5)))
