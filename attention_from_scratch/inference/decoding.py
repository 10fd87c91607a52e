"""Incremental decoding with a key/value cache (Chapter 5).

A decoder-only model (GPT-style) is a stack of self-attention blocks with
the causal mask: position ``i`` reads positions ``0 .. i`` only. So when
token ``n + 1`` is generated, nothing computed for positions ``0 .. n``
changes, and each layer's keys and values for them can be kept instead of
recomputed. Each step then projects only the new positions and attends
from them to every cached key: the causal mask is ``causal_mask(T_new,
S)`` with ``S = S_cached + T_new``, the new queries being the last rows.

A post-norm stack ends in a layer norm (the last step of every block). A
pre-norm stack leaves its last residual sum unnormalised, so it ends in
one more layer norm, ``final_norm`` (GPT-2, Radford et al. 2019).

Built on ``core``. Forward only: this is inference.
"""

from functools import partial
from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.masks import causal_mask
from attention_from_scratch.common.params import (
    ATTENTION_LAYOUTS,
    ENCODER_LAYOUTS,
    NORM_LAYOUTS,
    sub_params,
)
from attention_from_scratch.common.validate import (
    ACTIVATION_NAMES,
    as_array,
    as_float_array,
    check_array,
    check_choice,
    check_heads,
    check_int,
    check_norm,
    check_params,
    check_positions,
)
from attention_from_scratch.core.attention import _attention_forward
from attention_from_scratch.core.encoder import _encoder_block_forward
from attention_from_scratch.core.feed_forward import _feed_forward_forward
from attention_from_scratch.core.layer_norm import _layer_norm_forward
from attention_from_scratch.core.multi_head import _merge_heads, _split_heads
from attention_from_scratch.core.positional_encoding import positional_encoding_forward
from attention_from_scratch.core.residual import _residual_forward


class LayerKV(NamedTuple):
    """One layer's cached keys and values, every position so far."""

    k: np.ndarray   # (..., H, S, Dh)
    v: np.ndarray   # (..., H, S, Dh)


def _check_stack(d_model, dtype, layers, *, n_heads, norm, final_norm, activation):
    """Check a stack's parameters for width ``D`` and its options; return
    the parameters converted."""
    if not isinstance(layers, (list, tuple)) or not layers:
        raise TypeError(f"layers must be a non-empty list of parameter dicts "
                        f"(init_encoder_params), got {layers!r:.60}")
    check_heads(n_heads, d_model)
    check_norm(norm)
    check_choice("activation", activation, ACTIVATION_NAMES)
    if norm == "pre" and final_norm is None:
        raise ValueError('final_norm is required when norm="pre": a pre-norm stack ends in '
                         'one more layer norm; pass {"gamma": (D,), "beta": (D,)}, e.g. '
                         "init_norm_params(D)")
    if norm == "post" and final_norm is not None:
        raise ValueError('final_norm must be None when norm="post": every post-norm block '
                         "already ends in a layer norm")
    layers = [check_params(f"layers[{i}]", params, ENCODER_LAYOUTS, sizes={"D": d_model},
                           dtype=dtype) for i, params in enumerate(layers)]
    if final_norm is not None:
        final_norm = check_params("final_norm", final_norm, NORM_LAYOUTS,
                                  sizes={"D": d_model}, dtype=dtype)
    return layers, final_norm


def _check_stack_inputs(name, x, letter, layers, *, n_heads, norm, final_norm, activation):
    """``x (..., letter, D)`` (``name``) converted, and the stack's parameters."""
    x = check_array(name, x, 2, f"(..., {letter}, D)", dtype=None)
    check_positions(name, x, letter)
    layers, final_norm = _check_stack(x.shape[-1], x.dtype, layers, n_heads=n_heads, norm=norm,
                                      final_norm=final_norm, activation=activation)
    return x, layers, final_norm


def _check_layer_kv(name, layer_kv, x_shape, n_heads):
    """``layer_kv.k`` and ``.v`` must be ``(..., H, S, Dh)`` for ``x`` of ``x_shape``."""
    if not isinstance(layer_kv, LayerKV):
        raise TypeError(f"{name} must be a LayerKV from a previous call, "
                        f"got {type(layer_kv).__name__}")
    lead, d_head = x_shape[:-2], x_shape[-1] // n_heads
    for part in ("k", "v"):
        shape = np.shape(getattr(layer_kv, part))
        if (len(shape) != len(lead) + 3 or shape[:-2] != (*lead, n_heads)
                or shape[-1] != d_head or shape != np.shape(layer_kv.k)):
            raise ValueError(f"{name}.{part} must have shape (..., H, S, Dh) = "
                             f"{(*lead, n_heads, 'S', d_head)}, the same for k and v, to "
                             f"match x_new of shape {x_shape} and n_heads = {n_heads}, "
                             f"got shape {shape}")


def _check_attention_inputs(x_new, params, layer_kv, n_heads):
    """``cached_attention``'s inputs: ``x_new``, ``params`` converted."""
    x_new = check_array("x_new", x_new, 2, "(..., T_new, D)", dtype=None)
    check_positions("x_new", x_new, "T_new")
    check_heads(n_heads, x_new.shape[-1])
    params = check_params("params", params, ATTENTION_LAYOUTS, sizes={"D": x_new.shape[-1]},
                          dtype=x_new.dtype)
    if layer_kv is not None:
        _check_layer_kv("layer_kv", layer_kv, x_new.shape, n_heads)
    return x_new, params


def _check_step_inputs(x_new, layers, kv_cache, *, n_heads, norm, final_norm, activation):
    """``decode_step``'s inputs, converted; ``kv_cache`` as a list."""
    x, layers, final_norm = _check_stack_inputs("x_new", x_new, "T_new", layers,
                                                n_heads=n_heads, norm=norm,
                                                final_norm=final_norm, activation=activation)
    kv_cache = [None] * len(layers) if kv_cache is None else list(kv_cache)
    if len(kv_cache) != len(layers):
        raise ValueError(f"kv_cache must hold one entry per layer ({len(layers)}), "
                         f"got {len(kv_cache)}")
    for i, layer_kv in enumerate(kv_cache):
        if layer_kv is not None:
            _check_layer_kv(f"kv_cache[{i}]", layer_kv, x.shape, n_heads)
    return x, layers, final_norm, kv_cache


def _final_layer_norm(x, final_norm):
    if final_norm is None:
        return x
    out, _ = _layer_norm_forward(x, final_norm["gamma"], final_norm["beta"])  # (..., T, D)
    return out


def decoder_only_forward(x, layers, *, n_heads, norm="post", final_norm=None,
                         activation="relu"):
    """The reference: a full causal pass through a stack of blocks.

    Parameters
    ----------
    x : (..., T, D) array_like
    layers : list of dict
        Parameters of each block (``init_encoder_params``): a GPT block is
        an encoder block with the causal mask.
    n_heads : int, keyword-only
    norm : {"post", "pre"}, keyword-only
    final_norm : dict, keyword-only
        ``{"gamma": (D,), "beta": (D,)}`` of the layer norm after the last
        block: required for ``norm="pre"``, refused for ``"post"``.
    activation : {"relu", "gelu"}, keyword-only

    Returns
    -------
    out : (..., T, D) ndarray
    """
    x, layers, final_norm = _check_stack_inputs("x", x, "T", layers, n_heads=n_heads,
                                                norm=norm, final_norm=final_norm,
                                                activation=activation)
    mask = causal_mask(x.shape[-2])                                   # (T, T)
    for params in layers:
        x, _ = _encoder_block_forward(x, params, n_heads=n_heads, mask=mask, norm=norm,
                                      activation=activation, bias=None)   # (..., T, D)
    return _final_layer_norm(x, final_norm)


def cached_attention(x_new, params, layer_kv=None, *, n_heads):
    """Multi-head self-attention of new positions over the cached ones and themselves.

    Parameters
    ----------
    x_new : (..., T_new, D) array_like
        The attention's input at the new positions only.
    params : dict
        ``w_q`` ... ``b_o`` of the layer's attention, as in
        ``multi_head_attention_forward``.
    layer_kv : LayerKV, optional
        Keys and values of the ``S_cached`` earlier positions,
        ``(..., H, S_cached, Dh)``; ``None`` when nothing is cached yet.
    n_heads : int, keyword-only

    Returns
    -------
    out : (..., T_new, D) ndarray
    layer_kv : LayerKV
        The keys and values with the new positions appended,
        ``S = S_cached + T_new``.

    Notes
    -----
    Only the new positions are projected. Their queries are the last
    ``T_new`` of the ``S`` positions, so the mask is
    ``causal_mask(T_new, S)``: the last ``T_new`` rows of
    ``causal_mask(S)``, not the first (Chapter 5).

    Examples
    --------
    Two calls give the rows of one causal pass:

    >>> from attention_from_scratch.common.params import init_multi_head_params
    >>> from attention_from_scratch.core.multi_head import (
    ...     self_multi_head_attention_forward)
    >>> rng = np.random.default_rng(0)
    >>> params, x = init_multi_head_params(4, rng=rng), rng.normal(size=(5, 4))
    >>> first, kv = cached_attention(x[:3], params, n_heads=2)
    >>> last, kv = cached_attention(x[3:], params, kv, n_heads=2)
    >>> kv.k.shape                                     # (H, S, Dh)
    (2, 5, 2)
    >>> full, _ = self_multi_head_attention_forward(x, params, n_heads=2,
    ...                                              mask=causal_mask(5))
    >>> bool(np.allclose(np.concatenate([first, last]), full))
    True
    """
    x_new, params = _check_attention_inputs(x_new, params, layer_kv, n_heads)
    return _cached_attention(x_new, params, layer_kv, n_heads=n_heads)


def _cached_attention(x_new, params, layer_kv=None, *, n_heads):
    q = _split_heads(x_new @ params["w_q"] + params["b_q"], n_heads=n_heads)  # (..., H, T_new, Dh)
    k = _split_heads(x_new @ params["w_k"] + params["b_k"], n_heads=n_heads)  # (..., H, T_new, Dh)
    v = _split_heads(x_new @ params["w_v"] + params["b_v"], n_heads=n_heads)  # (..., H, T_new, Dh)
    if layer_kv is not None:
        k = np.concatenate([layer_kv.k, k], axis=-2)                     # (..., H, S, Dh)
        v = np.concatenate([layer_kv.v, v], axis=-2)                     # (..., H, S, Dh)
    mask = causal_mask(q.shape[-2], k.shape[-2])                         # (T_new, S)
    heads, _ = _attention_forward(q, k, v, mask=mask, bias=None)         # (..., H, T_new, Dh)
    out = _merge_heads(heads) @ params["w_o"] + params["b_o"]            # (..., T_new, D)
    return out, LayerKV(k, v)


def decode_step(x_new, layers, kv_cache=None, *, n_heads, norm="post", final_norm=None,
                activation="relu"):
    """Run ``T_new`` new positions through every layer, using and extending the cache.

    Parameters
    ----------
    x_new : (..., T_new, D) array_like
        The inputs of the new positions only (the whole prompt at first).
    layers : list of dict
    kv_cache : list of LayerKV, optional
        One per layer, from the previous call; ``None`` to start.
    n_heads, norm, final_norm, activation : keyword-only
        As in :func:`decoder_only_forward`.

    Returns
    -------
    out_new : (..., T_new, D) ndarray
        Equal to the last ``T_new`` rows of :func:`decoder_only_forward`
        on the whole sequence (to round-off).
    kv_cache : list of LayerKV
        Each layer's keys and values with the new positions appended.
    """
    x, layers, final_norm, kv_cache = _check_step_inputs(
        x_new, layers, kv_cache, n_heads=n_heads, norm=norm, final_norm=final_norm,
        activation=activation)
    return _decode_step(x, layers, kv_cache, n_heads=n_heads, norm=norm, final_norm=final_norm,
                        activation=activation)


def _decode_step(x, layers, kv_cache, *, n_heads, norm, final_norm, activation):
    new_cache = []
    for params, layer_kv in zip(layers, kv_cache, strict=True):
        attn, ln1, ffn, ln2 = (sub_params(params, p) for p in ("attn", "ln1", "ffn", "ln2"))
        # encoder_block_forward's two sub-layers, attention reading the cache;
        # the rest acts on each position alone, so on the new rows only
        attention = partial(_cached_attention, params=attn, layer_kv=layer_kv, n_heads=n_heads)
        feed_forward = partial(_feed_forward_forward, params=ffn, activation=activation)
        h, attn_cache = _residual_forward(x, ln1["gamma"], ln1["beta"], sublayer=attention,
                                          norm=norm)                  # (..., T_new, D)
        x, _ = _residual_forward(h, ln2["gamma"], ln2["beta"], sublayer=feed_forward,
                                 norm=norm)                           # (..., T_new, D)
        new_cache.append(attn_cache.sublayer)       # this layer's LayerKV, grown
    return _final_layer_norm(x, final_norm), new_cache


def generate(prompt, embeddings, layers, n_new, *, n_heads, use_cache=True, norm="post",
             final_norm=None, activation="relu"):
    """Greedy generation: append the token whose embedding best matches the last output.

    Parameters
    ----------
    prompt : (B, T0) array_like of int
        Token ids, rows of ``embeddings``; ``T0 >= 1``.
    embeddings : (V, D) array_like
        One row per token of the vocabulary; also used (transposed) to turn
        an output into scores over the vocabulary. These are tied weights
        (Press & Wolf 2017), as in Vaswani et al. (2017, section 3.4) and
        in GPT, whose output layer is the transposed token embedding
        (Radford et al. 2018, eq. 2).
    layers : list of dict
    n_new : int
        Tokens to generate.
    use_cache : bool, keyword-only
        ``True``: one :func:`decode_step` per token on the new token only.
        ``False``: the whole sequence through :func:`decoder_only_forward`
        again for every token.
    n_heads, norm, final_norm, activation : keyword-only
        As in :func:`decoder_only_forward`.

    Returns
    -------
    tokens : (B, T0 + n_new) ndarray of int
    """
    tokens = as_array("prompt", prompt, layout="(B, T0)")
    if tokens.dtype.kind not in "iu":
        raise TypeError(f"prompt must hold integer token ids, got dtype {tokens.dtype}")
    if tokens.ndim != 2:
        raise ValueError(f"prompt must have shape (B, T0) with T0 >= 1, got shape "
                         f"{tokens.shape}")
    check_positions("prompt", tokens, "T0", axis=-1)
    embeddings = as_float_array("embeddings", embeddings)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must have shape (V, D), got shape {embeddings.shape}")
    vocab = embeddings.shape[0]
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab):
        raise ValueError(f"prompt ids must be rows of embeddings, 0 .. V - 1 = {vocab - 1}, "
                         f"got ids from {tokens.min()} to {tokens.max()}")
    n_new = check_int("n_new", n_new, minimum=0)
    _check_stack(embeddings.shape[-1], embeddings.dtype, layers, n_heads=n_heads, norm=norm,
                 final_norm=final_norm, activation=activation)
    kv_cache, x_new, offset = None, embeddings[tokens], 0        # (B, T0, D)
    for _ in range(n_new):
        if use_cache:
            x_new, _ = positional_encoding_forward(x_new, offset=offset)
            out, kv_cache = decode_step(x_new, layers, kv_cache, n_heads=n_heads, norm=norm,
                                        final_norm=final_norm, activation=activation)
            offset = tokens.shape[-1]
        else:
            x_all, _ = positional_encoding_forward(embeddings[tokens])
            out = decoder_only_forward(x_all, layers, n_heads=n_heads, norm=norm,
                                       final_norm=final_norm, activation=activation)
        scores = out[:, -1] @ embeddings.T                        # (B, V)
        next_token = scores.argmax(axis=-1)                       # (B,)
        tokens = np.concatenate([tokens, next_token[:, None]], axis=-1)
        x_new = embeddings[next_token][:, None]                   # (B, 1, D)
    return tokens
