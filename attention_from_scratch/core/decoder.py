"""The Transformer decoder block, vectorised mirror of ``steps.decoder``."""

from typing import NamedTuple

from attention_from_scratch.common.masks import decoder_self_mask
from attention_from_scratch.common.params import DECODER_LAYOUTS, sub_params, with_prefix
from attention_from_scratch.common.validate import check_decoder_block_inputs, check_gradient
from attention_from_scratch.core.feed_forward import _feed_forward_backward, _feed_forward_forward
from attention_from_scratch.core.multi_head import (
    _multi_head_attention_backward,
    _multi_head_attention_forward,
    _self_multi_head_attention_backward,
    _self_multi_head_attention_forward,
)
from attention_from_scratch.core.residual import (
    ResidualCache,
    _residual_backward,
    _residual_forward,
)


class DecoderBlockCache(NamedTuple):
    self_attn: ResidualCache
    cross_attn: ResidualCache
    ffn: ResidualCache


def decoder_block_forward(y, memory, params, *, n_heads, self_mask=None, memory_mask=None,
                          norm="post", activation="relu", self_bias=None):
    """One decoder block; same contract as ``steps.decoder``, dtype of ``y`` kept.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> from attention_from_scratch.common.params import init_decoder_params
    >>> params = init_decoder_params(4, 6, rng=rng)
    >>> y = rng.normal(size=(3, 4)).astype(np.float32)
    >>> out, _ = decoder_block_forward(y, rng.normal(size=(5, 4)), params, n_heads=2)
    >>> out.dtype == np.float32 and out.shape == (3, 4)
    True
    """
    y, memory, params, self_mask, memory_mask, self_bias = check_decoder_block_inputs(
        y, memory, params, n_heads, self_mask, memory_mask, self_bias, norm, activation,
        layouts=DECODER_LAYOUTS, dtype=None)
    return _decoder_block_forward(y, memory, params, n_heads=n_heads, self_mask=self_mask,
                                  memory_mask=memory_mask, norm=norm, activation=activation,
                                  self_bias=self_bias)


def _decoder_block_forward(y, memory, params, *, n_heads, self_mask, memory_mask, norm,
                           activation, self_bias):
    p = {name: sub_params(params, name)
         for name in ("self_attn", "ln1", "cross_attn", "ln2", "ffn", "ln3")}
    mask = decoder_self_mask(y.shape[-2], self_mask)          # (..., 1, T, T) or (T, T)

    def self_attention(u):
        return _self_multi_head_attention_forward(u, p["self_attn"], n_heads=n_heads,
                                                  mask=mask, bias=self_bias)

    def cross_attention(u):
        return _multi_head_attention_forward(u, memory, p["cross_attn"], n_heads=n_heads,
                                             mask=memory_mask, bias=None)

    def feed_forward(u):
        return _feed_forward_forward(u, p["ffn"], activation=activation)

    h1, sa_cache = _residual_forward(y, p["ln1"]["gamma"], p["ln1"]["beta"],
                                     sublayer=self_attention, norm=norm)      # (..., T, D)
    h2, ca_cache = _residual_forward(h1, p["ln2"]["gamma"], p["ln2"]["beta"],
                                     sublayer=cross_attention, norm=norm)     # (..., T, D)
    out, ffn_cache = _residual_forward(h2, p["ln3"]["gamma"], p["ln3"]["beta"],
                                       sublayer=feed_forward, norm=norm)      # (..., T, D)
    return out, DecoderBlockCache(sa_cache, ca_cache, ffn_cache)


def decoder_block_backward(dout, cache):
    """Gradients ``(dy, dmemory, dparams)`` of ``decoder_block_forward``."""
    dout = check_gradient("dout", dout, cache.ffn.ln.x_hat.shape, "(..., T, D)",
                          dtype=cache.ffn.ln.x_hat.dtype)
    return _decoder_block_backward(dout, cache)


def _decoder_block_backward(dout, cache):
    grads = {}
    dh2, grads["ln3.gamma"], grads["ln3.beta"], (dffn,) = _residual_backward(
        dout, cache.ffn, sublayer_backward=_feed_forward_backward)
    dh1, grads["ln2.gamma"], grads["ln2.beta"], (dmemory, dcross) = _residual_backward(
        dh2, cache.cross_attn, sublayer_backward=_multi_head_attention_backward)
    dy, grads["ln1.gamma"], grads["ln1.beta"], (dself,) = _residual_backward(
        dh1, cache.self_attn, sublayer_backward=_self_multi_head_attention_backward)
    grads.update({**with_prefix("self_attn", dself), **with_prefix("cross_attn", dcross),
                  **with_prefix("ffn", dffn)})
    return dy, dmemory, grads
