import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct
from attention_from_scratch.common.masks import causal_mask, padding_mask
from attention_from_scratch.common.params import ENCODER_LAYOUTS, init_encoder_params


def random_params(rng, d, f):
    """Every parameter random and non-zero (gains around 1)."""
    params = init_encoder_params(d, f, rng=rng)
    return {key: value + 0.5 * rng.normal(size=value.shape) for key, value in params.items()}


def test_hand_checkable_case(impl):
    # attention and FFN switched off (zero output projections): what is left is
    # the residual path, normalised twice (post-norm) or untouched (pre-norm)
    x = np.array([[1.0, 2.0, 6.0], [0.0, -3.0, 3.0]])     # (T=2, D=3)
    params = init_encoder_params(3, 5, rng=np.random.default_rng(0))
    for key in ("attn.w_o", "attn.b_o", "ffn.w_2", "ffn.b_2"):
        params[key] = np.zeros_like(params[key])
    post, _ = impl.encoder.encoder_block_forward(x, params, n_heads=3)
    pre, _ = impl.encoder.encoder_block_forward(x, params, n_heads=3, norm="pre")
    normalised = (x - x.mean(axis=-1, keepdims=True)) / x.std(axis=-1, keepdims=True)
    np.testing.assert_allclose(post, normalised, rtol=1e-5)
    np.testing.assert_array_equal(pre, x)


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize(("x_shape", "n_heads", "with_mask"), [
    ((2, 3, 4), 2, True),      # padding mask, B = 2
    ((3, 6), 3, False),        # no batch axis
    ((1, 4, 6), 1, True),      # B = 1, H = 1
    ((2, 1, 4), 2, False),     # T = 1
])
def test_finite_differences(impl, rng, norm, x_shape, n_heads, with_mask):
    *lead, t, d = x_shape
    mask = padding_mask(rng.integers(1, t + 1, size=lead[0]), t) if with_mask else None
    inputs = (rng.normal(size=x_shape), random_params(rng, d, 5))
    assert_gradients_correct(impl.encoder.encoder_block_forward,
                             impl.encoder.encoder_block_backward, inputs,
                             kwargs={"n_heads": n_heads, "mask": mask, "norm": norm}, rng=rng)


def test_finite_differences_gelu_causal(impl, rng):
    inputs = (rng.normal(size=(2, 4, 6)), random_params(rng, 6, 7))
    assert_gradients_correct(impl.encoder.encoder_block_forward,
                             impl.encoder.encoder_block_backward, inputs,
                             kwargs={"n_heads": 2, "mask": causal_mask(4), "activation": "gelu"},
                             rng=rng)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_steps_equals_core(rng, norm):
    x, params = rng.normal(size=(2, 5, 6)), random_params(rng, 6, 7)
    kwargs = {"n_heads": 3, "mask": padding_mask([5, 3], 5), "norm": norm}
    out_s, cache_s = steps.encoder.encoder_block_forward(x, params, **kwargs)
    out_c, cache_c = core.encoder.encoder_block_forward(x, params, **kwargs)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-12)
    dout = rng.normal(size=x.shape)
    dx_s, dp_s = steps.encoder.encoder_block_backward(dout, cache_s)
    dx_c, dp_c = core.encoder.encoder_block_backward(dout, cache_c)
    np.testing.assert_allclose(dx_s, dx_c, rtol=1e-10, atol=1e-12)
    assert set(dp_s) == set(dp_c) == set(params) == set(ENCODER_LAYOUTS)
    for key in params:
        np.testing.assert_allclose(dp_s[key], dp_c[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_core_float32_matches_float64(rng):
    x, params = rng.normal(size=(2, 5, 6)), random_params(rng, 6, 7)
    out64, cache64 = core.encoder.encoder_block_forward(x, params, n_heads=2)
    out32, cache32 = core.encoder.encoder_block_forward(x.astype(np.float32), params, n_heads=2)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-3, atol=1e-4)
    dout = rng.normal(size=x.shape)
    dx32, dp32 = core.encoder.encoder_block_backward(dout.astype(np.float32), cache32)
    dx64, _ = core.encoder.encoder_block_backward(dout, cache64)
    assert dx32.dtype == dp32["ffn.w_1"].dtype == np.float32
    np.testing.assert_allclose(dx32, dx64, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_permutation_equivariant_without_positions(impl, rng, norm):
    x, params = rng.normal(size=(2, 5, 4)), random_params(rng, 4, 6)
    perm = np.array([3, 0, 4, 1, 2])
    out, _ = impl.encoder.encoder_block_forward(x, params, n_heads=2, norm=norm)
    out_perm, _ = impl.encoder.encoder_block_forward(x[:, perm], params, n_heads=2, norm=norm)
    np.testing.assert_allclose(out_perm, out[:, perm], rtol=1e-10, atol=1e-12)
    # with positional encodings added, the symmetry is gone
    add_pe = impl.positional_encoding.positional_encoding_forward
    out_pe, _ = impl.encoder.encoder_block_forward(add_pe(x)[0], params, n_heads=2, norm=norm)
    out_perm_pe, _ = impl.encoder.encoder_block_forward(add_pe(x[:, perm])[0], params,
                                                        n_heads=2, norm=norm)
    assert np.abs(out_perm_pe - out_pe[:, perm]).max() > 1e-2


def test_padding_hides_padded_tokens(impl, rng):
    x, params = rng.normal(size=(2, 5, 4)), random_params(rng, 4, 6)
    mask = padding_mask([3, 5], 5)
    out, _ = impl.encoder.encoder_block_forward(x, params, n_heads=2, mask=mask)
    x2 = x.copy()
    x2[0, 3:] = rng.normal(size=(2, 4))            # new padding in sequence 0
    out2, _ = impl.encoder.encoder_block_forward(x2, params, n_heads=2, mask=mask)
    np.testing.assert_allclose(out2[0, :3], out[0, :3], rtol=1e-12)
    np.testing.assert_array_equal(out2[1], out[1])
    assert not np.allclose(out2[0, 3:], out[0, 3:])


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_bidirectional_unless_causal(impl, rng, norm):
    x, params = rng.normal(size=(1, 5, 4)), random_params(rng, 4, 6)
    x2 = x.copy()
    x2[0, 3] += rng.normal(size=4)                 # change token 3 (not by a shift:
                                                   # pre-norm's layer norm would erase it)
    kwargs = {"n_heads": 2, "norm": norm}
    out, _ = impl.encoder.encoder_block_forward(x, params, **kwargs)
    out2, _ = impl.encoder.encoder_block_forward(x2, params, **kwargs)
    assert not np.allclose(out2[0, :3], out[0, :3])     # earlier positions see it
    mask = causal_mask(5)
    out, _ = impl.encoder.encoder_block_forward(x, params, mask=mask, **kwargs)
    out2, _ = impl.encoder.encoder_block_forward(x2, params, mask=mask, **kwargs)
    np.testing.assert_array_equal(out2[0, :3], out[0, :3])   # ... unless causal
    assert not np.allclose(out2[0, 3:], out[0, 3:])


def test_residual_gradient_adds(impl, rng):
    # pre-norm with the sub-layers switched off is the identity: dx = dout exactly
    params = random_params(rng, 4, 6)
    for key in ("attn.w_o", "attn.b_o", "ffn.w_2", "ffn.b_2"):
        params[key] = np.zeros_like(params[key])
    out, cache = impl.encoder.encoder_block_forward(rng.normal(size=(3, 4)), params,
                                                    n_heads=2, norm="pre")
    dout = rng.normal(size=out.shape)
    dx, dparams = impl.encoder.encoder_block_backward(dout, cache)
    np.testing.assert_allclose(dx, dout, atol=1e-15)
    assert np.abs(dparams["attn.w_o"]).max() > 0      # the switched-off weights still learn


def test_bad_inputs_rejected(impl, rng):
    x, params = rng.normal(size=(2, 3, 4)), random_params(rng, 4, 6)
    forward = impl.encoder.encoder_block_forward
    with pytest.raises(ValueError, match="params is missing key 'ffn.w_1'"):
        forward(x, {k: v for k, v in params.items() if k != "ffn.w_1"}, n_heads=2)
    with pytest.raises(ValueError, match=r"params\['ln1.gamma'\] must have shape \(D,\) = \(4,\)"):
        forward(x, {**params, "ln1.gamma": np.ones(5)}, n_heads=2)
    with pytest.raises(ValueError, match="params has unexpected key 'attn.w_x'"):
        forward(x, {**params, "attn.w_x": np.ones((4, 4))}, n_heads=2)
    with pytest.raises(ValueError, match="n_heads = 3 must divide"):
        forward(x, params, n_heads=3)
    with pytest.raises(ValueError, match='norm must be "post" or "pre"'):
        forward(x, params, n_heads=2, norm="sandwich")
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., T, D\), got shape \(4,\)"):
        forward(np.ones(4), params, n_heads=2)
    with pytest.raises(ValueError, match="mask must"):
        forward(x, params, n_heads=2, mask=np.ones((4, 4), bool))


def test_block_layouts_match_the_sub_layers():
    from attention_from_scratch.common.params import (
        ATTENTION_LAYOUTS,
        DECODER_LAYOUTS,
        sub_params,
        with_prefix,
    )
    # one home: both mirrors check multi-head params against the same layout
    assert steps.multi_head.ATTENTION_LAYOUTS is ATTENTION_LAYOUTS
    assert core.multi_head.ATTENTION_LAYOUTS is ATTENTION_LAYOUTS
    assert len(ENCODER_LAYOUTS) == 16 and len(DECODER_LAYOUTS) == 26
    params = {"w": np.ones(2), "b": np.zeros(2)}
    assert sub_params({**with_prefix("ffn", params), "ln1.gamma": 1}, "ffn") == params
