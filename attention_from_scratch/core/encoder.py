"""The Transformer encoder block, vectorised mirror of ``steps.encoder``.

The block itself has no loops; the speed comes from ``core``'s
multi-head attention, layer norm and feed-forward network.
"""

from typing import NamedTuple

from attention_from_scratch.common.params import ENCODER_LAYOUTS, sub_params, with_prefix
from attention_from_scratch.common.validate import check_encoder_block_inputs, check_gradient
from attention_from_scratch.core.feed_forward import _feed_forward_backward, _feed_forward_forward
from attention_from_scratch.core.multi_head import (
    _self_multi_head_attention_backward,
    _self_multi_head_attention_forward,
)
from attention_from_scratch.core.residual import (
    ResidualCache,
    _residual_backward,
    _residual_forward,
)


class EncoderBlockCache(NamedTuple):
    attn: ResidualCache
    ffn: ResidualCache


def encoder_block_forward(x, params, *, n_heads, mask=None, norm="post", activation="relu",
                          bias=None):
    """One encoder block; same contract as ``steps.encoder``, dtype of ``x`` kept.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> from attention_from_scratch.common.params import init_encoder_params
    >>> params = init_encoder_params(4, 6, rng=rng)
    >>> x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    >>> out, _ = encoder_block_forward(x, params, n_heads=2, norm="pre")
    >>> out.dtype == np.float32 and out.shape == (2, 3, 4)
    True
    """
    x, params, mask, bias = check_encoder_block_inputs(
        x, params, n_heads, mask, bias, norm, activation, layouts=ENCODER_LAYOUTS, dtype=None)
    return _encoder_block_forward(x, params, n_heads=n_heads, mask=mask, norm=norm,
                                  activation=activation, bias=bias)


def _encoder_block_forward(x, params, *, n_heads, mask, norm, activation, bias):
    attn, ln1, ffn, ln2 = (sub_params(params, p) for p in ("attn", "ln1", "ffn", "ln2"))

    def self_attention(u):
        return _self_multi_head_attention_forward(u, attn, n_heads=n_heads, mask=mask,
                                                  bias=bias)

    def feed_forward(u):
        return _feed_forward_forward(u, ffn, activation=activation)

    h, attn_cache = _residual_forward(x, ln1["gamma"], ln1["beta"], sublayer=self_attention,
                                      norm=norm)                               # (..., T, D)
    out, ffn_cache = _residual_forward(h, ln2["gamma"], ln2["beta"], sublayer=feed_forward,
                                       norm=norm)                              # (..., T, D)
    return out, EncoderBlockCache(attn_cache, ffn_cache)


def encoder_block_backward(dout, cache):
    """Gradients ``(dx, dparams)`` of ``encoder_block_forward``."""
    dout = check_gradient("dout", dout, cache.ffn.ln.x_hat.shape, "(..., T, D)",
                          dtype=cache.ffn.ln.x_hat.dtype)
    return _encoder_block_backward(dout, cache)


def _encoder_block_backward(dout, cache):
    dh, dgamma2, dbeta2, (dffn,) = _residual_backward(
        dout, cache.ffn, sublayer_backward=_feed_forward_backward)
    dx, dgamma1, dbeta1, (dattn,) = _residual_backward(
        dh, cache.attn, sublayer_backward=_self_multi_head_attention_backward)
    return dx, {**with_prefix("attn", dattn),
                "ln1.gamma": dgamma1, "ln1.beta": dbeta1,
                **with_prefix("ffn", dffn),
                "ln2.gamma": dgamma2, "ln2.beta": dbeta2}
