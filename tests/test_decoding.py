"""Incremental decoding with a KV cache equals the full causal pass."""

import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.common.masks import causal_mask
from attention_from_scratch.common.params import (
    init_encoder_params,
    init_multi_head_params,
    init_norm_params,
)
from attention_from_scratch.inference import decoding


def make_layers(rng, n_layers, d, f):
    layers = []
    for _ in range(n_layers):
        params = init_encoder_params(d, f, rng=rng)
        layers.append({k: v + 0.3 * rng.normal(size=v.shape) for k, v in params.items()})
    return layers


def make_final_norm(rng, norm, d):
    """The pre-norm stack's final layer norm (random, so that it matters); None for post."""
    if norm == "post":
        return None
    return {"gamma": 1 + 0.5 * rng.normal(size=d), "beta": rng.normal(size=d)}


def test_full_pass_is_a_stack_of_causal_steps_blocks(rng):
    x, layers = rng.normal(size=(2, 5, 6)), make_layers(rng, 2, 6, 8)
    expected = x
    for params in layers:
        expected, _ = steps.encoder.encoder_block_forward(expected, params, n_heads=3,
                                                          mask=causal_mask(5))
    np.testing.assert_allclose(decoding.decoder_only_forward(x, layers, n_heads=3), expected,
                               rtol=1e-12, atol=1e-12)


def test_pre_norm_stack_ends_in_the_final_layer_norm(rng):
    x, layers = rng.normal(size=(2, 5, 6)), make_layers(rng, 2, 6, 8)
    final_norm = make_final_norm(rng, "pre", 6)
    expected = x
    for params in layers:
        expected, _ = steps.encoder.encoder_block_forward(expected, params, n_heads=3,
                                                          mask=causal_mask(5), norm="pre")
    unnormalised = expected
    expected, _ = steps.layer_norm.layer_norm_forward(expected, final_norm["gamma"],
                                                      final_norm["beta"])
    out = decoding.decoder_only_forward(x, layers, n_heads=3, norm="pre", final_norm=final_norm)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert not np.allclose(out, unnormalised)
    # with gain 1 and bias 0 every position comes out with mean 0, variance 1
    out, _ = decoding.decode_step(x, layers, n_heads=3, norm="pre",
                                  final_norm=init_norm_params(6))
    np.testing.assert_allclose(out.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=-1), 1, atol=1e-4)


def test_final_norm_required_for_pre_and_refused_for_post(rng):
    x, layers = rng.normal(size=(1, 3, 4)), make_layers(rng, 1, 4, 3)
    final_norm = make_final_norm(rng, "pre", 4)
    for function in (decoding.decoder_only_forward, decoding.decode_step):
        with pytest.raises(ValueError, match='final_norm is required when norm="pre"'):
            function(x, layers, n_heads=2, norm="pre")
        with pytest.raises(ValueError, match='final_norm must be None when norm="post"'):
            function(x, layers, n_heads=2, final_norm=final_norm)
        with pytest.raises(ValueError, match=r"final_norm\['gamma'\] must have shape \(D,\)"):
            function(x, layers, n_heads=2, norm="pre",
                     final_norm={**final_norm, "gamma": np.ones(5)})


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("prompt_length", [1, 2, 5])
def test_token_by_token_equals_full_pass(rng, norm, batch, prompt_length):
    t_total, layers = 8, make_layers(rng, 3, 8, 12)
    x = rng.normal(size=(batch, t_total, 8))
    options = {"n_heads": 2, "norm": norm, "final_norm": make_final_norm(rng, norm, 8)}
    full = decoding.decoder_only_forward(x, layers, **options)
    out, kv = decoding.decode_step(x[:, :prompt_length], layers, **options)
    pieces = [out]
    for t in range(prompt_length, t_total):
        out, kv = decoding.decode_step(x[:, t:t + 1], layers, kv, **options)
        pieces.append(out)
        assert kv[0].k.shape == (batch, 2, t + 1, 4)      # (B, H, S, Dh) grows by one
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-10, atol=1e-12)


def test_cached_attention_equals_the_last_rows_of_causal_attention(rng):
    params = {k: v + 0.3 * rng.normal(size=v.shape)
              for k, v in init_multi_head_params(6, rng=rng).items()}
    x = rng.normal(size=(2, 7, 6))
    full, _ = core.multi_head.self_multi_head_attention_forward(x, params, n_heads=3,
                                                                mask=causal_mask(7))
    first, kv = decoding.cached_attention(x[:, :4], params, n_heads=3)
    last, kv = decoding.cached_attention(x[:, 4:], params, kv, n_heads=3)   # T_new=3, S=7
    assert kv.k.shape == kv.v.shape == (2, 3, 7, 2)
    np.testing.assert_allclose(np.concatenate([first, last], axis=1), full,
                               rtol=1e-10, atol=1e-12)


def test_chunks_of_several_new_tokens(rng):
    # T_new = 3 new queries against S = 7 keys: the mask's offset must be right
    x, layers = rng.normal(size=(2, 9, 6)), make_layers(rng, 2, 6, 5)
    full = decoding.decoder_only_forward(x, layers, n_heads=3)
    out1, kv = decoding.decode_step(x[:, :4], layers, n_heads=3)
    out2, kv = decoding.decode_step(x[:, 4:7], layers, kv, n_heads=3)
    out3, kv = decoding.decode_step(x[:, 7:], layers, kv, n_heads=3)
    np.testing.assert_allclose(np.concatenate([out1, out2, out3], axis=1), full,
                               rtol=1e-10, atol=1e-12)


def test_the_new_rows_are_the_last_rows_of_the_full_mask():
    # the mask of the new rows is causal_mask(T_new, S) = the LAST T_new rows of
    # causal_mask(S); the first T_new rows would hide most cached keys and the
    # new tokens themselves
    right = causal_mask(3, 7)
    np.testing.assert_array_equal(right, causal_mask(7)[-3:])
    assert right[:, :4].all() and right[:, -1].tolist() == [False, False, True]
    assert not causal_mask(7)[:3, 3:].any()


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_generation_with_and_without_cache_agree(rng, norm):
    embeddings, layers = rng.normal(size=(7, 6)), make_layers(rng, 2, 6, 10)
    options = {"n_heads": 2, "norm": norm, "final_norm": make_final_norm(rng, norm, 6)}
    prompt = np.array([[0, 1, 2], [3, 4, 5]])
    cached = decoding.generate(prompt, embeddings, layers, 5, **options)
    recomputed = decoding.generate(prompt, embeddings, layers, 5, use_cache=False, **options)
    assert cached.shape == (2, 8)
    np.testing.assert_array_equal(cached[:, :3], prompt)
    np.testing.assert_array_equal(cached, recomputed)
    np.testing.assert_array_equal(decoding.generate(prompt, embeddings, layers, 0, **options),
                                  prompt)


def test_kv_cache_of_wrong_length_rejected(rng):
    layers = make_layers(rng, 2, 4, 3)
    _, kv = decoding.decode_step(rng.normal(size=(1, 2, 4)), layers, n_heads=2)
    with pytest.raises(ValueError, match=r"kv_cache must hold one entry per layer \(2\), got 1"):
        decoding.decode_step(rng.normal(size=(1, 1, 4)), layers, kv[:1], n_heads=2)
    with pytest.raises(ValueError, match='norm must be "post" or "pre"'):
        decoding.decode_step(rng.normal(size=(1, 1, 4)), layers, kv, n_heads=2, norm="x")


def test_decode_step_bad_inputs_rejected(rng):
    layers = make_layers(rng, 2, 4, 3)
    x = rng.normal(size=(2, 3, 4))
    _, kv = decoding.decode_step(x, layers, n_heads=2)
    step = decoding.decode_step
    with pytest.raises(ValueError, match=r"x_new must have shape \(\.\.\., T_new, D\), "
                                         r"got shape \(4,\)"):
        step(np.ones(4), layers, n_heads=2)
    with pytest.raises(ValueError, match=r"layers\[0\]\['attn.w_q'\] must have shape "
                                         r"\(D, D\) = \(6, 6\)"):
        step(rng.normal(size=(2, 1, 6)), layers, kv, n_heads=2)
    with pytest.raises(TypeError, match="layers must be a non-empty list"):
        step(x, [], n_heads=2)
    with pytest.raises(ValueError, match="n_heads = 3 must divide the model width D = 4"):
        step(x, layers, n_heads=3)
    with pytest.raises(TypeError, match=r"kv_cache\[1\] must be a LayerKV"):
        step(x[:, :1], layers, [kv[0], (kv[1].k, kv[1].v)], n_heads=2)
    with pytest.raises(ValueError, match=r"kv_cache\[0\].k must have shape \(\.\.\., H, S, "
                                         r"Dh\) = \(1, 2, 'S', 2\).*got shape \(2, 2, 3, 2\)"):
        step(x[:1, :1], layers, kv, n_heads=2)           # batch of 1 against a cache of 2
    bad_v = decoding.LayerKV(kv[0].k, kv[0].v[..., :2, :])
    with pytest.raises(ValueError, match=r"kv_cache\[0\].v must have shape"):
        step(x[:, :1], layers, [bad_v, kv[1]], n_heads=2)


def test_generate_bad_inputs_rejected(rng):
    embeddings, layers = rng.normal(size=(7, 4)), make_layers(rng, 1, 4, 3)
    prompt = np.array([[0, 1], [2, 3]])
    generate = decoding.generate
    with pytest.raises(ValueError, match=r"prompt ids must be rows of embeddings, "
                                         r"0 \.\. V - 1 = 6, got ids from 0 to 7"):
        generate(np.array([[0, 7]]), embeddings, layers, 2, n_heads=2)
    with pytest.raises(ValueError, match="got ids from -1 to 3"):
        generate(np.array([[-1, 3]]), embeddings, layers, 2, n_heads=2)
    with pytest.raises(TypeError, match="prompt must hold integer token ids, got dtype float64"):
        generate(prompt.astype(float), embeddings, layers, 2, n_heads=2)
    with pytest.raises(ValueError, match=r"prompt must have shape \(B, T0\) with T0 >= 1, "
                                         r"got shape \(2,\)"):
        generate(np.array([0, 1]), embeddings, layers, 2, n_heads=2)
    with pytest.raises(ValueError, match=r"embeddings must have shape \(V, D\), got shape \(7,\)"):
        generate(prompt, np.ones(7), layers, 2, n_heads=2)
    with pytest.raises(ValueError, match="n_new must be at least 0, got -1"):
        generate(prompt, embeddings, layers, -1, n_heads=2)
    with pytest.raises(ValueError, match=r"layers\[0\]\['attn.w_q'\] must have shape \(D, D\) "
                                         r"= \(6, 6\)"):
        generate(prompt, rng.normal(size=(7, 6)), layers, 2, n_heads=2)
