"""The Transformer encoder block, vectorised mirror of ``steps.encoder``.

The block itself has no loops; the speed comes from ``core``'s
multi-head attention, layer norm and feed-forward network.
"""

from typing import NamedTuple

from attention_from_scratch._validate import as_float_array, check_ndim, check_params
from attention_from_scratch.block_params import (
    ENCODER_LAYOUTS,
    check_norm,
    init_norm_params,
    sub_params,
    with_prefix,
)
from attention_from_scratch.core.feed_forward import (
    FeedForwardCache,
    feed_forward_backward,
    feed_forward_forward,
    init_feed_forward_params,
)
from attention_from_scratch.core.layer_norm import (
    LayerNormCache,
    layer_norm_backward,
    layer_norm_forward,
)
from attention_from_scratch.core.multi_head import (
    init_multi_head_params,
    self_multi_head_attention_backward,
    self_multi_head_attention_forward,
)


class EncoderBlockCache(NamedTuple):
    attn: tuple
    ln1: LayerNormCache
    ffn: FeedForwardCache
    ln2: LayerNormCache
    norm: str


def encoder_block_forward(x, params, *, n_heads, mask=None, norm="post", activation="relu"):
    """One encoder block; same contract as ``steps.encoder``, dtype of ``x`` kept.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> params = init_encoder_params(4, 6, rng=rng)
    >>> x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    >>> out, _ = encoder_block_forward(x, params, n_heads=2, norm="pre")
    >>> out.dtype == np.float32 and out.shape == (2, 3, 4)
    True
    """
    x = as_float_array("x", x)
    check_ndim("x", x, 2, "(..., T, D)")
    check_norm(norm)
    params = check_params("params", params, ENCODER_LAYOUTS, sizes={"D": x.shape[-1]},
                          dtype=x.dtype)
    attn, ln1, ffn, ln2 = (sub_params(params, p) for p in ("attn", "ln1", "ffn", "ln2"))
    if norm == "post":
        a, attn_cache = self_multi_head_attention_forward(x, attn, n_heads=n_heads,
                                                          mask=mask)             # (..., T, D)
        h, ln1_cache = layer_norm_forward(x + a, ln1["gamma"], ln1["beta"])
        f, ffn_cache = feed_forward_forward(h, ffn, activation=activation)
        out, ln2_cache = layer_norm_forward(h + f, ln2["gamma"], ln2["beta"])
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
    """Gradients ``(dx, dparams)`` of ``encoder_block_forward``."""
    dout = as_float_array("dout", dout, dtype=cache.ln1.x_hat.dtype)
    if cache.norm == "post":
        dsum2, dgamma2, dbeta2 = layer_norm_backward(dout, cache.ln2)
        dh_ffn, dffn = feed_forward_backward(dsum2, cache.ffn)
        dh = dsum2 + dh_ffn                          # residual
        dsum1, dgamma1, dbeta1 = layer_norm_backward(dh, cache.ln1)
        dx_attn, dattn = self_multi_head_attention_backward(dsum1, cache.attn)
        dx = dsum1 + dx_attn                         # residual
    else:
        dn2, dffn = feed_forward_backward(dout, cache.ffn)
        dh_norm, dgamma2, dbeta2 = layer_norm_backward(dn2, cache.ln2)
        dh = dout + dh_norm                          # residual
        dn1, dattn = self_multi_head_attention_backward(dh, cache.attn)
        dx_norm, dgamma1, dbeta1 = layer_norm_backward(dn1, cache.ln1)
        dx = dh + dx_norm                            # residual
    return dx, {**with_prefix("attn", dattn),
                "ln1.gamma": dgamma1, "ln1.beta": dbeta1,
                **with_prefix("ffn", dffn),
                "ln2.gamma": dgamma2, "ln2.beta": dbeta2}


def init_encoder_params(d_model, d_ff, *, rng):
    """Parameters of one encoder block (float64, as ``steps``)."""
    return {**with_prefix("attn", init_multi_head_params(d_model, rng=rng)),
            **with_prefix("ln1", init_norm_params(d_model)),
            **with_prefix("ffn", init_feed_forward_params(d_model, d_ff, rng=rng)),
            **with_prefix("ln2", init_norm_params(d_model))}
