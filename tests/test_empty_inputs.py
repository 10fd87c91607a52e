"""Empty sequences are refused at the door, with one message everywhere.

Attention over zero keys (S = 0) has no softmax to take, and over zero
queries (T = 0) nothing to compute; an empty batch axis has nothing to
attend with. Every public entry point that attends (or runs a recurrence)
raises ``ValueError`` naming the argument and showing its shape, in both
mirrors, instead of a NumPy error from deep inside. Position-wise layers
take empty arrays and return empty arrays. One position (T = S = 1) works.
"""

import re

import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.common.params import (
    init_decoder_only_params,
    init_decoder_params,
    init_encoder_decoder_params,
    init_encoder_params,
    init_multi_head_params,
    init_self_attention_params,
)
from attention_from_scratch.inference import decoding, encoder_decoder

D, H, F, V = 8, 2, 12, 7


def _rng():
    return np.random.default_rng(23)


# Each builder takes (mirror, lead, t, s) and returns the call and the
# argument that carries each axis: {"T": (name, array), "S": ..., "B": ...}.

def _qkv(lead, t, s):
    rng = _rng()
    return (rng.normal(size=(*lead, t, 4)), rng.normal(size=(*lead, s, 4)),
            rng.normal(size=(*lead, s, 3)))


def _seq_pair(lead, t, s):
    rng = _rng()
    return rng.normal(size=(*lead, t, D)), rng.normal(size=(*lead, s, D))


def scores(m, lead, t, s):
    q, k, _ = _qkv(lead, t, s)
    return lambda: m.attention.scores_forward(q, k), {"T": ("q", q), "S": ("k", k), "B": ("q", q)}


def weighted_sum(m, lead, t, s):
    _, _, v = _qkv(lead, t, s)
    weights = np.full((*lead, t, s), 1.0 / max(s, 1))
    return (lambda: m.attention.weighted_sum_forward(weights, v),
            {"T": ("weights", weights), "S": ("weights", weights), "B": ("weights", weights)})


def _bare(call):
    def build(m, lead, t, s):
        q, k, v = _qkv(lead, t, s)
        return lambda: call(m, q, k, v, s), {"T": ("q", q), "S": ("k", k), "B": ("q", q)}
    return build


attention = _bare(lambda m, q, k, v, s: m.attention.attention_forward(q, k, v))
flash = _bare(lambda m, q, k, v, s: m.flash_attention.flash_attention_forward(
    q, k, v, block_size=2))
local = _bare(lambda m, q, k, v, s: m.local_attention.local_attention_forward(q, k, v, window=2))
linformer = _bare(lambda m, q, k, v, s: m.linformer.linformer_attention_forward(
    q, k, v, np.full((2, s), 0.5), np.full((2, s), 0.25)))
performer = _bare(lambda m, q, k, v, s: m.performer.performer_attention_forward(
    q, k, v, features=_rng().normal(size=(5, 4))))


def cross_multi_head(m, lead, t, s):
    x_q, x_kv = _seq_pair(lead, t, s)
    params = init_multi_head_params(D, rng=_rng())
    return (lambda: m.multi_head.multi_head_attention_forward(x_q, x_kv, params, n_heads=H),
            {"T": ("x_q", x_q), "S": ("x_kv", x_kv), "B": ("x_q", x_q)})


def self_multi_head(m, lead, t, s):
    x, _ = _seq_pair(lead, t, s)
    params = init_multi_head_params(D, rng=_rng())
    return (lambda: m.multi_head.self_multi_head_attention_forward(x, params, n_heads=H),
            {"T": ("x", x), "B": ("x", x)})


def self_attention(m, lead, t, s):
    x, _ = _seq_pair(lead, t, s)
    params = init_self_attention_params(D, 4, 3, rng=_rng())
    return lambda: m.self_attention.self_attention_forward(x, params), {"T": ("x", x),
                                                                        "B": ("x", x)}


def encoder_block(m, lead, t, s):
    x, _ = _seq_pair(lead, t, s)
    params = init_encoder_params(D, F, rng=_rng())
    return (lambda: m.encoder.encoder_block_forward(x, params, n_heads=H),
            {"T": ("x", x), "B": ("x", x)})


def decoder_block(m, lead, t, s):
    y, memory = _seq_pair(lead, t, s)
    params = init_decoder_params(D, F, rng=_rng())
    return (lambda: m.decoder.decoder_block_forward(y, memory, params, n_heads=H),
            {"T": ("y", y), "S": ("memory", memory), "B": ("y", y)})


def recurrent(m, lead, t, s):
    x, _ = _seq_pair(lead, t, s)
    rng = _rng()
    w_x, w_h = 0.3 * rng.normal(size=(D, 3)), 0.3 * rng.normal(size=(3, 3))
    return (lambda: m.recurrent.recurrent_forward(x, w_x, w_h, np.full(3, 0.1)),
            {"T": ("x", x), "B": ("x", x)})


def _tokens(lead, n):
    return _rng().integers(1, V, size=(*lead, n))


def encoder_decoder_model(m, lead, t, s):
    params = init_encoder_decoder_params(V, D, F, n_enc=1, n_dec=1, rng=_rng())
    src, tgt = _tokens(lead, s), _tokens(lead, t)
    return (lambda: m.transformer.encoder_decoder_forward(params, src=src, tgt=tgt, n_heads=H),
            {"T": ("tgt", tgt), "S": ("src", src), "B": ("src", src)})


def decoder_only_model(m, lead, t, s):
    params = init_decoder_only_params(V, D, F, n_layers=1, rng=_rng())
    tokens = _tokens(lead, t)
    return (lambda: m.transformer.decoder_only_forward(params, tokens=tokens, n_heads=H),
            {"T": ("tokens", tokens), "B": ("tokens", tokens)})


# inference/ is built on core only: the mirror argument is ignored

def stack_forward(m, lead, t, s):
    x, _ = _seq_pair(lead, t, s)
    layers = [init_encoder_params(D, F, rng=_rng())]
    return (lambda: decoding.decoder_only_forward(x, layers, n_heads=H),
            {"T": ("x", x), "B": ("x", x)})


def cached_attention(m, lead, t, s):
    x_new, _ = _seq_pair(lead, t, s)
    params = init_multi_head_params(D, rng=_rng())
    return (lambda: decoding.cached_attention(x_new, params, n_heads=H),
            {"T": ("x_new", x_new), "B": ("x_new", x_new)})


def decode_step(m, lead, t, s):
    x_new, _ = _seq_pair(lead, t, s)
    layers = [init_encoder_params(D, F, rng=_rng())]
    return (lambda: decoding.decode_step(x_new, layers, n_heads=H),
            {"T": ("x_new", x_new), "B": ("x_new", x_new)})


def generate(m, lead, t, s):
    rng = _rng()
    prompt, embeddings = _tokens(lead, t), rng.normal(size=(V, D))
    layers = [init_encoder_params(D, F, rng=rng)]
    return (lambda: decoding.generate(prompt, embeddings, layers, 2, n_heads=H),
            {"T": ("prompt", prompt), "B": ("prompt", prompt)})


def greedy_encoder_decoder(m, lead, t, s):
    params = init_encoder_decoder_params(V, D, F, n_enc=1, n_dec=1, rng=_rng())
    src = _tokens(lead, s)
    return (lambda: encoder_decoder.greedy_encoder_decoder(params, src, n_heads=H, max_new=2,
                                                           bos=1, eos=2),
            {"S": ("src", src), "B": ("src", src)})


MIRRORED = [scores, weighted_sum, attention, flash, local, linformer, performer,
            cross_multi_head, self_multi_head, self_attention, encoder_block, decoder_block,
            recurrent, encoder_decoder_model, decoder_only_model]
INFERENCE = [stack_forward, cached_attention, decode_step, generate, greedy_encoder_decoder]

LEAD, T, S = (2,), 3, 4
EMPTY = {"T": (LEAD, 0, S), "S": (LEAD, T, 0), "B": ((0,), T, S)}
MESSAGES = {"T": r"must have at least one position \(\w+ >= 1\)",
            "S": r"must have at least one position \(\w+ >= 1\)",
            "B": r"must have no empty leading \(batch\) axis"}


def _cases():
    cases = []
    for build in MIRRORED + INFERENCE:
        mirrors = [("steps", steps), ("core", core)] if build in MIRRORED else [("-", core)]
        axes = build(core, LEAD, T, S)[1]
        for axis in axes:
            for mirror_id, mirror in mirrors:
                cases.append(pytest.param(build, mirror, axis,
                                          id=f"{build.__name__}-{mirror_id}-{axis}"))
    return cases


@pytest.mark.parametrize("build, mirror, axis", _cases())
def test_an_empty_sequence_is_refused_with_its_name_and_shape(build, mirror, axis):
    call, args = build(mirror, *EMPTY[axis])
    name, array = args[axis]
    message = rf"^{name} {MESSAGES[axis]}, got shape {re.escape(str(array.shape))}$"
    with pytest.raises(ValueError, match=message):
        call()


TOKEN_MODELS = [encoder_decoder_model, decoder_only_model]     # tokens are (B, T)


@pytest.mark.parametrize("build, lead", [
    pytest.param(build, lead, id=f"{build.__name__}-{'B=2' if lead else 'no-batch'}")
    for build in MIRRORED for lead in [(), (2,)] if lead or build not in TOKEN_MODELS])
def test_one_position_works_and_the_mirrors_agree(build, lead):
    call_steps, _ = build(steps, lead, 1, 1)
    call_core, _ = build(core, lead, 1, 1)
    out_steps, out_core = call_steps()[0], call_core()[0]
    assert out_steps.shape[:len(lead) + 1] == (*lead, 1)
    assert np.all(np.isfinite(out_steps))
    np.testing.assert_allclose(out_core, out_steps, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("build", INFERENCE, ids=lambda b: b.__name__)
def test_one_position_works_in_inference(build):
    call, _ = build(core, (2,), 1, 1)
    out = call()
    out = out[0] if isinstance(out, tuple) else out
    assert out.shape[0] == 2 and np.all(np.isfinite(out))


@pytest.mark.parametrize("mirror", [steps, core], ids=["steps", "core"])
def test_position_wise_layers_take_empty_arrays(mirror):
    """Nothing here mixes positions: zero rows in, zero rows out, in both mirrors."""
    rng = _rng()
    for x in (np.zeros((2, 0, D)), np.zeros((0, 3, D))):
        w, b = rng.normal(size=(D, 5)), rng.normal(size=5)
        assert mirror.linear.linear_forward(x, w, b)[0].shape == x.shape[:-1] + (5,)
        out, _ = mirror.layer_norm.layer_norm_forward(x, np.ones(D), np.zeros(D))
        assert out.shape == x.shape
        assert mirror.positional_encoding.positional_encoding_forward(x)[0].shape == x.shape
        assert mirror.multi_head.split_heads(x, n_heads=H).shape == (
            x.shape[:-2] + (H, x.shape[-2], D // H))
        assert mirror.softmax.softmax_forward(x, axis=-1)[0].shape == x.shape
    tokens = np.zeros((2, 0), dtype=int)
    assert mirror.embedding.embedding_forward(rng.normal(size=(V, D)), tokens=tokens)[0].shape \
        == (2, 0, D)


@pytest.mark.parametrize("mirror", [steps, core], ids=["steps", "core"])
def test_a_softmax_over_an_empty_axis_is_refused(mirror):
    with pytest.raises(ValueError, match=r"^x must have at least one entry along axis=1 .*"
                                         r"got shape \(3, 0\)$"):
        mirror.softmax.softmax_forward(np.zeros((3, 0)), axis=1)
