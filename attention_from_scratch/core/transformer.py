"""Whole Transformers, mirror of ``steps.transformer`` built on ``core``.

Same contract; the dtype of the parameters is kept (float32 trains
about twice as fast as float64).
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.masks import alibi_bias, causal_mask
from attention_from_scratch.common.params import (
    count_layers,
    decoder_only_layouts,
    encoder_decoder_layouts,
    sub_params,
    with_prefix,
)
from attention_from_scratch.common.validate import (
    ACTIVATION_NAMES,
    check_choice,
    check_heads,
    check_params,
    check_token_batch,
)
from attention_from_scratch.core.decoder import _decoder_block_backward, _decoder_block_forward
from attention_from_scratch.core.embedding import (
    embedding_backward,
    embedding_forward,
    output_projection_backward,
    output_projection_forward,
)
from attention_from_scratch.core.encoder import _encoder_block_backward, _encoder_block_forward
from attention_from_scratch.core.layer_norm import _layer_norm_backward, _layer_norm_forward
from attention_from_scratch.core.positional_encoding import sinusoidal_encoding

DTYPE = None   # core keeps the dtype of the parameters


class EmbedCache(NamedTuple):
    embedding: tuple   # EmbeddingCache
    scale: float       # sqrt(D)


class EncoderDecoderCache(NamedTuple):
    src: EmbedCache
    tgt: EmbedCache
    encoder: list             # one EncoderBlockCache per block
    enc_norm: tuple           # LayerNormCache, or None for post-norm
    decoder: list             # one DecoderBlockCache per block
    dec_norm: tuple
    out: tuple                # OutputProjectionCache
    tied: bool


class DecoderOnlyCache(NamedTuple):
    tokens: EmbedCache
    blocks: list
    final_norm: tuple
    out: tuple
    tied: bool


def _model_params(params, layouts_for, counts, *, norm, n_heads, activation, positions,
                  dtype):
    """The parameters converted, whether the output is tied; the options
    checked here, once, for every block."""
    if not isinstance(params, dict) or "embed" not in params:
        raise TypeError("params must be a dict of arrays with an 'embed' (V, D) entry, "
                        f"got {type(params).__name__}")
    tied = "out.w" not in params
    layouts = layouts_for(*(count_layers(params, c) for c in counts), norm=norm, tied=tied)
    embed = np.shape(params["embed"])
    if len(embed) != 2:
        raise ValueError(f"params['embed'] must have shape (V, D), got shape {embed}")
    check_heads(n_heads, embed[1])
    check_choice("activation", activation, ACTIVATION_NAMES)
    check_choice("positions", positions, POSITIONS)
    return check_params("params", params, layouts, sizes={"V": embed[0], "D": embed[1]},
                        dtype=dtype), tied


POSITIONS = ("sinusoidal", "alibi")


def _embed(table, tokens, positions):
    """``table[tokens] * sqrt(D) + PE``: token and position, ``(B, T, D)``.

    With ALiBi positions enter the attention scores instead: no ``PE``.
    """
    d_model = table.shape[1]
    x, cache = embedding_forward(table, tokens=tokens)                # (B, T, D)
    scale = np.sqrt(d_model)
    x = x * x.dtype.type(scale)
    if positions == "sinusoidal":
        x = x + sinusoidal_encoding(tokens.shape[-1], d_model).astype(x.dtype)
    return x, EmbedCache(cache, scale)


def _self_bias(positions, t, n_heads, dtype):
    """ALiBi's ``(1, H, T, T)`` bias for self-attention, or ``None``."""
    if positions == "sinusoidal":
        return None
    return alibi_bias(t, n_heads=n_heads)[None].astype(dtype)          # (1, H, T, T)


def _embed_backward(dx, cache):
    # x = lookup * scale + PE: the encoding is a constant, the scale a factor
    return embedding_backward(dx * dx.dtype.type(cache.scale), cache.embedding)


def _norm_forward(h, params, prefix):
    if f"{prefix}.gamma" not in params:
        return h, None
    return _layer_norm_forward(h, params[f"{prefix}.gamma"], params[f"{prefix}.beta"])


def _norm_backward(dh, cache, prefix, grads):
    if cache is None:
        return dh
    dh, grads[f"{prefix}.gamma"], grads[f"{prefix}.beta"] = _layer_norm_backward(dh, cache)
    return dh


def _keys_mask(tokens, pad_id):
    """``(B, 1, 1, S)``: True where the key is a real token, for every
    head and query."""
    return (tokens != pad_id)[:, None, None, :]


def encoder_decoder_forward(params, *, src, tgt, n_heads, norm="post", pad_id=0,
                            activation="relu", positions="sinusoidal"):
    """Logits of an encoder–decoder for every target position.

    Parameters
    ----------
    params : dict of str -> array_like
        ``init_encoder_decoder_params``; the numbers of blocks and whether
        the output is tied are read from the keys.
    src : (B, S) array_like of int, keyword-only
    tgt : (B, T) array_like of int, keyword-only
        The decoder's input: the target shifted right (a start token
        first). Position ``t`` sees ``tgt[:, :t + 1]`` only.
    n_heads : int, keyword-only
    norm : {"post", "pre"}, keyword-only
    pad_id : int, keyword-only
        Padding id: masked out as a key everywhere. The loss calls the
        same token ``ignore_id`` (``cross_entropy_forward``): there it
        marks targets left out of the mean.
    activation : {"relu", "gelu"}, keyword-only
    positions : {"sinusoidal", "alibi"}, keyword-only
        ``"sinusoidal"``: the encoding added to the embeddings.
        ``"alibi"``: no encoding; every self-attention gets
        ``alibi_bias`` (the encoder's symmetric, the decoder's under the
        causal mask), the cross-attention no bias (Press et al. 2022).

    Returns
    -------
    logits : (B, T, V) ndarray
    cache : EncoderDecoderCache
        ``attention_weights`` reads every head's weights from it.

    See Also
    --------
    encoder_decoder_backward, decoder_only_forward

    Examples
    --------
    >>> from attention_from_scratch.common.params import init_encoder_decoder_params
    >>> params = init_encoder_decoder_params(6, 4, 8, n_enc=1, n_dec=1,
    ...                                      rng=np.random.default_rng(0))
    >>> logits, cache = encoder_decoder_forward(params, src=[[3, 4, 5]],
    ...                                         tgt=[[1, 2]], n_heads=2)
    >>> logits.shape
    (1, 2, 6)
    """
    params, tied = _model_params(params, encoder_decoder_layouts, ("enc", "dec"), norm=norm,
                                 n_heads=n_heads, activation=activation, positions=positions,
                                 dtype=DTYPE)
    vocab = params["embed"].shape[0]
    src, tgt = check_token_batch("src", src, vocab, "S"), check_token_batch("tgt", tgt, vocab)
    if src.shape[0] != tgt.shape[0]:
        raise ValueError(f"src and tgt must have the same batch size B, got shapes "
                         f"{src.shape} and {tgt.shape}")
    src_keys = _keys_mask(src, pad_id)                                  # (B, 1, 1, S)
    x, src_cache = _embed(params["embed"], src, positions)              # (B, S, D)
    src_bias = _self_bias(positions, src.shape[1], n_heads, x.dtype)    # (1, H, S, S)
    encoder = []
    for i in range(count_layers(params, "enc")):
        x, block = _encoder_block_forward(x, sub_params(params, f"enc.{i}"), n_heads=n_heads,
                                          mask=src_keys, norm=norm, activation=activation,
                                          bias=src_bias)
        encoder.append(block)
    memory, enc_norm = _norm_forward(x, params, "enc_norm")             # (B, S, D)
    y, tgt_cache = _embed(params["embed"], tgt, positions)              # (B, T, D)
    tgt_bias = _self_bias(positions, tgt.shape[1], n_heads, y.dtype)    # (1, H, T, T)
    decoder = []
    for i in range(count_layers(params, "dec")):
        y, block = _decoder_block_forward(y, memory, sub_params(params, f"dec.{i}"),
                                          n_heads=n_heads, self_mask=_keys_mask(tgt, pad_id),
                                          memory_mask=src_keys, norm=norm,
                                          activation=activation, self_bias=tgt_bias)
        decoder.append(block)
    h, dec_norm = _norm_forward(y, params, "dec_norm")                  # (B, T, D)
    w_out = params["embed"] if tied else params["out.w"]
    logits, out = output_projection_forward(h, w_out, params["out.b"])  # (B, T, V)
    return logits, EncoderDecoderCache(src_cache, tgt_cache, encoder, enc_norm, decoder,
                                       dec_norm, out, tied)


def _output_backward(dlogits, cache, grads):
    dh, dw_out, grads["out.b"] = output_projection_backward(dlogits, cache.out)
    if not cache.tied:
        grads["out.w"] = dw_out
        dw_out = 0
    return dh, dw_out


def encoder_decoder_backward(dlogits, cache):
    """Gradients ``dparams`` of ``encoder_decoder_forward``, keys of ``params``.

    The forward run backwards: output projection, decoder blocks from the
    last, then the encoder blocks from the last, with the memory's
    gradient summed over every decoder block that read it.
    """
    grads = {}
    dh, dembed = _output_backward(dlogits, cache, grads)               # dembed: tied output
    dy = _norm_backward(dh, cache.dec_norm, "dec_norm", grads)         # (B, T, D)
    dmemory = 0
    for i in reversed(range(len(cache.decoder))):
        dy, dmemory_i, dblock = _decoder_block_backward(dy, cache.decoder[i])
        dmemory = dmemory + dmemory_i   # the memory fans out to every decoder block
        grads.update(with_prefix(f"dec.{i}", dblock))
    dx = _norm_backward(dmemory, cache.enc_norm, "enc_norm", grads)    # (B, S, D)
    for i in reversed(range(len(cache.encoder))):
        dx, dblock = _encoder_block_backward(dx, cache.encoder[i])
        grads.update(with_prefix(f"enc.{i}", dblock))
    # the table is read for the source, the target (and the output if tied)
    grads["embed"] = (_embed_backward(dx, cache.src) + _embed_backward(dy, cache.tgt)
                      + dembed)
    return grads


def decoder_only_forward(params, *, tokens, n_heads, norm="post", pad_id=0,
                         activation="relu", positions="sinusoidal"):
    """Logits of a decoder-only model (GPT-style) at every position.

    Parameters
    ----------
    params : dict of str -> array_like
        ``init_decoder_only_params``.
    tokens : (B, T) array_like of int, keyword-only
        Position ``t`` sees ``tokens[:, :t + 1]`` (causal mask), never
        padding keys.
    n_heads, norm, pad_id, activation, positions : keyword-only
        As in :func:`encoder_decoder_forward`.

    Returns
    -------
    logits : (B, T, V) ndarray
    cache : DecoderOnlyCache
    """
    params, tied = _model_params(params, decoder_only_layouts, ("block",), norm=norm,
                                 n_heads=n_heads, activation=activation, positions=positions,
                                 dtype=DTYPE)
    tokens = check_token_batch("tokens", tokens, params["embed"].shape[0])
    mask = causal_mask(tokens.shape[1]) & _keys_mask(tokens, pad_id)   # (B, 1, T, T)
    x, embed_cache = _embed(params["embed"], tokens, positions)         # (B, T, D)
    bias = _self_bias(positions, tokens.shape[1], n_heads, x.dtype)     # (1, H, T, T)
    blocks = []
    for i in range(count_layers(params, "block")):
        x, block = _encoder_block_forward(x, sub_params(params, f"block.{i}"),
                                          n_heads=n_heads, mask=mask, norm=norm,
                                          activation=activation, bias=bias)
        blocks.append(block)
    h, final_norm = _norm_forward(x, params, "final_norm")              # (B, T, D)
    w_out = params["embed"] if tied else params["out.w"]
    logits, out = output_projection_forward(h, w_out, params["out.b"])  # (B, T, V)
    return logits, DecoderOnlyCache(embed_cache, blocks, final_norm, out, tied)


def decoder_only_backward(dlogits, cache):
    """Gradients ``dparams`` of ``decoder_only_forward``."""
    grads = {}
    dh, dembed = _output_backward(dlogits, cache, grads)
    dx = _norm_backward(dh, cache.final_norm, "final_norm", grads)     # (B, T, D)
    for i in reversed(range(len(cache.blocks))):
        dx, dblock = _encoder_block_backward(dx, cache.blocks[i])
        grads.update(with_prefix(f"block.{i}", dblock))
    grads["embed"] = _embed_backward(dx, cache.tokens) + dembed
    return grads


def attention_weights(cache):
    """Every layer's and head's attention weights from a forward's cache.

    Parameters
    ----------
    cache : EncoderDecoderCache or DecoderOnlyCache

    Returns
    -------
    weights : dict of str -> ndarray
        ``"enc.{i}"`` ``(B, H, S, S)``, ``"dec.{i}.self"`` ``(B, H, T, T)``
        and ``"dec.{i}.cross"`` ``(B, H, T, S)`` for an encoder–decoder;
        ``"block.{i}"`` ``(B, H, T, T)`` for a decoder-only model.
    """
    if isinstance(cache, DecoderOnlyCache):
        return {f"block.{i}": block.attn.sublayer.weights
                for i, block in enumerate(cache.blocks)}
    weights = {f"enc.{i}": block.attn.sublayer.weights for i, block in enumerate(cache.encoder)}
    for i, block in enumerate(cache.decoder):
        weights[f"dec.{i}.self"] = block.self_attn.sublayer.weights
        weights[f"dec.{i}.cross"] = block.cross_attn.sublayer.weights
    return weights
