"""The Transformer decoder block: masked self-attention, cross-attention, FFN (Chapter 5).

Post-norm, as in Vaswani et al. (2017, section 3.1)::

    h1  = LayerNorm_1(y  + MultiHeadSelfAttention(y, causal))
    h2  = LayerNorm_2(h1 + MultiHeadAttention(h1, memory))     # cross-attention
    out = LayerNorm_3(h2 + FFN(h2))

Cross-attention takes its queries from the decoder (``h1``) and its keys
and values from ``memory``, the encoder's output: each target position
reads the source sentence. ``norm="pre"`` moves each LayerNorm onto the
sub-layer's input, as in the encoder. Parameters: ``self_attn.*``,
``ln1.*``, ``cross_attn.*``, ``ln2.*``, ``ffn.*``, ``ln3.*``
(:mod:`attention_from_scratch.block_params`).
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch._validate import as_float_array, check_ndim, check_params
from attention_from_scratch.block_params import (
    DECODER_LAYOUTS,
    check_norm,
    init_norm_params,
    sub_params,
    with_prefix,
)
from attention_from_scratch.masks import causal_mask
from attention_from_scratch.steps.feed_forward import (
    feed_forward_backward,
    feed_forward_forward,
    init_feed_forward_params,
)
from attention_from_scratch.steps.layer_norm import layer_norm_backward, layer_norm_forward
from attention_from_scratch.steps.multi_head import (
    init_multi_head_params,
    multi_head_attention_backward,
    multi_head_attention_forward,
    self_multi_head_attention_backward,
    self_multi_head_attention_forward,
)


class DecoderBlockCache(NamedTuple):
    self_attn: tuple
    ln1: tuple
    cross_attn: tuple
    ln2: tuple
    ffn: tuple
    ln3: tuple
    norm: str


def decoder_self_mask(t, self_mask=None):
    """The causal ``(T, T)`` mask, AND the caller's mask if one is given.

    A decoder must never see the future, so the block applies the causal
    mask itself; ``self_mask`` can only take more away (padding).
    """
    causal = causal_mask(t)                                        # (T, T)
    return causal if self_mask is None else causal & np.asarray(self_mask)


def decoder_block_forward(y, memory, params, *, n_heads, self_mask=None, memory_mask=None,
                          norm="post", activation="relu"):
    """One decoder block: masked self-attention, cross-attention, feed-forward.

    Parameters
    ----------
    y : (..., T, D) array_like
        The target sequence so far (shifted right during training).
    memory : (..., S, D) array_like
        The encoder's output for the source sequence.
    params : dict
        Flat prefixed keys; :func:`init_decoder_params`.
    n_heads : int, keyword-only
    self_mask : bool array_like, keyword-only, optional
        Extra restriction on self-attention, ``(..., T, T)`` or
        ``(..., H, T, T)`` (e.g. ``padding_mask(lengths, T)``); always
        combined with the causal mask.
    memory_mask : bool array_like, keyword-only, optional
        ``(..., T, S)`` or ``(..., H, T, S)``: which source positions may
        be read (``padding_mask(source_lengths, S)``).
    norm : {"post", "pre"}, keyword-only
    activation : {"relu", "gelu"}, keyword-only

    Returns
    -------
    out : (..., T, D) ndarray, float64
    cache : DecoderBlockCache

    See Also
    --------
    decoder_block_backward, attention_from_scratch.steps.encoder

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> params = init_decoder_params(4, 6, rng=rng)
    >>> y, memory = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    >>> out, cache = decoder_block_forward(y, memory, params, n_heads=2)
    >>> out.shape == (2, 3, 4)
    True
    """
    y = as_float_array("y", y, dtype=np.float64)
    memory = as_float_array("memory", memory, dtype=np.float64)
    check_ndim("y", y, 2, "(..., T, D)")
    check_ndim("memory", memory, 2, "(..., S, D)")
    if memory.shape[:-2] != y.shape[:-2] or memory.shape[-1] != y.shape[-1]:
        raise ValueError(f"memory must have shape (..., S, D) = {y.shape[:-2] + ('S',)} + "
                         f"({y.shape[-1]},) to match y of shape {y.shape}, "
                         f"got shape {memory.shape}")
    check_norm(norm)
    params = check_params("params", params, DECODER_LAYOUTS, sizes={"D": y.shape[-1]},
                          dtype=np.float64)
    p = {name: sub_params(params, name)
         for name in ("self_attn", "ln1", "cross_attn", "ln2", "ffn", "ln3")}
    mask = decoder_self_mask(y.shape[-2], self_mask)
    if norm == "post":
        a, sa_cache = self_multi_head_attention_forward(y, p["self_attn"], n_heads=n_heads,
                                                        mask=mask)             # (..., T, D)
        h1, ln1_cache = layer_norm_forward(y + a, **p["ln1"])
        c, ca_cache = multi_head_attention_forward(h1, memory, p["cross_attn"],
                                                   n_heads=n_heads, mask=memory_mask)
        h2, ln2_cache = layer_norm_forward(h1 + c, **p["ln2"])
        f, ffn_cache = feed_forward_forward(h2, p["ffn"], activation=activation)
        out, ln3_cache = layer_norm_forward(h2 + f, **p["ln3"])
    else:
        n1, ln1_cache = layer_norm_forward(y, **p["ln1"])
        a, sa_cache = self_multi_head_attention_forward(n1, p["self_attn"], n_heads=n_heads,
                                                        mask=mask)
        h1 = y + a
        n2, ln2_cache = layer_norm_forward(h1, **p["ln2"])
        c, ca_cache = multi_head_attention_forward(n2, memory, p["cross_attn"],
                                                   n_heads=n_heads, mask=memory_mask)
        h2 = h1 + c
        n3, ln3_cache = layer_norm_forward(h2, **p["ln3"])
        f, ffn_cache = feed_forward_forward(n3, p["ffn"], activation=activation)
        out = h2 + f
    return out, DecoderBlockCache(sa_cache, ln1_cache, ca_cache, ln2_cache, ffn_cache,
                                  ln3_cache, norm)


def decoder_block_backward(dout, cache):
    """Gradients ``(dy, dmemory, dparams)`` of ``decoder_block_forward``.

    ``dmemory`` comes from the cross-attention alone; inside it, memory
    fed both the keys and the values, so it is the sum of the two paths.
    """
    dout = as_float_array("dout", dout, dtype=np.float64)
    grads = {}
    if cache.norm == "post":
        dsum3, grads["ln3.gamma"], grads["ln3.beta"] = layer_norm_backward(dout, cache.ln3)
        dh2_ffn, dffn = feed_forward_backward(dsum3, cache.ffn)
        dh2 = dsum3 + dh2_ffn                        # residual around the FFN
        dsum2, grads["ln2.gamma"], grads["ln2.beta"] = layer_norm_backward(dh2, cache.ln2)
        dh1_cross, dmemory, dcross = multi_head_attention_backward(dsum2, cache.cross_attn)
        dh1 = dsum2 + dh1_cross                      # residual around cross-attention
        dsum1, grads["ln1.gamma"], grads["ln1.beta"] = layer_norm_backward(dh1, cache.ln1)
        dy_attn, dself = self_multi_head_attention_backward(dsum1, cache.self_attn)
        dy = dsum1 + dy_attn                         # residual around self-attention
    else:
        dn3, dffn = feed_forward_backward(dout, cache.ffn)
        dh2_norm, grads["ln3.gamma"], grads["ln3.beta"] = layer_norm_backward(dn3, cache.ln3)
        dh2 = dout + dh2_norm
        dn2, dmemory, dcross = multi_head_attention_backward(dh2, cache.cross_attn)
        dh1_norm, grads["ln2.gamma"], grads["ln2.beta"] = layer_norm_backward(dn2, cache.ln2)
        dh1 = dh2 + dh1_norm
        dn1, dself = self_multi_head_attention_backward(dh1, cache.self_attn)
        dy_norm, grads["ln1.gamma"], grads["ln1.beta"] = layer_norm_backward(dn1, cache.ln1)
        dy = dh1 + dy_norm
    grads.update({**with_prefix("self_attn", dself), **with_prefix("cross_attn", dcross),
                  **with_prefix("ffn", dffn)})
    return dy, dmemory, grads


def init_decoder_params(d_model, d_ff, *, rng):
    """Parameters of one decoder block, with the keys of ``DECODER_LAYOUTS``."""
    return {**with_prefix("self_attn", init_multi_head_params(d_model, rng=rng)),
            **with_prefix("ln1", init_norm_params(d_model)),
            **with_prefix("cross_attn", init_multi_head_params(d_model, rng=rng)),
            **with_prefix("ln2", init_norm_params(d_model)),
            **with_prefix("ffn", init_feed_forward_params(d_model, d_ff, rng=rng)),
            **with_prefix("ln3", init_norm_params(d_model))}
