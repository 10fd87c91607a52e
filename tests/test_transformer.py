import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct
from attention_from_scratch.common.params import (
    init_decoder_only_params,
    init_encoder_decoder_params,
)

V, D, F, H = 7, 4, 6, 2


def _perturbed(params, rng):
    """Random non-zero everything, layer-norm gains and biases included."""
    return {key: value + rng.normal(scale=0.3, size=value.shape) for key, value in params.items()}


def _seq2seq(rng, *, norm, tied, n_enc=1, n_dec=2):
    params = _perturbed(init_encoder_decoder_params(V, D, F, n_enc=n_enc, n_dec=n_dec,
                                                    norm=norm, tied=tied, rng=rng), rng)
    src = np.array([[3, 4, 3, 5, 0], [6, 2, 1, 1, 1]])   # B=2, S=5, padding id 0
    tgt = np.array([[1, 5, 5], [1, 2, 0]])                # T=3
    return params, src, tgt


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("tied", [False, True])
def test_encoder_decoder_finite_differences(impl, rng, norm, tied):
    params, src, tgt = _seq2seq(rng, norm=norm, tied=tied)
    assert_gradients_correct(impl.transformer.encoder_decoder_forward,
                             impl.transformer.encoder_decoder_backward, (params,),
                             kwargs={"src": src, "tgt": tgt, "n_heads": H, "norm": norm},
                             rng=rng, n_entries=6, tolerance=1e-5)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_decoder_only_finite_differences(impl, rng, norm):
    params = _perturbed(init_decoder_only_params(V, D, F, n_layers=2, norm=norm, rng=rng), rng)
    tokens = np.array([[3, 4, 3, 5, 0], [6, 2, 1, 1, 1]])
    assert_gradients_correct(impl.transformer.decoder_only_forward,
                             impl.transformer.decoder_only_backward, (params,),
                             kwargs={"tokens": tokens, "n_heads": H, "norm": norm},
                             rng=rng, n_entries=6, tolerance=1e-5)


def test_every_entry_of_a_tiny_model(rng):
    """One full check, every parameter entry, on the smallest stack."""
    params, src, tgt = _seq2seq(rng, norm="pre", tied=True, n_enc=1, n_dec=1)
    assert_gradients_correct(core.transformer.encoder_decoder_forward,
                             core.transformer.encoder_decoder_backward, (params,),
                             kwargs={"src": src, "tgt": tgt, "n_heads": H, "norm": "pre"},
                             rng=rng, tolerance=1e-5)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_steps_equals_core(rng, norm):
    params, src, tgt = _seq2seq(rng, norm=norm, tied=False)
    out_s, c_s = steps.transformer.encoder_decoder_forward(params, src=src, tgt=tgt,
                                                           n_heads=H, norm=norm)
    out_c, c_c = core.transformer.encoder_decoder_forward(params, src=src, tgt=tgt,
                                                          n_heads=H, norm=norm)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-10, atol=1e-12)
    dlogits = rng.normal(size=out_s.shape)
    g_s = steps.transformer.encoder_decoder_backward(dlogits, c_s)
    g_c = core.transformer.encoder_decoder_backward(dlogits, c_c)
    assert set(g_s) == set(g_c) == set(params)
    for key in g_s:
        np.testing.assert_allclose(g_s[key], g_c[key], rtol=1e-9, atol=1e-11, err_msg=key)
    w_s, w_c = (impl.transformer.attention_weights(c) for impl, c in ((steps, c_s), (core, c_c)))
    assert set(w_s) == {"enc.0", "dec.0.self", "dec.0.cross", "dec.1.self", "dec.1.cross"}
    for key in w_s:
        np.testing.assert_allclose(w_s[key], w_c[key], rtol=1e-10, atol=1e-12)


def test_padding_and_future_are_invisible(impl, rng):
    params, src, tgt = _seq2seq(rng, norm="post", tied=False)
    logits, cache = impl.transformer.encoder_decoder_forward(params, src=src, tgt=tgt, n_heads=H)
    src2, tgt2 = src.copy(), tgt.copy()
    src2[0, 4] = 0           # already padding
    src2[1, 4] = 0           # a real token becomes padding: row 1 must change
    tgt2[:, 2] = 3           # the last target token: earlier positions must not change
    logits2, _ = impl.transformer.encoder_decoder_forward(params, src=src2, tgt=tgt2,
                                                          n_heads=H)
    np.testing.assert_allclose(logits2[0, :2], logits[0, :2], rtol=1e-12)
    assert not np.allclose(logits2[1, :2], logits[1, :2])
    weights = impl.transformer.attention_weights(cache)
    np.testing.assert_array_equal(weights["dec.1.cross"][0, :, :, 4], 0.0)   # a padding key
    np.testing.assert_allclose(weights["dec.0.self"].sum(axis=-1), 1.0)


def test_float32_is_kept_by_core(rng):
    params = init_encoder_decoder_params(V, D, F, n_enc=1, n_dec=1, rng=rng, dtype=np.float32)
    logits, cache = core.transformer.encoder_decoder_forward(params, src=[[2, 3]], tgt=[[1]],
                                                             n_heads=H)
    assert logits.dtype == np.float32
    grads = core.transformer.encoder_decoder_backward(np.ones_like(logits), cache)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}


def test_bad_arguments(impl, rng):
    params, src, tgt = _seq2seq(rng, norm="post", tied=False)
    with pytest.raises(ValueError, match=r"src and tgt must have the same batch size B"):
        impl.transformer.encoder_decoder_forward(params, src=src, tgt=tgt[:1], n_heads=H)
    with pytest.raises(ValueError, match=r"tgt must have shape \(B, length\)"):
        impl.transformer.encoder_decoder_forward(params, src=src, tgt=tgt[0], n_heads=H)
    with pytest.raises(ValueError, match=r"src ids must lie in \[0, V - 1\] = \[0, 6\]"):
        impl.transformer.encoder_decoder_forward(params, src=src + 5, tgt=tgt, n_heads=H)
    with pytest.raises(ValueError, match="params is missing key 'enc_norm.gamma'"):
        impl.transformer.encoder_decoder_forward(params, src=src, tgt=tgt, n_heads=H,
                                                 norm="pre")
