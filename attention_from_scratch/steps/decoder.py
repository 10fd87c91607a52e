"""The Transformer decoder block: masked self-attention, cross-attention, FFN (Chapter 5).

Post-norm, as in Vaswani et al. (2017, section 3.1)::

    h1  = LayerNorm_1(y  + MultiHeadSelfAttention(y, causal))
    h2  = LayerNorm_2(h1 + MultiHeadAttention(h1, memory))     # cross-attention
    out = LayerNorm_3(h2 + FFN(h2))

Cross-attention takes its queries from the decoder (``h1``) and its keys
and values from ``memory``, the encoder's output: each target position
reads the source sentence. ``norm="pre"`` moves each LayerNorm onto the
sub-layer's input, as in the encoder; the wrapping is
:mod:`attention_from_scratch.steps.residual`. Parameters: ``self_attn.*``,
``ln1.*``, ``cross_attn.*``, ``ln2.*``, ``ffn.*``, ``ln3.*``
(:mod:`attention_from_scratch.common.params`).
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.masks import decoder_self_mask
from attention_from_scratch.common.params import DECODER_LAYOUTS, sub_params, with_prefix
from attention_from_scratch.common.validate import check_decoder_block_inputs, check_gradient
from attention_from_scratch.steps.feed_forward import _feed_forward_backward, _feed_forward_forward
from attention_from_scratch.steps.multi_head import (
    _multi_head_attention_backward,
    _multi_head_attention_forward,
    _self_multi_head_attention_backward,
    _self_multi_head_attention_forward,
)
from attention_from_scratch.steps.residual import (
    ResidualCache,
    _residual_backward,
    _residual_forward,
)


class DecoderBlockCache(NamedTuple):
    self_attn: ResidualCache    # causal self-attention with ln1
    cross_attn: ResidualCache   # cross-attention to the memory with ln2
    ffn: ResidualCache          # feed-forward network with ln3


def decoder_block_forward(y, memory, params, *, n_heads, self_mask=None, memory_mask=None,
                          norm="post", activation="relu", self_bias=None):
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
        combined with the causal mask. ``(..., T, T)`` is one mask per
        sequence, even when ``B = H``.
    memory_mask : bool array_like, keyword-only, optional
        ``(..., T, S)`` or ``(..., H, T, S)``: which source positions may
        be read (``padding_mask(source_lengths, S)``).
    norm : {"post", "pre"}, keyword-only
    activation : {"relu", "gelu"}, keyword-only
    self_bias : float array_like, keyword-only, optional
        Added to the self-attention's scores (per head ``(..., H, T, T)``,
        e.g. ALiBi's); the cross-attention gets none. A constant.

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
    >>> from attention_from_scratch.common.params import init_decoder_params
    >>> params = init_decoder_params(4, 6, rng=rng)
    >>> y, memory = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4))
    >>> out, cache = decoder_block_forward(y, memory, params, n_heads=2)
    >>> out.shape == (2, 3, 4)
    True
    """
    y, memory, params, self_mask, memory_mask, self_bias = check_decoder_block_inputs(
        y, memory, params, n_heads, self_mask, memory_mask, self_bias, norm, activation,
        layouts=DECODER_LAYOUTS, dtype=np.float64)
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

    def cross_attention(u):     # queries from the decoder, keys and values from the memory
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
    """Gradients ``(dy, dmemory, dparams)`` of ``decoder_block_forward``.

    The sub-layers read bottom-up, each ``residual_backward`` adding the
    gradient around its sub-layer to the one through it. ``dmemory`` comes
    from the cross-attention alone; inside it, memory fed both the keys
    and the values, so it is the sum of the two paths.
    """
    dout = check_gradient("dout", dout, cache.ffn.ln.x_hat.shape, "(..., T, D)", dtype=np.float64)
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
