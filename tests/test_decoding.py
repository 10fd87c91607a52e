"""Incremental decoding with a KV cache equals the full causal pass."""

import numpy as np
import pytest

from attention_from_scratch import core, decoding, steps
from attention_from_scratch.masks import causal_mask


def make_layers(rng, n_layers, d, f):
    layers = []
    for _ in range(n_layers):
        params = core.encoder.init_encoder_params(d, f, rng=rng)
        layers.append({k: v + 0.3 * rng.normal(size=v.shape) for k, v in params.items()})
    return layers


def test_full_pass_is_a_stack_of_causal_steps_blocks(rng):
    x, layers = rng.normal(size=(2, 5, 6)), make_layers(rng, 2, 6, 8)
    expected = x
    for params in layers:
        expected, _ = steps.encoder.encoder_block_forward(expected, params, n_heads=3,
                                                          mask=causal_mask(5))
    np.testing.assert_allclose(decoding.decoder_only_forward(x, layers, n_heads=3), expected,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("prompt_length", [1, 2, 5])
def test_token_by_token_equals_full_pass(rng, norm, batch, prompt_length):
    t_total, layers = 8, make_layers(rng, 3, 8, 12)
    x = rng.normal(size=(batch, t_total, 8))
    full = decoding.decoder_only_forward(x, layers, n_heads=2, norm=norm)
    out, kv = decoding.decode_step(x[:, :prompt_length], layers, n_heads=2, norm=norm)
    pieces = [out]
    for t in range(prompt_length, t_total):
        out, kv = decoding.decode_step(x[:, t:t + 1], layers, kv, n_heads=2, norm=norm)
        pieces.append(out)
        assert kv[0].k.shape == (batch, 2, t + 1, 4)      # (B, H, S, Dh) grows by one
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-10, atol=1e-12)


def test_chunks_of_several_new_tokens(rng):
    # T_new = 3 new queries against S = 7 keys: the mask's offset must be right
    x, layers = rng.normal(size=(2, 9, 6)), make_layers(rng, 2, 6, 5)
    full = decoding.decoder_only_forward(x, layers, n_heads=3)
    out1, kv = decoding.decode_step(x[:, :4], layers, n_heads=3)
    out2, kv = decoding.decode_step(x[:, 4:7], layers, kv, n_heads=3)
    out3, kv = decoding.decode_step(x[:, 7:], layers, kv, n_heads=3)
    np.testing.assert_allclose(np.concatenate([out1, out2, out3], axis=1), full,
                               rtol=1e-10, atol=1e-12)


def test_a_wrong_mask_offset_would_be_caught(rng):
    # the mask of the new rows must be causal_mask(T_new, S), not the first T_new
    # rows of causal_mask(S): those would hide the new tokens from themselves
    right = causal_mask(3, 7)
    wrong = causal_mask(7)[:3]
    assert right[:, -1].tolist() == [False, False, True]
    assert not wrong[:, 4:].any()


def test_generation_with_and_without_cache_agree(rng):
    embeddings, layers = rng.normal(size=(7, 6)), make_layers(rng, 2, 6, 10)
    prompt = np.array([[0, 1, 2], [3, 4, 5]])
    cached = decoding.generate(prompt, embeddings, layers, 5, n_heads=2)
    recomputed = decoding.generate(prompt, embeddings, layers, 5, n_heads=2, use_cache=False)
    assert cached.shape == (2, 8)
    np.testing.assert_array_equal(cached[:, :3], prompt)
    np.testing.assert_array_equal(cached, recomputed)


def test_multiply_adds_by_hand():
    # D = 2, F = 4, position 3: projections 4 D^2 = 16, FFN 2 D F = 16,
    # attention 2 n D = 12 with the cache; without it, 3 positions of 32 and
    # 2 n^2 D = 36 for the full score matrix and weighted sum
    kwargs = {"d_model": 2, "d_ff": 4, "n_layers": 1}
    assert decoding.multiply_adds_per_token(3, cached=True, **kwargs) == 44
    assert decoding.multiply_adds_per_token(3, cached=False, **kwargs) == 3 * 32 + 36
    assert decoding.multiply_adds_per_token(3, cached=True, **{**kwargs, "n_layers": 4}) == 176


def test_cached_cost_is_linear_uncached_quadratic():
    kwargs = {"d_model": 16, "d_ff": 64, "n_layers": 2}
    n = np.arange(1, 30)
    cached = np.array([decoding.multiply_adds_per_token(i, cached=True, **kwargs) for i in n])
    full = np.array([decoding.multiply_adds_per_token(i, cached=False, **kwargs) for i in n])
    assert np.all(np.diff(cached, 2) == 0) and np.all(np.diff(cached) > 0)
    assert np.all(np.diff(full, 2) == 2 * 2 * 2 * 16)     # second difference of 2 L n^2 D
    assert np.all(full >= cached) and full[0] == cached[0]


def test_kv_cache_of_wrong_length_rejected(rng):
    layers = make_layers(rng, 2, 4, 3)
    _, kv = decoding.decode_step(rng.normal(size=(1, 2, 4)), layers, n_heads=2)
    with pytest.raises(ValueError, match=r"kv_cache must hold one entry per layer \(2\), got 1"):
        decoding.decode_step(rng.normal(size=(1, 1, 4)), layers, kv[:1], n_heads=2)
    with pytest.raises(ValueError, match='norm must be "post" or "pre"'):
        decoding.decode_step(rng.normal(size=(1, 1, 4)), layers, kv, n_heads=2, norm="x")
