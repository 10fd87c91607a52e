"""The Transformer encoder block: attention, feed-forward, residuals, norms (Chapter 5).

Post-norm, as in the original Transformer (Vaswani et al. 2017, section
3.1), each sub-layer is wrapped as ``LayerNorm(x + sublayer(x))``::

    h   = LayerNorm_1(x + MultiHeadSelfAttention(x))
    out = LayerNorm_2(h + FFN(h))

Pre-norm (``norm="pre"``, as in GPT-2 and most models since) normalises
the sub-layer's input instead and leaves the residual path untouched::

    h   = x + MultiHeadSelfAttention(LayerNorm_1(x))
    out = h + FFN(LayerNorm_2(h))

The wrapping is :mod:`attention_from_scratch.steps.residual`. Parameters
are one flat dict with prefixed keys, so the gradient checker and an
optimiser see plain arrays: ``attn.w_q`` ... ``attn.b_o``, ``ln1.gamma``,
``ln1.beta``, ``ffn.w_1`` ... ``ffn.b_2``, ``ln2.gamma``, ``ln2.beta``
(:mod:`attention_from_scratch.common.params`).
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.params import ENCODER_LAYOUTS, sub_params, with_prefix
from attention_from_scratch.common.validate import check_encoder_block_inputs, check_gradient
from attention_from_scratch.steps.feed_forward import _feed_forward_backward, _feed_forward_forward
from attention_from_scratch.steps.multi_head import (
    _self_multi_head_attention_backward,
    _self_multi_head_attention_forward,
)
from attention_from_scratch.steps.residual import (
    ResidualCache,
    _residual_backward,
    _residual_forward,
)


class EncoderBlockCache(NamedTuple):
    attn: ResidualCache   # self-attention (cache.attn.sublayer) with ln1
    ffn: ResidualCache    # feed-forward network with ln2


def encoder_block_forward(x, params, *, n_heads, mask=None, norm="post", activation="relu",
                          bias=None):
    """One encoder block: bidirectional self-attention, then feed-forward.

    Parameters
    ----------
    x : (..., T, D) array_like
    params : dict
        Flat prefixed keys (module docstring); :func:`init_encoder_params`.
    n_heads : int, keyword-only
        ``H``; must divide ``D``.
    mask : bool array_like, keyword-only, optional
        ``(T, T)``, ``(..., T, T)`` (one per sequence, even when
        ``B = H``) or ``(..., H, T, T)``; typically the padding mask
        ``padding_mask(lengths, T)``. ``None``: every position sees every
        other (bidirectional).
    norm : {"post", "pre"}, keyword-only
    activation : {"relu", "gelu"}, keyword-only
    bias : float array_like, keyword-only, optional
        Added to the self-attention's scores, as
        ``self_multi_head_attention_forward`` takes it (per head:
        ``(..., H, T, T)``, e.g. ``alibi_bias(T, n_heads=H)[None]``).
        A constant: no gradient.

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
    >>> from attention_from_scratch.common.params import init_encoder_params
    >>> params = init_encoder_params(4, 6, rng=rng)
    >>> out, cache = encoder_block_forward(rng.normal(size=(2, 3, 4)), params, n_heads=2)
    >>> out.shape == (2, 3, 4) and bool(np.allclose(out.mean(axis=-1), 0))   # post-norm
    True
    """
    x, params, mask, bias = check_encoder_block_inputs(
        x, params, n_heads, mask, bias, norm, activation, layouts=ENCODER_LAYOUTS,
        dtype=np.float64)
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
    """Gradients ``(dx, dparams)`` of ``encoder_block_forward``.

    The forward read bottom-up: the feed-forward sub-layer first, then
    self-attention. Each ``residual_backward`` adds the gradient that went
    around its sub-layer to the one that went through it.
    """
    dout = check_gradient("dout", dout, cache.ffn.ln.x_hat.shape, "(..., T, D)", dtype=np.float64)
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
