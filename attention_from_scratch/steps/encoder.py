"""The Transformer encoder block: attention, feed-forward, residuals, norms (Chapter 5).

Post-norm, as in the original Transformer (Vaswani et al. 2017, section
3.1), each sub-layer is wrapped as ``LayerNorm(x + sublayer(x))``::

    h   = LayerNorm_1(x + MultiHeadSelfAttention(x))
    out = LayerNorm_2(h + FFN(h))

Pre-norm (``norm="pre"``, as in GPT-2 and most models since) normalises
the sub-layer's input instead and leaves the residual path untouched::

    h   = x + MultiHeadSelfAttention(LayerNorm_1(x))
    out = h + FFN(LayerNorm_2(h))

Parameters are one flat dict with prefixed keys, so the gradient checker
and an optimiser see plain arrays: ``attn.w_q`` ... ``attn.b_o``,
``ln1.gamma``, ``ln1.beta``, ``ffn.w_1`` ... ``ffn.b_2``, ``ln2.gamma``,
``ln2.beta`` (:mod:`attention_from_scratch.block_params`).
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch._validate import as_float_array, check_ndim, check_params
from attention_from_scratch.block_params import (
    ENCODER_LAYOUTS,
    check_norm,
    init_norm_params,
    sub_params,
    with_prefix,
)
from attention_from_scratch.steps.feed_forward import (
    FeedForwardCache,
    feed_forward_backward,
    feed_forward_forward,
    init_feed_forward_params,
)
from attention_from_scratch.steps.layer_norm import (
    LayerNormCache,
    layer_norm_backward,
    layer_norm_forward,
)
from attention_from_scratch.steps.multi_head import (
    init_multi_head_params,
    self_multi_head_attention_backward,
    self_multi_head_attention_forward,
)


class EncoderBlockCache(NamedTuple):
    attn: tuple          # the multi-head self-attention's cache
    ln1: LayerNormCache
    ffn: FeedForwardCache
    ln2: LayerNormCache
    norm: str


def encoder_block_forward(x, params, *, n_heads, mask=None, norm="post", activation="relu"):
    """One encoder block: bidirectional self-attention, then feed-forward.

    Parameters
    ----------
    x : (..., T, D) array_like
    params : dict
        Flat prefixed keys (module docstring); :func:`init_encoder_params`.
    n_heads : int, keyword-only
        ``H``; must divide ``D``.
    mask : bool array_like, keyword-only, optional
        ``(T, T)``, ``(..., T, T)`` or ``(..., H, T, T)``, as in
        ``multi_head_attention_forward``; typically the padding mask
        ``padding_mask(lengths, T)``. ``None``: every position sees every
        other (bidirectional).
    norm : {"post", "pre"}, keyword-only
    activation : {"relu", "gelu"}, keyword-only

    Returns
    -------
    out : (..., T, D) ndarray, float64
    cache : EncoderBlockCache

    See Also
    --------
    encoder_block_backward, attention_from_scratch.steps.decoder

    Notes
    -----
    With ``mask=causal_mask(T)`` this is the block of a decoder-only
    model (GPT): the same computation, only the mask differs (Chapter 5).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> params = init_encoder_params(4, 6, rng=rng)
    >>> out, cache = encoder_block_forward(rng.normal(size=(2, 3, 4)), params, n_heads=2)
    >>> out.shape == (2, 3, 4) and bool(np.allclose(out.mean(axis=-1), 0))   # post-norm
    True
    """
    x = as_float_array("x", x, dtype=np.float64)
    check_ndim("x", x, 2, "(..., T, D)")
    check_norm(norm)
    params = check_params("params", params, ENCODER_LAYOUTS, sizes={"D": x.shape[-1]},
                          dtype=np.float64)
    attn, ln1, ffn, ln2 = (sub_params(params, p) for p in ("attn", "ln1", "ffn", "ln2"))
    if norm == "post":
        a, attn_cache = self_multi_head_attention_forward(x, attn, n_heads=n_heads,
                                                          mask=mask)             # (..., T, D)
        h, ln1_cache = layer_norm_forward(x + a, ln1["gamma"], ln1["beta"])      # (..., T, D)
        f, ffn_cache = feed_forward_forward(h, ffn, activation=activation)       # (..., T, D)
        out, ln2_cache = layer_norm_forward(h + f, ln2["gamma"], ln2["beta"])    # (..., T, D)
    else:
        n1, ln1_cache = layer_norm_forward(x, ln1["gamma"], ln1["beta"])
        a, attn_cache = self_multi_head_attention_forward(n1, attn, n_heads=n_heads,
                                                          mask=mask)
        h = x + a
        n2, ln2_cache = layer_norm_forward(h, ln2["gamma"], ln2["beta"])
        f, ffn_cache = feed_forward_forward(n2, ffn, activation=activation)
        out = h + f
    return out, EncoderBlockCache(attn_cache, ln1_cache, ffn_cache, ln2_cache, norm)


def encoder_block_backward(dout, cache):
    """Gradients ``(dx, dparams)`` of ``encoder_block_forward``.

    The forward read bottom-up. Each residual ``u + sublayer(u)`` hands
    ``dout`` to ``u`` twice: straight through, and through the sub-layer.
    """
    dout = as_float_array("dout", dout, dtype=np.float64)
    if cache.norm == "post":
        dsum2, dgamma2, dbeta2 = layer_norm_backward(dout, cache.ln2)
        dh_ffn, dffn = feed_forward_backward(dsum2, cache.ffn)
        dh = dsum2 + dh_ffn                          # residual: h reaches out by two paths
        dsum1, dgamma1, dbeta1 = layer_norm_backward(dh, cache.ln1)
        dx_attn, dattn = self_multi_head_attention_backward(dsum1, cache.attn)
        dx = dsum1 + dx_attn                         # residual: x reaches h by two paths
    else:
        dn2, dffn = feed_forward_backward(dout, cache.ffn)
        dh_norm, dgamma2, dbeta2 = layer_norm_backward(dn2, cache.ln2)
        dh = dout + dh_norm                          # residual: the path around FFN
        dn1, dattn = self_multi_head_attention_backward(dh, cache.attn)
        dx_norm, dgamma1, dbeta1 = layer_norm_backward(dn1, cache.ln1)
        dx = dh + dx_norm                            # residual: the path around attention
    return dx, {**with_prefix("attn", dattn),
                "ln1.gamma": dgamma1, "ln1.beta": dbeta1,
                **with_prefix("ffn", dffn),
                "ln2.gamma": dgamma2, "ln2.beta": dbeta2}


def init_encoder_params(d_model, d_ff, *, rng):
    """Parameters of one encoder block, with the keys of ``ENCODER_LAYOUTS``.

    Parameters
    ----------
    d_model, d_ff : int
        ``D`` and ``F`` (the original Transformer: ``F = 4 D``).
    rng : numpy.random.Generator, keyword-only
    """
    return {**with_prefix("attn", init_multi_head_params(d_model, rng=rng)),
            **with_prefix("ln1", init_norm_params(d_model)),
            **with_prefix("ffn", init_feed_forward_params(d_model, d_ff, rng=rng)),
            **with_prefix("ln2", init_norm_params(d_model))}
