"""The additive attention bias: ``softmax(q k^T / sqrt(Dk) + bias)``, in
both mirrors, bare and multi-head, alone and with a mask."""

import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct
from attention_from_scratch.common.masks import alibi_bias, causal_mask

SHAPES = [  # (lead, T, S, Dk, Dv), as in test_attention
    ((), 3, 5, 2, 4),
    ((2,), 3, 4, 5, 2),
    ((2, 3), 4, 1, 3, 5),
]


def make_qkv(rng, lead, t, s, d_k, d_v):
    return (rng.normal(size=(*lead, t, d_k)), rng.normal(size=(*lead, s, d_k)),
            rng.normal(size=(*lead, s, d_v)))


def mask_with_an_empty_row(rng, t, s):
    mask = rng.random((t, s)) < 0.6
    mask[:, 0] = True
    mask[-1] = False                        # a query with nothing to attend to
    return mask


@pytest.mark.parametrize("shape", SHAPES)
def test_finite_differences_with_a_random_bias(impl, rng, shape):
    lead, t, s, _, _ = shape
    bias = rng.normal(scale=2.0, size=(*lead, t, s))
    assert_gradients_correct(impl.attention.attention_forward,
                             impl.attention.attention_backward, make_qkv(rng, *shape),
                             kwargs={"bias": bias}, rng=rng)


def test_finite_differences_with_a_bias_and_a_mask(impl, rng):
    q, k, v = make_qkv(rng, (2,), 4, 5, 3, 2)
    assert_gradients_correct(impl.attention.attention_forward,
                             impl.attention.attention_backward, (q, k, v),
                             kwargs={"bias": rng.normal(size=(4, 5)),
                                     "mask": mask_with_an_empty_row(rng, 4, 5)}, rng=rng)


def test_the_bias_is_added_to_the_scaled_scores(impl, rng):
    q, k, v = make_qkv(rng, (2,), 3, 4, 5, 2)
    bias = rng.normal(size=(3, 4))
    _, cache = impl.attention.attention_forward(q, k, v, bias=bias)
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(5) + bias           # (2, 3, 4)
    expected = np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(cache.weights, expected, rtol=1e-12)


def test_steps_equals_core_with_a_bias_and_a_mask(rng):
    q, k, v = make_qkv(rng, (2,), 4, 5, 3, 2)
    bias, mask = rng.normal(size=(2, 4, 5)), mask_with_an_empty_row(rng, 4, 5)
    out_s, cache_s = steps.attention.attention_forward(q, k, v, mask=mask, bias=bias)
    out_c, cache_c = core.attention.attention_forward(q, k, v, mask=mask, bias=bias)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out_s.shape)
    for g_s, g_c in zip(steps.attention.attention_backward(dout, cache_s),
                        core.attention.attention_backward(dout, cache_c), strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-10, atol=1e-13)


def test_masked_keys_keep_exactly_zero_weight_whatever_their_bias(impl, rng):
    q, k, v = make_qkv(rng, (), 4, 5, 3, 2)
    mask = mask_with_an_empty_row(rng, 4, 5)
    bias = np.where(mask, 0.0, 1e6)          # a huge bias on every masked key
    out, cache = impl.attention.attention_forward(q, k, v, mask=mask, bias=bias)
    assert np.all(cache.weights[~mask] == 0.0)
    np.testing.assert_array_equal(out[-1], 0.0)                 # the empty row
    np.testing.assert_allclose(cache.weights[:-1].sum(axis=-1), 1.0)


def test_a_bias_constant_along_each_row_changes_nothing(impl, rng):
    """softmax(x + c) = softmax(x): only differences within a row count."""
    q, k, v = make_qkv(rng, (2,), 3, 4, 5, 2)
    mask = causal_mask(3, 4)
    row_constant = rng.normal(scale=5.0, size=(2, 3, 1))
    out, cache = impl.attention.attention_forward(q, k, v, mask=mask)
    out_b, cache_b = impl.attention.attention_forward(q, k, v, mask=mask, bias=row_constant)
    np.testing.assert_allclose(out_b, out, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out.shape)
    for g, g_b in zip(impl.attention.attention_backward(dout, cache),
                      impl.attention.attention_backward(dout, cache_b), strict=True):
        np.testing.assert_allclose(g_b, g, rtol=1e-10, atol=1e-13)


def test_core_keeps_float32_with_a_bias(rng):
    q, k, v = (x.astype(np.float32) for x in make_qkv(rng, (2,), 3, 4, 5, 2))
    out, _ = core.attention.attention_forward(q, k, v, bias=rng.normal(size=(3, 4)))
    assert out.dtype == np.float32


def test_bad_biases_rejected(impl):
    q, k, v = np.ones((3, 2)), np.ones((4, 2)), np.ones((4, 5))
    with pytest.raises(ValueError, match=r"bias must broadcast .* \(3, 4\), got shape \(4, 3\)"):
        impl.attention.attention_forward(q, k, v, bias=np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"bias must broadcast .* got shape \(2, 3, 4\)"):
        impl.attention.attention_forward(q, k, v, bias=np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="bias must be finite"):
        impl.attention.attention_forward(q, k, v, bias=np.full((3, 4), -np.inf))
    with pytest.raises(TypeError, match="bias must be a real numeric array"):
        impl.attention.attention_forward(q, k, v, bias=np.zeros((3, 4), bool))


# ---------------------------------------------------------------- multi-head

D, H = 6, 3


def random_params(rng):
    keys = ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")
    return {key: 0.5 * rng.normal(size=(D, D) if key[0] == "w" else D) for key in keys}


@pytest.mark.parametrize("bias_shape", [(4, 5), (2, 1, 4, 5), (1, H, 4, 5)])
def test_multi_head_finite_differences_with_a_bias(impl, rng, bias_shape):
    x_q, x_kv = rng.normal(size=(2, 4, D)), rng.normal(size=(2, 5, D))
    mask = mask_with_an_empty_row(rng, 4, 5)
    assert_gradients_correct(impl.multi_head.multi_head_attention_forward,
                             impl.multi_head.multi_head_attention_backward,
                             (x_q, x_kv, random_params(rng)),
                             kwargs={"n_heads": H, "mask": mask,
                                     "bias": rng.normal(size=bias_shape)}, rng=rng)


def test_multi_head_steps_equals_core_with_alibi_and_a_mask(rng):
    x, params = rng.normal(size=(2, 5, D)), random_params(rng)
    bias = alibi_bias(5, n_heads=H)[None] * 20                  # steep: a visible effect
    mask = causal_mask(5) & (rng.random((2, 1, 1, 5)) < 0.7)
    out_s, c_s = steps.multi_head.self_multi_head_attention_forward(x, params, n_heads=H,
                                                                    mask=mask, bias=bias)
    out_c, c_c = core.multi_head.self_multi_head_attention_forward(x, params, n_heads=H,
                                                                   mask=mask, bias=bias)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(c_s.weights, c_c.weights, rtol=1e-12, atol=1e-14)
    out_plain, _ = core.multi_head.self_multi_head_attention_forward(x, params, n_heads=H,
                                                                     mask=mask)
    assert not np.allclose(out_plain, out_c)
    dout = rng.normal(size=out_s.shape)
    dx_s, dp_s = steps.multi_head.self_multi_head_attention_backward(dout, c_s)
    dx_c, dp_c = core.multi_head.self_multi_head_attention_backward(dout, c_c)
    np.testing.assert_allclose(dx_s, dx_c, rtol=1e-10, atol=1e-12)
    for key in dp_s:
        np.testing.assert_allclose(dp_s[key], dp_c[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_multi_head_per_head_bias_reaches_its_own_head_only(impl, rng):
    x, params = rng.normal(size=(2, 4, D)), random_params(rng)
    bias = np.zeros((1, H, 4, 4))
    bias[0, 1] = rng.normal(scale=3.0, size=(4, 4))              # head 1 only
    _, plain = impl.multi_head.self_multi_head_attention_forward(x, params, n_heads=H)
    _, biased = impl.multi_head.self_multi_head_attention_forward(x, params, n_heads=H,
                                                                  bias=bias)
    np.testing.assert_allclose(biased.weights[:, [0, 2]], plain.weights[:, [0, 2]],
                               rtol=1e-12)
    assert not np.allclose(biased.weights[:, 1], plain.weights[:, 1])


def test_multi_head_bad_biases_rejected(impl, rng):
    x_q, x_kv, params = rng.normal(size=(2, 4, D)), rng.normal(size=(2, 5, D)), random_params(rng)
    forward = impl.multi_head.multi_head_attention_forward
    with pytest.raises(ValueError, match=r"bias must broadcast .*\(2, 3, 4, 5\), got shape "
                                         r"\(2, 4, 4\)"):
        forward(x_q, x_kv, params, n_heads=H, bias=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"bias must have shape \(T, S\), \(\.\.\., T, S\) or "
                                         r"\(\.\.\., H, T, S\).*got shape \(5,\)"):
        forward(x_q, x_kv, params, n_heads=H, bias=np.zeros(5))
    with pytest.raises(ValueError, match="bias of shape .* is ambiguous"):
        forward(x_q[:1].repeat(3, 0), x_kv[:1].repeat(3, 0), params, n_heads=H,
                bias=np.zeros((3, 4, 5)))
