"""The Transformer decoder block, vectorised mirror of ``steps.decoder``."""

from typing import NamedTuple

from attention_from_scratch.common.masks import add_head_axis, decoder_self_mask
from attention_from_scratch.common.params import (
    DECODER_LAYOUTS,
    check_norm,
    sub_params,
    with_prefix,
)
from attention_from_scratch.common.validate import check_params, check_sequence_pair
from attention_from_scratch.core.feed_forward import feed_forward_backward, feed_forward_forward
from attention_from_scratch.core.multi_head import (
    multi_head_attention_backward,
    multi_head_attention_forward,
    self_multi_head_attention_backward,
    self_multi_head_attention_forward,
)
from attention_from_scratch.core.residual import (
    ResidualCache,
    residual_backward,
    residual_forward,
)


class DecoderBlockCache(NamedTuple):
    self_attn: ResidualCache
    cross_attn: ResidualCache
    ffn: ResidualCache


def decoder_block_forward(y, memory, params, *, n_heads, self_mask=None, memory_mask=None,
                          norm="post", activation="relu"):
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
    y, memory = check_sequence_pair("y", y, "memory", memory, width="D", dtype=None)
    check_norm(norm)
    params = check_params("params", params, DECODER_LAYOUTS, sizes={"D": y.shape[-1]},
                          dtype=y.dtype)
    p = {name: sub_params(params, name)
         for name in ("self_attn", "ln1", "cross_attn", "ln2", "ffn", "ln3")}
    mask = add_head_axis(decoder_self_mask(y.shape[-2], self_mask), y.ndim)
    memory_mask = add_head_axis(memory_mask, y.ndim)

    def self_attention(u):
        return self_multi_head_attention_forward(u, p["self_attn"], n_heads=n_heads, mask=mask)

    def cross_attention(u):
        return multi_head_attention_forward(u, memory, p["cross_attn"], n_heads=n_heads,
                                            mask=memory_mask)

    def feed_forward(u):
        return feed_forward_forward(u, p["ffn"], activation=activation)

    h1, sa_cache = residual_forward(y, p["ln1"]["gamma"], p["ln1"]["beta"],
                                    sublayer=self_attention, norm=norm)       # (..., T, D)
    h2, ca_cache = residual_forward(h1, p["ln2"]["gamma"], p["ln2"]["beta"],
                                    sublayer=cross_attention, norm=norm)      # (..., T, D)
    out, ffn_cache = residual_forward(h2, p["ln3"]["gamma"], p["ln3"]["beta"],
                                      sublayer=feed_forward, norm=norm)       # (..., T, D)
    return out, DecoderBlockCache(sa_cache, ca_cache, ffn_cache)


def decoder_block_backward(dout, cache):
    """Gradients ``(dy, dmemory, dparams)`` of ``decoder_block_forward``."""
    grads = {}
    dh2, grads["ln3.gamma"], grads["ln3.beta"], (dffn,) = residual_backward(
        dout, cache.ffn, sublayer_backward=feed_forward_backward)
    dh1, grads["ln2.gamma"], grads["ln2.beta"], (dmemory, dcross) = residual_backward(
        dh2, cache.cross_attn, sublayer_backward=multi_head_attention_backward)
    dy, grads["ln1.gamma"], grads["ln1.beta"], (dself,) = residual_backward(
        dh1, cache.self_attn, sublayer_backward=self_multi_head_attention_backward)
    grads.update({**with_prefix("self_attn", dself), **with_prefix("cross_attn", dcross),
                  **with_prefix("ffn", dffn)})
    return dy, dmemory, grads
