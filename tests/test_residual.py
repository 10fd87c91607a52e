"""The residual sub-layer: LayerNorm(u + sublayer(u)) or u + sublayer(LayerNorm(u))."""

from functools import partial

import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct
from attention_from_scratch.common.params import init_feed_forward_params, init_multi_head_params


def silent(v):
    return np.zeros_like(v), None


def silent_backward(ds, cache):
    return np.zeros_like(ds), np.float64(0.0)     # (dv, one "parameter" gradient)


def identity(v):
    return v.copy(), None


def identity_backward(ds, cache):
    return (ds.copy(),)


def test_hand_checkable_case(impl, rng):
    u = np.array([[1.0, 2.0, 6.0], [0.0, -3.0, 3.0]])       # (T=2, D=3)
    gamma, beta = np.ones(3), np.zeros(3)
    dout = rng.normal(size=u.shape)
    # pre-norm around a sub-layer that outputs zeros: the identity, forward and back
    out, cache = impl.residual.residual_forward(u, gamma, beta, sublayer=silent, norm="pre")
    du, dgamma, dbeta, rest = impl.residual.residual_backward(
        dout, cache, sublayer_backward=silent_backward)
    np.testing.assert_array_equal(out, u)
    np.testing.assert_array_equal(du, dout)
    assert not dgamma.any() and not dbeta.any() and rest == (0.0,)
    # post-norm around the identity: LayerNorm(2u), and u's two paths carry the same
    # gradient, so du is twice the layer norm's backward
    out, cache = impl.residual.residual_forward(u, gamma, beta, sublayer=identity)
    expected, ln_cache = impl.layer_norm.layer_norm_forward(2 * u, gamma, beta)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    du, _, _, rest = impl.residual.residual_backward(dout, cache,
                                                     sublayer_backward=identity_backward)
    dsum, _, _ = impl.layer_norm.layer_norm_backward(dout, ln_cache)
    np.testing.assert_allclose(du, 2 * dsum, rtol=1e-12)
    assert rest == ()


def ffn_pair(impl, norm, activation="relu"):
    """The residual around a feed-forward network, as a pair the checker can use."""
    def forward(u, gamma, beta, ffn_params):
        sublayer = partial(impl.feed_forward.feed_forward_forward, params=ffn_params,
                           activation=activation)
        return impl.residual.residual_forward(u, gamma, beta, sublayer=sublayer, norm=norm)

    def backward(dout, cache):
        du, dgamma, dbeta, (dffn,) = impl.residual.residual_backward(
            dout, cache, sublayer_backward=impl.feed_forward.feed_forward_backward)
        return du, dgamma, dbeta, dffn
    return forward, backward


def cross_attention_pair(impl, norm, n_heads, mask):
    """The residual around cross-attention: the sub-layer has two more inputs."""
    def forward(u, gamma, beta, memory, attn_params):
        sublayer = partial(impl.multi_head.multi_head_attention_forward, x_kv=memory,
                           params=attn_params, n_heads=n_heads, mask=mask)
        return impl.residual.residual_forward(u, gamma, beta, sublayer=sublayer, norm=norm)

    def backward(dout, cache):
        du, dgamma, dbeta, (dmemory, dattn) = impl.residual.residual_backward(
            dout, cache, sublayer_backward=impl.multi_head.multi_head_attention_backward)
        return du, dgamma, dbeta, dmemory, dattn
    return forward, backward


def random_params(init, rng, *sizes):
    params = init(*sizes, rng=rng)
    return {key: value + 0.5 * rng.normal(size=value.shape) for key, value in params.items()}


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("u_shape", [(2, 3, 4), (3, 4), (1, 1, 4)])
def test_finite_differences_feed_forward(impl, rng, norm, u_shape):
    d = u_shape[-1]
    inputs = (rng.normal(size=u_shape), 1 + 0.5 * rng.normal(size=d), rng.normal(size=d),
              random_params(init_feed_forward_params, rng, d, 5))
    assert_gradients_correct(*ffn_pair(impl, norm, "gelu"), inputs, rng=rng)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_finite_differences_cross_attention(impl, rng, norm):
    # T = 3 queries from u, S = 5 keys and values from memory, padding masked
    mask = np.array([True, True, True, True, False])
    inputs = (rng.normal(size=(2, 3, 4)), 1 + 0.5 * rng.normal(size=4), rng.normal(size=4),
              rng.normal(size=(2, 5, 4)),
              random_params(init_multi_head_params, rng, 4))
    assert_gradients_correct(*cross_attention_pair(impl, norm, 2, np.tile(mask, (3, 1))),
                             inputs, rng=rng)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_steps_equals_core(rng, norm):
    u, gamma, beta = rng.normal(size=(2, 5, 6)), rng.normal(size=6), rng.normal(size=6)
    ffn = random_params(init_feed_forward_params, rng, 6, 7)
    dout = rng.normal(size=u.shape)
    results = []
    for impl in (steps, core):
        forward, backward = ffn_pair(impl, norm)
        out, cache = forward(u, gamma, beta, ffn)
        results.append((out, *backward(dout, cache)))
    for got_s, got_c in zip(*results, strict=True):
        if isinstance(got_s, dict):
            for key in got_s:
                np.testing.assert_allclose(got_s[key], got_c[key], rtol=1e-10, atol=1e-12)
        else:
            np.testing.assert_allclose(got_s, got_c, rtol=1e-10, atol=1e-12)


def test_core_keeps_float32(rng):
    u = rng.normal(size=(2, 3, 4)).astype(np.float32)
    forward, backward = ffn_pair(core, "pre")
    ffn = random_params(init_feed_forward_params, rng, 4, 5)
    out, cache = forward(u, np.ones(4), np.zeros(4), ffn)
    du, dgamma, _, dffn = backward(rng.normal(size=u.shape), cache)
    assert out.dtype == du.dtype == dgamma.dtype == dffn["w_1"].dtype == np.float32


def test_gradient_is_the_sum_of_the_two_paths(impl, rng):
    # pre-norm: du = dout (around) + the gradient through LayerNorm and the sub-layer
    u, ffn = rng.normal(size=(3, 4)), random_params(init_feed_forward_params,
                                                   rng, 4, 6)
    forward, backward = ffn_pair(impl, "pre")
    _, cache = forward(u, np.ones(4), np.zeros(4), ffn)
    dout = rng.normal(size=u.shape)
    du, *_ = backward(dout, cache)
    dn, _ = impl.feed_forward.feed_forward_backward(dout, cache.sublayer)
    through, _, _ = impl.layer_norm.layer_norm_backward(dn, cache.ln)
    np.testing.assert_allclose(du, dout + through, rtol=1e-12, atol=1e-15)
    assert not np.allclose(du, through)


def test_bad_inputs_rejected(impl, rng):
    u = rng.normal(size=(2, 3, 4))
    forward = impl.residual.residual_forward
    with pytest.raises(ValueError, match='norm must be "post" or "pre"'):
        forward(u, np.ones(4), np.zeros(4), sublayer=identity, norm="sandwich")
    with pytest.raises(ValueError, match=r"the sub-layer's output must have shape "
                                         r"\(\.\.\., T, D\) = \(2, 3, 4\), got shape \(2, 3, 5\)"):
        forward(u, np.ones(4), np.zeros(4), sublayer=lambda v: (np.ones((2, 3, 5)), None))
    # a forward's output without its cache: not unpacked into two rows of it
    with pytest.raises(TypeError, match=r"sublayer must return a pair \(out, cache\), as a "
                                        r"forward does, got ndarray of shape \(2, 3, 4\)"):
        forward(u, np.ones(4), np.zeros(4), sublayer=lambda v: 2 * v)
    with pytest.raises(ValueError, match=r"gamma must have shape \(D,\) = \(4,\)"):
        forward(u, np.ones(3), np.zeros(4), sublayer=identity)
    with pytest.raises(TypeError, match="u must be a real numeric array"):
        forward(u.astype(complex), np.ones(4), np.zeros(4), sublayer=identity)
