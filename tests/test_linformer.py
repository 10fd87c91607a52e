import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct
from attention_from_scratch.measure.approximation import example_inputs, pooling_projection

SHAPES = [  # (lead, T, S, Dk, Dv, R)
    ((), 3, 5, 2, 4, 3),
    ((2,), 4, 6, 3, 2, 2),
    ((2, 3), 2, 4, 5, 3, 4),
    ((1,), 1, 3, 2, 1, 1),
]


def make_inputs(rng, lead, t, s, d_k, d_v, r):
    return (rng.normal(size=(*lead, t, d_k)), rng.normal(size=(*lead, s, d_k)),
            rng.normal(size=(*lead, s, d_v)), rng.normal(size=(r, s)),
            rng.normal(size=(r, s)))


def test_hand_checkable_case(impl):
    # two identical keys pooled into one: a single projected key gets all the weight
    q, k = np.array([[1.0, 2.0]]), np.array([[0.5, 0.5], [0.5, 0.5]])
    v = np.array([[2.0, 0.0], [4.0, 6.0]])
    out, _ = impl.linformer.linformer_attention_forward(q, k, v, [[0.5, 0.5]], [[0.5, 0.5]])
    np.testing.assert_allclose(out, [[3.0, 3.0]])


@pytest.mark.parametrize("shape", SHAPES)
def test_finite_differences(impl, rng, shape):
    assert_gradients_correct(impl.linformer.linformer_attention_forward,
                             impl.linformer.linformer_attention_backward,
                             make_inputs(rng, *shape), rng=rng)


@pytest.mark.parametrize("shape", SHAPES)
def test_steps_equals_core(rng, shape):
    inputs = make_inputs(rng, *shape)
    out_s, cache_s = steps.linformer.linformer_attention_forward(*inputs)
    out_c, cache_c = core.linformer.linformer_attention_forward(*inputs)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out_s.shape)
    for g_s, g_c in zip(steps.linformer.linformer_attention_backward(dout, cache_s),
                        core.linformer.linformer_attention_backward(dout, cache_c),
                        strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-10, atol=1e-13)


def test_identity_and_permutation_projections_are_exact(impl, rng):
    q, k, v = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 6, 4)), rng.normal(size=(2, 6, 5))
    exact, exact_cache = impl.attention.attention_forward(q, k, v)
    perm = np.eye(6)[rng.permutation(6)]
    for e in (np.eye(6), perm):
        out, cache = impl.linformer.linformer_attention_forward(q, k, v, e, e)
        np.testing.assert_allclose(out, exact, rtol=1e-12)
        dout = rng.normal(size=out.shape)
        for g, g_exact in zip(impl.linformer.linformer_attention_backward(dout, cache)[:3],
                              impl.attention.attention_backward(dout, exact_cache),
                              strict=True):
            np.testing.assert_allclose(g, g_exact, rtol=1e-10, atol=1e-13)


def test_converges_to_exact_attention_as_the_rank_grows(impl):
    rng = np.random.default_rng(3)
    q, k, v = example_inputs("smooth", 64, 8, rng=rng)
    exact, _ = impl.attention.attention_forward(q, k, v)
    errors = []
    for r in (4, 8, 16, 32, 64):
        e = pooling_projection(r, 64)
        errors.append(np.abs(impl.linformer.linformer_attention_forward(q, k, v, e, e)[0]
                             - exact).max())
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))
    assert errors[0] > 1e-2 and errors[-1] < 1e-12


def test_shared_projection_gradients_sum_over_leading_axes(impl, rng):
    inputs = make_inputs(rng, (3,), 2, 4, 3, 2, 2)
    out, cache = impl.linformer.linformer_attention_forward(*inputs)
    dout = rng.normal(size=out.shape)
    de = impl.linformer.linformer_attention_backward(dout, cache)[3]
    q, k, v, e, f = inputs
    per_slice = sum(impl.linformer.linformer_attention_backward(
        dout[n], impl.linformer.linformer_attention_forward(q[n], k[n], v[n], e, f)[1])[3]
        for n in range(3))
    np.testing.assert_allclose(de, per_slice, rtol=1e-12)


def test_core_float32_matches_float64(rng):
    inputs = make_inputs(rng, (2, 3), 5, 7, 4, 3, 3)
    out64, cache64 = core.linformer.linformer_attention_forward(*inputs)
    out32, cache32 = core.linformer.linformer_attention_forward(
        *(a.astype(np.float32) for a in inputs))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    dout = rng.normal(size=out64.shape)
    for g32, g64 in zip(core.linformer.linformer_attention_backward(dout.astype(np.float32),
                                                                    cache32),
                        core.linformer.linformer_attention_backward(dout, cache64), strict=True):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-3)


def test_bad_inputs_rejected(impl):
    q, k, v = np.ones((3, 2)), np.ones((4, 2)), np.ones((4, 5))
    forward = impl.linformer.linformer_attention_forward
    with pytest.raises(ValueError, match=r"e must have shape \(R, S\) with S = 4.*\(2, 3\)"):
        forward(q, k, v, np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"f must have shape \(R, S\) like e = \(2, 4\), "
                                         r"got shape \(3, 4\)"):
        forward(q, k, v, np.ones((2, 4)), np.ones((3, 4)))
    _, cache = forward(q, k, v, np.ones((2, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"dout must have shape .*got shape \(3, 4\)"):
        impl.linformer.linformer_attention_backward(np.ones((3, 4)), cache)
