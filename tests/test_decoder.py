import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct
from attention_from_scratch.common.masks import padding_mask
from attention_from_scratch.common.params import DECODER_LAYOUTS, init_decoder_params


def random_params(rng, d, f):
    params = init_decoder_params(d, f, rng=rng)
    return {key: value + 0.5 * rng.normal(size=value.shape) for key, value in params.items()}


def test_hand_checkable_case(impl, rng):
    # one memory position: cross-attention has a single key, weight 1, whatever the
    # query, so it hands every row the same (m W_v + b_v) W_o + b_o. With the
    # self-attention and FFN outputs switched off, pre-norm gives y + that.
    params = random_params(rng, 4, 5)
    for key in ("self_attn.w_o", "self_attn.b_o", "ffn.w_2", "ffn.b_2"):
        params[key] = np.zeros_like(params[key])
    y, memory = rng.normal(size=(3, 4)), rng.normal(size=(1, 4))
    out, _ = impl.decoder.decoder_block_forward(y, memory, params, n_heads=2, norm="pre")
    read = (memory @ params["cross_attn.w_v"] + params["cross_attn.b_v"]) \
        @ params["cross_attn.w_o"] + params["cross_attn.b_o"]            # (1, D)
    np.testing.assert_allclose(out, y + read, rtol=1e-12)


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize(("y_shape", "s", "n_heads", "with_masks"), [
    ((2, 3, 4), 5, 2, True),       # T = 3 != S = 5, padding in both
    ((4, 6), 2, 3, False),         # no batch axis, T = 4 > S = 2
    ((1, 2, 6), 3, 1, True),       # B = 1, H = 1
    ((2, 1, 4), 3, 2, True),       # T = 1
])
def test_finite_differences(impl, rng, norm, y_shape, s, n_heads, with_masks):
    *lead, t, d = y_shape
    kwargs = {"n_heads": n_heads, "norm": norm}
    if with_masks:
        kwargs["self_mask"] = padding_mask(rng.integers(1, t + 1, size=lead[0]), t)
        kwargs["memory_mask"] = padding_mask(rng.integers(1, s + 1, size=lead[0]), s)
    inputs = (rng.normal(size=y_shape), rng.normal(size=(*lead, s, d)), random_params(rng, d, 5))
    assert_gradients_correct(impl.decoder.decoder_block_forward,
                             impl.decoder.decoder_block_backward, inputs, kwargs=kwargs,
                             rng=rng)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_steps_equals_core(rng, norm):
    y, memory, params = rng.normal(size=(2, 3, 6)), rng.normal(size=(2, 5, 6)), \
        random_params(rng, 6, 7)
    kwargs = {"n_heads": 2, "self_mask": padding_mask([3, 2], 3),
              "memory_mask": padding_mask([5, 4], 5), "norm": norm}
    out_s, cache_s = steps.decoder.decoder_block_forward(y, memory, params, **kwargs)
    out_c, cache_c = core.decoder.decoder_block_forward(y, memory, params, **kwargs)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-12)
    dout = rng.normal(size=y.shape)
    *grads_s, dp_s = steps.decoder.decoder_block_backward(dout, cache_s)
    *grads_c, dp_c = core.decoder.decoder_block_backward(dout, cache_c)
    for g_s, g_c in zip(grads_s, grads_c, strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-10, atol=1e-12)
    assert set(dp_s) == set(dp_c) == set(params) == set(DECODER_LAYOUTS)
    for key in params:
        np.testing.assert_allclose(dp_s[key], dp_c[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_core_keeps_float32(rng):
    y, memory = rng.normal(size=(2, 3, 4)).astype(np.float32), rng.normal(size=(2, 5, 4))
    out, cache = core.decoder.decoder_block_forward(y, memory, random_params(rng, 4, 5),
                                                    n_heads=2)
    dy, dmemory, dparams = core.decoder.decoder_block_backward(np.ones_like(out), cache)
    assert out.dtype == dy.dtype == dmemory.dtype == dparams["ln3.beta"].dtype == np.float32


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("self_mask", [None, np.ones((5, 5), bool)])
def test_never_sees_the_future(impl, rng, norm, self_mask):
    # the causal mask is built in: even an all-True self_mask cannot lift it
    y, memory, params = rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 3, 4)), \
        random_params(rng, 4, 6)
    kwargs = {"n_heads": 2, "norm": norm, "self_mask": self_mask}
    out, cache = impl.decoder.decoder_block_forward(y, memory, params, **kwargs)
    for i in range(4):
        y2 = y.copy()
        y2[:, i + 1:] = rng.normal(size=y2[:, i + 1:].shape)
        out2, _ = impl.decoder.decoder_block_forward(y2, memory, params, **kwargs)
        np.testing.assert_array_equal(out2[:, :i + 1], out[:, :i + 1])
        assert not np.allclose(out2[:, i + 1:], out[:, i + 1:])
    # and the gradient agrees: output 0 does not depend on y[1:]
    dout = np.zeros_like(out)
    dout[:, 0] = rng.normal(size=(2, 4))
    dy, _, _ = impl.decoder.decoder_block_backward(dout, cache)
    np.testing.assert_array_equal(dy[:, 1:], 0.0)


def test_reads_memory_except_its_padding(impl, rng):
    y, memory, params = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), \
        random_params(rng, 4, 6)
    kwargs = {"n_heads": 2, "memory_mask": padding_mask([2, 5], 5)}
    out, cache = impl.decoder.decoder_block_forward(y, memory, params, **kwargs)
    memory2 = memory.copy()
    memory2[0, 2:] = rng.normal(size=(3, 4))       # only padding of sequence 0 changes
    out2, _ = impl.decoder.decoder_block_forward(y, memory2, params, **kwargs)
    np.testing.assert_allclose(out2, out, rtol=1e-12, atol=1e-14)
    memory2[0, 1] += 1.0                           # a real source token changes
    out3, _ = impl.decoder.decoder_block_forward(y, memory2, params, **kwargs)
    assert not np.allclose(out3[0], out[0])
    _, dmemory, _ = impl.decoder.decoder_block_backward(rng.normal(size=out.shape), cache)
    np.testing.assert_array_equal(dmemory[0, 2:], 0.0)
    assert np.abs(dmemory[1]).min() > 0


def test_dmemory_with_the_key_path_switched_off(impl, rng):
    # memory feeds the cross-attention's keys and values. With w_k = 0 every key
    # is b_k, the weights are uniform and the key path carries no gradient: what
    # is left, the value path, gives every memory row the same gradient.
    y, memory, params = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), \
        random_params(rng, 4, 6)
    dout = rng.normal(size=y.shape)
    _, cache = impl.decoder.decoder_block_forward(y, memory, params, n_heads=2)
    _, dmemory, _ = impl.decoder.decoder_block_backward(dout, cache)
    assert not np.allclose(dmemory, dmemory[:, :1])
    no_key_path = {**params, "cross_attn.w_k": np.zeros((4, 4))}
    _, cache = impl.decoder.decoder_block_forward(y, memory, no_key_path, n_heads=2)
    _, dmemory_values_only, _ = impl.decoder.decoder_block_backward(dout, cache)
    np.testing.assert_allclose(dmemory_values_only,
                               np.broadcast_to(dmemory_values_only[:, :1], (2, 5, 4)),
                               rtol=1e-10, atol=1e-14)


def test_bad_inputs_rejected(impl, rng):
    y, memory, params = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), \
        random_params(rng, 4, 6)
    forward = impl.decoder.decoder_block_forward
    with pytest.raises(ValueError, match=r"memory must have shape .*got shape \(2, 5, 6\)"):
        forward(y, rng.normal(size=(2, 5, 6)), params, n_heads=2)
    with pytest.raises(ValueError, match=r"memory must have shape .*got shape \(3, 5, 4\)"):
        forward(y, rng.normal(size=(3, 5, 4)), params, n_heads=2)
    with pytest.raises(ValueError, match="params is missing key 'cross_attn.b_o'"):
        forward(y, memory, {k: v for k, v in params.items() if k != "cross_attn.b_o"},
                n_heads=2)
    with pytest.raises(ValueError, match=r"params\['ln3.beta'\] must have shape \(D,\)"):
        forward(y, memory, {**params, "ln3.beta": np.ones((1, 4))}, n_heads=2)
    with pytest.raises(ValueError, match="mask must"):
        forward(y, memory, params, n_heads=2, memory_mask=np.ones((3, 4), bool))
    with pytest.raises(TypeError, match="mask must be a boolean array"):
        forward(y, memory, params, n_heads=2, memory_mask=np.ones((3, 5)))
