import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct
from attention_from_scratch.measure.approximation import example_inputs, random_features
from attention_from_scratch.measure.complexity import loglog_slope

SHAPES = [  # (lead, T, S, Dk, Dv, M)
    ((), 3, 5, 2, 4, 6),
    ((2,), 4, 3, 3, 2, 5),
    ((2, 3), 2, 4, 5, 3, 7),
    ((1,), 1, 2, 2, 1, 1),
]


def make_inputs(rng, lead, t, s, d_k, d_v, m):
    qkv = (rng.normal(size=(*lead, t, d_k)), rng.normal(size=(*lead, s, d_k)),
           rng.normal(size=(*lead, s, d_v)))
    return qkv, random_features(m, d_k, rng=rng)


def test_one_feature_by_hand(impl):
    # M = 1, Dk = 1, w = 0: phi(x) = exp(-x^2 / 2), so the queries do not matter and
    # key j gets weight proportional to exp(-k_j^2 / 2)
    q, k, v = np.array([[0.3], [-1.0]]), np.array([[1.0], [2.0], [0.5]]), np.arange(3.0)[:, None]
    out, _ = impl.performer.performer_attention_forward(q, k, v, features=[[0.0]])
    weights = np.exp(-np.array([1.0, 4.0, 0.25]) / 2)
    np.testing.assert_allclose(out, [[weights @ [0, 1, 2] / weights.sum()]] * 2, rtol=1e-14)


@pytest.mark.parametrize("shape", SHAPES)
def test_finite_differences(impl, rng, shape):
    qkv, features = make_inputs(rng, *shape)
    assert_gradients_correct(impl.performer.performer_attention_forward,
                             impl.performer.performer_attention_backward, qkv,
                             kwargs={"features": features}, rng=rng)


@pytest.mark.parametrize("shape", SHAPES)
def test_steps_equals_core(rng, shape):
    qkv, features = make_inputs(rng, *shape)
    out_s, cache_s = steps.performer.performer_attention_forward(*qkv, features=features)
    out_c, cache_c = core.performer.performer_attention_forward(*qkv, features=features)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out_s.shape)
    for g_s, g_c in zip(steps.performer.performer_attention_backward(dout, cache_s),
                        core.performer.performer_attention_backward(dout, cache_c),
                        strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("orthogonal", [False, True])
def test_features_estimate_the_exponential_kernel(rng, orthogonal):
    # E[exp(w.a - |a|^2/2) exp(w.b - |b|^2/2)] = exp(a . b): the whole method rests on this.
    # Each sample is exp(w.c - ...) with c = a + b, of variance
    # (exp(2|c|^2) - exp(|c|^2)) exp(-|a|^2 - |b|^2); the mean of 40 000 must lie within
    # 5 standard errors (orthogonal features only lower the variance)
    a, b = 0.25 * rng.normal(size=4), 0.25 * rng.normal(size=4)
    w = random_features(40_000, 4, rng=rng, orthogonal=orthogonal)
    samples = np.exp(w @ a - a @ a / 2) * np.exp(w @ b - b @ b / 2)
    c2 = (a + b) @ (a + b)
    standard_error = np.sqrt((np.exp(2 * c2) - np.exp(c2)) * np.exp(-a @ a - b @ b)
                             / len(samples))
    assert abs(samples.mean() - np.exp(a @ b)) < 5 * standard_error < 0.05


def test_orthogonal_features_are_orthogonal_gaussian_rows(rng):
    w = random_features(4000, 4, rng=rng)
    np.testing.assert_allclose(w[:4] @ w[:4].T * (1 - np.eye(4)), 0, atol=1e-12)
    np.testing.assert_allclose(w.mean(axis=0), 0, atol=0.1)     # no preferred direction
    np.testing.assert_allclose(np.cov(w.T), np.eye(4), atol=0.1)


def test_converges_to_exact_attention_as_features_grow(impl):
    rng = np.random.default_rng(4)
    q, k, v = example_inputs("random", 24, 6, rng=rng)
    exact, _ = impl.attention.attention_forward(q, k, v)
    counts = [16, 256, 4096]
    errors = [np.mean([np.abs(impl.performer.performer_attention_forward(
        q, k, v, features=random_features(m, 6, rng=rng))[0] - exact).mean()
        for _ in range(4)]) for m in counts]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01
    assert -0.8 < loglog_slope(counts, errors) < -0.2


def test_extreme_scores_stay_finite(impl, rng):
    qkv, features = make_inputs(rng, (2,), 4, 5, 3, 2, 6)
    q, k, v = qkv
    out, cache = impl.performer.performer_attention_forward(q * 30, k * 30, v,
                                                            features=features)
    grads = impl.performer.performer_attention_backward(rng.normal(size=out.shape), cache)
    assert np.isfinite(out).all() and all(np.isfinite(g).all() for g in grads)


def test_core_float32_matches_float64(rng):
    qkv, features = make_inputs(rng, (2, 3), 5, 7, 4, 3, 8)
    out64, cache64 = core.performer.performer_attention_forward(*qkv, features=features)
    out32, cache32 = core.performer.performer_attention_forward(
        *(a.astype(np.float32) for a in qkv), features=features)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-3, atol=1e-4)
    dout = rng.normal(size=out64.shape)
    for g32, g64 in zip(core.performer.performer_attention_backward(dout.astype(np.float32),
                                                                    cache32),
                        core.performer.performer_attention_backward(dout, cache64), strict=True):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-3)


def test_bad_inputs_rejected(impl):
    q, k, v = np.ones((3, 2)), np.ones((4, 2)), np.ones((4, 5))
    forward = impl.performer.performer_attention_forward
    with pytest.raises(ValueError, match=r"features must have shape \(M, Dk\) with Dk = 2, "
                                         r"got shape \(4, 3\)"):
        forward(q, k, v, features=np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"v must have shape"):
        forward(q, k, np.ones((3, 5)), features=np.ones((4, 2)))
    _, cache = forward(q, k, v, features=np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"dout must have shape .*got shape \(3, 4\)"):
        impl.performer.performer_attention_backward(np.ones((3, 4)), cache)
