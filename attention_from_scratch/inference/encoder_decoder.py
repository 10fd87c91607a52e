"""Greedy decoding of whole models with a key/value cache (Chapter 7).

Encoder–decoder: the source is encoded once; each decoder layer's
cross-attention keys and values are projected from the memory once per
source, and its self-attention keys and values grow by one position per
generated token. Decoder-only: the prompts, left-padded to one length,
run once, then one token per step. Each row keeps its own positions
(the first real token is position 0), so a batch of prompts of different
lengths gives the tokens each prompt gives alone.

Built on ``core``; the references are the full forward passes of
``core.transformer`` rerun for every token (``use_cache=False``).
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.masks import alibi_bias
from attention_from_scratch.common.params import (
    count_layers,
    decoder_only_layouts,
    encoder_decoder_layouts,
    sub_params,
)
from attention_from_scratch.common.validate import as_array, check_token_batch
from attention_from_scratch.core.attention import _attention_forward
from attention_from_scratch.core.encoder import _encoder_block_forward
from attention_from_scratch.core.feed_forward import _feed_forward_forward
from attention_from_scratch.core.layer_norm import _layer_norm_forward
from attention_from_scratch.core.multi_head import _merge_heads, _split_heads
from attention_from_scratch.core.positional_encoding import sinusoidal_encoding
from attention_from_scratch.core.residual import _residual_forward
from attention_from_scratch.core.transformer import (
    _model_params,
    decoder_only_forward,
    encoder_decoder_forward,
)


class KV(NamedTuple):
    k: np.ndarray   # (B, H, S, Dh)
    v: np.ndarray


def _embed_at(params, tokens, positions, encoding):
    """``embed[tokens] * sqrt(D) + PE[positions]`` for ``(B, T)`` ids
    (no ``PE`` when ``encoding`` is ``"alibi"``)."""
    table = params["embed"]
    d_model = table.shape[1]
    x = table[tokens] * table.dtype.type(np.sqrt(d_model))              # (B, T, D)
    if encoding == "alibi":
        return x
    pe = sinusoidal_encoding(int(positions.max()) + 1, d_model).astype(table.dtype)
    return x + pe[positions]                                           # (B, T, D)


def _project_kv(x, p, n_heads):
    return KV(_split_heads(x @ p["w_k"] + p["b_k"], n_heads=n_heads),
              _split_heads(x @ p["w_v"] + p["b_v"], n_heads=n_heads))        # (B, H, S, Dh) each


def _attend(x_new, p, kv, mask, n_heads, bias=None):
    """Queries of the new positions against the keys/values ``kv``."""
    q = _split_heads(x_new @ p["w_q"] + p["b_q"], n_heads=n_heads)           # (B, H, T_new, Dh)
    heads, _ = _attention_forward(q, kv.k, kv.v, mask=mask, bias=bias)  # (B, H, T_new, Dh)
    return _merge_heads(heads) @ p["w_o"] + p["b_o"], None           # (B, T_new, D)


def _final_norm(h, params, name):
    if f"{name}.gamma" not in params:
        return h
    return _layer_norm_forward(h, params[f"{name}.gamma"], params[f"{name}.beta"])[0]


def _logits(h, params):
    w_out = params.get("out.w", params["embed"])                     # tied: the table
    return h @ w_out.T + params["out.b"]                             # (B, T, V)


def _step_layer(x, p, self_kv, cross, *, keys_mask, n_heads, norm, encoding):
    """One decoder block on the new positions; returns ``(x, self_kv)``."""
    new_kv = []

    def self_attention(u):
        kv = _project_kv(u, p["self_attn"], n_heads)
        if self_kv is not None:
            kv = KV(np.concatenate([self_kv.k, kv.k], axis=-2),
                    np.concatenate([self_kv.v, kv.v], axis=-2))     # (B, H, S, Dh)
        new_kv.append(kv)
        t_new, s = u.shape[-2], kv.k.shape[-2]
        mask = np.arange(s)[None, :] <= np.arange(s - t_new, s)[:, None]   # causal (T_new, S)
        if keys_mask is not None:
            mask = mask & keys_mask[:, None, None, :s]              # (B, 1, T_new, S)
        # ALiBi: the new queries are the last T_new of the S positions, as
        # in the mask; only distances count, so left padding changes nothing
        bias = (alibi_bias(t_new, s, n_heads=n_heads).astype(u.dtype)
                if encoding == "alibi" else None)                   # (H, T_new, S)
        return _attend(u, p["self_attn"], kv, mask, n_heads, bias)

    def cross_attention(u):
        return _attend(u, p["cross_attn"], cross.kv, cross.mask, n_heads)

    def feed_forward(u):
        return _feed_forward_forward(u, p["ffn"], activation="relu")

    for sublayer, ln in ((self_attention, "ln1"), (cross_attention, "ln2"),
                         (feed_forward, "ln3")):
        if sublayer is cross_attention and cross is None:
            continue
        x, _ = _residual_forward(x, p[ln]["gamma"], p[ln]["beta"], sublayer=sublayer,
                                 norm=norm)                         # (B, T_new, D)
    return x, new_kv[0]


class Cross(NamedTuple):
    kv: KV              # the memory's keys and values, projected once
    mask: np.ndarray    # (B, 1, 1, S): real source positions


def _block_params(params, prefix):
    return {name: sub_params(sub_params(params, prefix), name)
            for name in ("self_attn", "attn", "cross_attn", "ffn", "ln1", "ln2", "ln3")}


def greedy_encoder_decoder(params, src, *, n_heads, max_new, bos, eos, norm="post",
                           pad_id=0, use_cache=True, positions="sinusoidal"):
    """Greedy target ids for a batch of padded sources.

    Parameters
    ----------
    params : dict
        ``init_encoder_decoder_params`` (tied or not).
    src : (B, S) array_like of int
        Sources, right-padded with ``pad_id``; lengths may differ.
    n_heads, norm, pad_id, positions : keyword-only
        As in ``core.transformer.encoder_decoder_forward``.
    max_new : int, keyword-only
        Tokens to generate per row (a row that has produced ``eos``
        keeps producing whatever comes; cut at the first ``eos``).
    bos, eos : int, keyword-only
    use_cache : bool, keyword-only
        ``False``: the whole forward pass again for every token.

    Returns
    -------
    tokens : (B, max_new) ndarray of int
    """
    src = as_array("src", src, layout="(B, S)")
    b = src.shape[0]
    out = np.full((b, 1), bos, dtype=np.int64)
    if not use_cache:
        for _ in range(max_new):
            logits, _ = encoder_decoder_forward(params, src=src, tgt=out, n_heads=n_heads,
                                                norm=norm, pad_id=pad_id, positions=positions)
            out = np.concatenate([out, logits[:, -1].argmax(-1)[:, None]], axis=1)
            if (out[:, 1:] == eos).any(axis=1).all():
                break
        return _fill(out[:, 1:], max_new, eos)
    # checked once here; the steps below call the unchecked bodies of the pairs
    params, _ = _model_params(params, encoder_decoder_layouts, ("enc", "dec"), norm=norm,
                              n_heads=n_heads, activation="relu", positions=positions,
                              dtype=None)
    src = check_token_batch("src", src, params["embed"].shape[0], "S")
    keys = (src != pad_id)[:, None, :]                               # (B, 1, S)
    x = _embed_at(params, src, np.broadcast_to(np.arange(src.shape[1]), src.shape), positions)
    src_bias = (alibi_bias(src.shape[1], n_heads=n_heads)[None].astype(x.dtype)
                if positions == "alibi" else None)                   # (1, H, S, S)
    for i in range(count_layers(params, "enc")):
        x, _ = _encoder_block_forward(x, sub_params(params, f"enc.{i}"), n_heads=n_heads,
                                      mask=keys[:, None], norm=norm, activation="relu",
                                      bias=src_bias)                 # (B, S, D)
    memory = _final_norm(x, params, "enc_norm")
    blocks = [_block_params(params, f"dec.{i}") for i in range(count_layers(params, "dec"))]
    crosses = [Cross(_project_kv(memory, p["cross_attn"], n_heads), keys[:, None])
               for p in blocks]                                      # once per source
    caches = [None] * len(blocks)
    for step in range(max_new):
        y = _embed_at(params, out[:, -1:], np.full((b, 1), step), positions)   # (B, 1, D)
        for i, p in enumerate(blocks):
            # a generated padding id is masked as a key, as the full forward does
            y, caches[i] = _step_layer(y, p, caches[i], crosses[i], keys_mask=out != pad_id,
                                       n_heads=n_heads, norm=norm, encoding=positions)
        logits = _logits(_final_norm(y, params, "dec_norm"), params)  # (B, 1, V)
        out = np.concatenate([out, logits[:, -1].argmax(-1)[:, None]], axis=1)
        if (out[:, 1:] == eos).any(axis=1).all():
            break
    return _fill(out[:, 1:], max_new, eos)


def _fill(tokens, max_new, eos):
    """Stop early when every row has ended: pad the rest with ``eos``."""
    if tokens.shape[1] == max_new:
        return tokens
    return np.concatenate([tokens, np.full((tokens.shape[0], max_new - tokens.shape[1]), eos,
                                           dtype=tokens.dtype)], axis=1)


def greedy_decoder_only(params, prompts, *, n_heads, max_new, norm="post", pad_id=0,
                        use_cache=True, positions="sinusoidal"):
    """Greedy continuations of prompts of different lengths.

    Parameters
    ----------
    params : dict
        ``init_decoder_only_params`` (tied or untied output).
    prompts : list of list of int
        Each at least one id long.
    n_heads, norm, pad_id, positions : keyword-only
        As in ``core.transformer.decoder_only_forward``.
    max_new : int, keyword-only
    use_cache : bool, keyword-only
        ``False``: each prompt alone, the full forward pass per token.

    Returns
    -------
    tokens : (B, max_new) ndarray of int

    Notes
    -----
    With the cache the prompts are left-padded to one length ``P``: row
    ``b`` with ``n_b`` real tokens has positions ``-(P - n_b) ... -1``
    as padding, which no query may read (the key-padding mask; a padding
    query reads nothing, and its output is never used), and its real
    tokens get positions ``0, 1, ...`` as if alone.
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("prompts must be a non-empty list of non-empty id lists")
    if not use_cache:
        rows = []
        for prompt in prompts:
            tokens = np.array([prompt], dtype=np.int64)
            for _ in range(max_new):
                logits, _ = decoder_only_forward(params, tokens=tokens, n_heads=n_heads,
                                                 norm=norm, pad_id=pad_id, positions=positions)
                tokens = np.concatenate([tokens, logits[:, -1].argmax(-1)[:, None]], axis=1)
            rows.append(tokens[0, len(prompt):])
        return np.array(rows)
    params, _ = _model_params(params, decoder_only_layouts, ("block",), norm=norm,
                              n_heads=n_heads, activation="relu", positions=positions,
                              dtype=None)
    lengths = np.array([len(p) for p in prompts])
    width = int(lengths.max())
    tokens = np.full((len(prompts), width), pad_id, dtype=np.int64)
    for i, prompt in enumerate(prompts):
        tokens[i, width - len(prompt):] = prompt                     # left padding
    offsets = np.maximum(np.arange(width)[None, :] - (width - lengths)[:, None], 0)
    keys = tokens != pad_id                                           # (B, P)
    blocks = [_block_params(params, f"block.{i}")
              for i in range(count_layers(params, "block"))]
    caches = [None] * len(blocks)
    x, generated = _embed_at(params, tokens, offsets, positions), []
    for step in range(max_new):
        for i, p in enumerate(blocks):
            p = {**p, "self_attn": p["attn"], "ln3": p["ln2"], "ln2": None}
            x, caches[i] = _step_layer(x, p, caches[i], None, keys_mask=keys,
                                       n_heads=n_heads, norm=norm, encoding=positions)
        logits = _logits(_final_norm(x[:, -1:], params, "final_norm"), params)   # (B, 1, V)
        next_token = logits[:, -1].argmax(-1)                         # (B,)
        generated.append(next_token)
        keys = np.concatenate([keys, next_token[:, None] != pad_id], axis=1)
        x = _embed_at(params, next_token[:, None], (lengths + step)[:, None], positions)
    return np.stack(generated, axis=1)
