"""The Transformer encoder block, vectorised mirror of ``steps.encoder``.

The block itself has no loops; the speed comes from ``core``'s
multi-head attention, layer norm and feed-forward network.
"""

from typing import NamedTuple

from attention_from_scratch.common.masks import add_head_axis
from attention_from_scratch.common.params import (
    ENCODER_LAYOUTS,
    check_norm,
    sub_params,
    with_prefix,
)
from attention_from_scratch.common.validate import check_input_and_params
from attention_from_scratch.core.feed_forward import feed_forward_backward, feed_forward_forward
from attention_from_scratch.core.multi_head import (
    self_multi_head_attention_backward,
    self_multi_head_attention_forward,
)
from attention_from_scratch.core.residual import (
    ResidualCache,
    residual_backward,
    residual_forward,
)


class EncoderBlockCache(NamedTuple):
    attn: ResidualCache
    ffn: ResidualCache


def encoder_block_forward(x, params, *, n_heads, mask=None, norm="post", activation="relu"):
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
    x, params = check_input_and_params(x, params, ENCODER_LAYOUTS, min_ndim=2,
                                       layout="(..., T, D)", dtype=None)
    check_norm(norm)
    mask = add_head_axis(mask, x.ndim)      # one mask per sequence
    attn, ln1, ffn, ln2 = (sub_params(params, p) for p in ("attn", "ln1", "ffn", "ln2"))

    def self_attention(u):
        return self_multi_head_attention_forward(u, attn, n_heads=n_heads, mask=mask)

    def feed_forward(u):
        return feed_forward_forward(u, ffn, activation=activation)

    h, attn_cache = residual_forward(x, ln1["gamma"], ln1["beta"], sublayer=self_attention,
                                     norm=norm)                                # (..., T, D)
    out, ffn_cache = residual_forward(h, ln2["gamma"], ln2["beta"], sublayer=feed_forward,
                                      norm=norm)                               # (..., T, D)
    return out, EncoderBlockCache(attn_cache, ffn_cache)


def encoder_block_backward(dout, cache):
    """Gradients ``(dx, dparams)`` of ``encoder_block_forward``."""
    dh, dgamma2, dbeta2, (dffn,) = residual_backward(
        dout, cache.ffn, sublayer_backward=feed_forward_backward)
    dx, dgamma1, dbeta1, (dattn,) = residual_backward(
        dh, cache.attn, sublayer_backward=self_multi_head_attention_backward)
    return dx, {**with_prefix("attn", dattn),
                "ln1.gamma": dgamma1, "ln1.beta": dbeta1,
                **with_prefix("ffn", dffn),
                "ln2.gamma": dgamma2, "ln2.beta": dbeta2}
