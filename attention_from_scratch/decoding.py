"""Incremental decoding with a key/value cache (Chapter 5).

A decoder-only model (GPT-style) is a stack of self-attention blocks with
the causal mask: position ``i`` reads positions ``0 .. i`` only. So when
token ``n + 1`` is generated, nothing computed for positions ``0 .. n``
changes, and each layer's keys and values for them can be kept instead of
recomputed. Each step then projects only the new positions and attends
from them to every cached key: the causal mask is ``causal_mask(T_new,
S)`` with ``S = S_cached + T_new``, the new queries being the last rows.

Built on ``core``. Forward only: this is inference.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.block_params import check_norm, sub_params
from attention_from_scratch.core.attention import attention_forward
from attention_from_scratch.core.encoder import encoder_block_forward
from attention_from_scratch.core.feed_forward import feed_forward_forward
from attention_from_scratch.core.layer_norm import layer_norm_forward
from attention_from_scratch.core.multi_head import merge_heads, split_heads
from attention_from_scratch.core.positional_encoding import positional_encoding_forward
from attention_from_scratch.masks import causal_mask


class LayerKV(NamedTuple):
    """One layer's cached keys and values, every position so far."""

    k: np.ndarray   # (..., H, S, Dh)
    v: np.ndarray   # (..., H, S, Dh)


def decoder_only_forward(x, layers, *, n_heads, norm="post", activation="relu"):
    """The reference: a full causal pass through a stack of blocks.

    Parameters
    ----------
    x : (..., T, D) array_like
    layers : list of dict
        Parameters of each block (``init_encoder_params``): a GPT block is
        an encoder block with the causal mask.
    n_heads : int, keyword-only
    norm, activation : keyword-only
        As in ``encoder_block_forward``.

    Returns
    -------
    out : (..., T, D) ndarray
    """
    x = np.asarray(x)
    mask = causal_mask(x.shape[-2])                                   # (T, T)
    for params in layers:
        x, _ = encoder_block_forward(x, params, n_heads=n_heads, mask=mask, norm=norm,
                                     activation=activation)           # (..., T, D)
    return x


def _cached_attention(x_new, attn, layer_kv, *, n_heads):
    """Multi-head self-attention of the new positions, reading and growing the cache."""
    q = split_heads(x_new @ attn["w_q"] + attn["b_q"], n_heads)      # (..., H, T_new, Dh)
    k_new = split_heads(x_new @ attn["w_k"] + attn["b_k"], n_heads)  # (..., H, T_new, Dh)
    v_new = split_heads(x_new @ attn["w_v"] + attn["b_v"], n_heads)  # (..., H, T_new, Dh)
    if layer_kv is not None:
        k_new = np.concatenate([layer_kv.k, k_new], axis=-2)         # (..., H, S, Dh)
        v_new = np.concatenate([layer_kv.v, v_new], axis=-2)         # (..., H, S, Dh)
    mask = causal_mask(q.shape[-2], k_new.shape[-2])                 # (T_new, S): new = last
    heads, _ = attention_forward(q, k_new, v_new, mask=mask)         # (..., H, T_new, Dh)
    out = merge_heads(heads) @ attn["w_o"] + attn["b_o"]             # (..., T_new, D)
    return out, LayerKV(k_new, v_new)


def decode_step(x_new, layers, kv_cache=None, *, n_heads, norm="post", activation="relu"):
    """Run ``T_new`` new positions through every layer, using and extending the cache.

    Parameters
    ----------
    x_new : (..., T_new, D) array_like
        The inputs of the new positions only (the whole prompt at first).
    layers : list of dict
    kv_cache : list of LayerKV, optional
        One per layer, from the previous call; ``None`` to start.
    n_heads, norm, activation : keyword-only

    Returns
    -------
    out_new : (..., T_new, D) ndarray
        Equal to the last ``T_new`` rows of :func:`decoder_only_forward`
        on the whole sequence (to round-off).
    kv_cache : list of LayerKV
        Each layer's keys and values with the new positions appended.
    """
    check_norm(norm)
    x = np.asarray(x_new)
    kv_cache = [None] * len(layers) if kv_cache is None else kv_cache
    if len(kv_cache) != len(layers):
        raise ValueError(f"kv_cache must hold one entry per layer ({len(layers)}), "
                         f"got {len(kv_cache)}")
    new_cache = []
    for params, layer_kv in zip(layers, kv_cache, strict=True):
        attn, ln1, ffn, ln2 = (sub_params(params, p) for p in ("attn", "ln1", "ffn", "ln2"))
        # everything but attention acts on each position alone: new rows only
        if norm == "post":
            a, layer_kv = _cached_attention(x, attn, layer_kv, n_heads=n_heads)
            h, _ = layer_norm_forward(x + a, ln1["gamma"], ln1["beta"])
            f, _ = feed_forward_forward(h, ffn, activation=activation)
            x, _ = layer_norm_forward(h + f, ln2["gamma"], ln2["beta"])
        else:
            n1, _ = layer_norm_forward(x, ln1["gamma"], ln1["beta"])
            a, layer_kv = _cached_attention(n1, attn, layer_kv, n_heads=n_heads)
            h = x + a
            n2, _ = layer_norm_forward(h, ln2["gamma"], ln2["beta"])
            f, _ = feed_forward_forward(n2, ffn, activation=activation)
            x = h + f
        new_cache.append(layer_kv)
    return x, new_cache


def generate(prompt, embeddings, layers, n_new, *, n_heads, use_cache=True, norm="post",
             activation="relu"):
    """Greedy generation: append the token whose embedding best matches the last output.

    Parameters
    ----------
    prompt : (B, T0) array_like of int
        Token ids, rows of ``embeddings``.
    embeddings : (V, D) array_like
        One row per token of the vocabulary; also used (transposed) to turn
        an output into scores over the vocabulary, as GPT-2 does.
    layers : list of dict
    n_new : int
        Tokens to generate.
    use_cache : bool, keyword-only
        ``True``: one :func:`decode_step` per token on the new token only.
        ``False``: the whole sequence through :func:`decoder_only_forward`
        again for every token.

    Returns
    -------
    tokens : (B, T0 + n_new) ndarray of int
    """
    tokens = np.array(prompt)
    embeddings = np.asarray(embeddings)
    options = {"n_heads": n_heads, "norm": norm, "activation": activation}
    kv_cache, x_new, offset = None, embeddings[tokens], 0        # (B, T0, D)
    for _ in range(n_new):
        if use_cache:
            x_new, _ = positional_encoding_forward(x_new, offset=offset)
            out, kv_cache = decode_step(x_new, layers, kv_cache, **options)
            offset = tokens.shape[-1]
        else:
            x_all, _ = positional_encoding_forward(embeddings[tokens])
            out = decoder_only_forward(x_all, layers, **options)   # (B, T, D)
        scores = out[:, -1] @ embeddings.T                        # (B, V)
        next_token = scores.argmax(axis=-1)                       # (B,)
        tokens = np.concatenate([tokens, next_token[:, None]], axis=-1)
        x_new = embeddings[next_token][:, None]                   # (B, 1, D)
    return tokens


def multiply_adds_per_token(n, *, d_model, d_ff, n_layers, cached):
    """Multiply-adds of the matrix products that produce the output at position ``n``.

    Parameters
    ----------
    n : int
        1-based position of the token being produced: it attends to ``n``
        positions.
    d_model, d_ff, n_layers : int, keyword-only
    cached : bool, keyword-only
        With a KV cache only the new position is computed; without, the
        whole causal pass over ``n`` positions is run again.

    Returns
    -------
    count : int

    Notes
    -----
    Per layer and per position: four ``(D, D)`` projections, ``4 D^2``,
    and the feed-forward network, ``2 D F``. Attention of one query over
    ``n`` keys: ``n D`` for the scores and ``n D`` for the weighted sum,
    summed over the heads. Without the cache all ``n x n`` scores are
    computed, masked ones included (that is what a full pass does).
    Layer norms, biases and the softmax are ``O(D)`` per position and
    left out.

    Examples
    --------
    >>> multiply_adds_per_token(3, d_model=2, d_ff=4, n_layers=1, cached=True)
    44
    """
    per_position = 4 * d_model ** 2 + 2 * d_model * d_ff
    if cached:
        return n_layers * (per_position + 2 * n * d_model)
    return n_layers * (n * per_position + 2 * n * n * d_model)
