"""Residual connections with their layer norm: one Transformer sub-layer (Chapter 5).

Vaswani et al. (2017, section 3.1) wrap every sub-layer, attention or the
feed-forward network, the same way: its output is
``LayerNorm(u + Sublayer(u))``. That is post-norm. Pre-norm (GPT-2,
Radford et al. 2019; Xiong et al. 2020) moves the layer norm onto the
sub-layer's input and leaves the residual path an identity::

    post:  out = LayerNorm(u + sublayer(u))
    pre:   out = u + sublayer(LayerNorm(u))

Either way ``u`` reaches ``out`` by two paths, around the sub-layer and
through it, so its gradient is the sum of two terms. The sub-layer comes
in as a function, so the encoder block, the decoder block and cached
decoding share this one definition.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_gradient, check_residual_inputs
from attention_from_scratch.steps.layer_norm import (
    LayerNormCache,
    _layer_norm_backward,
    _layer_norm_forward,
)


class ResidualCache(NamedTuple):
    sublayer: tuple       # the sub-layer's own cache
    ln: LayerNormCache
    norm: str


def residual_forward(u, gamma, beta, *, sublayer, norm="post"):
    """A sub-layer wrapped in a residual connection and a layer norm.

    Parameters
    ----------
    u : (..., T, D) array_like
    gamma, beta : (D,) array_like
        The layer norm's gain and bias.
    sublayer : callable, keyword-only
        ``sublayer(v) -> (s, cache)`` with ``s`` shaped like ``v``: e.g.
        self-attention with its parameters and mask already given.
    norm : {"post", "pre"}, keyword-only

    Returns
    -------
    out : (..., T, D) ndarray, float64
    cache : ResidualCache

    See Also
    --------
    residual_backward

    Examples
    --------
    A sub-layer that outputs zeros leaves pre-norm's residual path alone:

    >>> u = np.array([[1.0, 2.0, 6.0], [0.0, -3.0, 3.0]])
    >>> def silent(v):
    ...     return np.zeros_like(v), None
    >>> out, _ = residual_forward(u, np.ones(3), np.zeros(3), sublayer=silent, norm="pre")
    >>> bool(np.array_equal(out, u))
    True
    """
    u, gamma, beta, sublayer = check_residual_inputs(u, gamma, beta, norm, sublayer,
                                                     dtype=np.float64)
    return _residual_forward(u, gamma, beta, sublayer=sublayer, norm=norm)


def _residual_forward(u, gamma, beta, *, sublayer, norm):
    if norm == "post":
        s, sublayer_cache = sublayer(u)
        out, ln_cache = _layer_norm_forward(u + s, gamma, beta)
    else:
        n, ln_cache = _layer_norm_forward(u, gamma, beta)
        s, sublayer_cache = sublayer(n)
        out = u + s
    return out, ResidualCache(sublayer_cache, ln_cache, norm)


def residual_backward(dout, cache, *, sublayer_backward):
    """Gradients ``(du, dgamma, dbeta, dsublayer)`` of ``residual_forward``.

    Parameters
    ----------
    dout : (..., T, D) array_like
    cache : ResidualCache
    sublayer_backward : callable, keyword-only
        The sub-layer's backward, ``(ds, cache) -> (dv, *other)``: a tuple
        whose first gradient is for the sub-layer's input.

    Returns
    -------
    du : (..., T, D) ndarray
    dgamma, dbeta : (D,) ndarray
    dsublayer : tuple
        The sub-layer backward's other gradients in its own order (its
        parameters; for cross-attention the memory first).

    Notes
    -----
    Post-norm: ``du = dsum + J_sub^T dsum`` with ``dsum`` the layer norm's
    backward of ``dout``. Pre-norm: ``du = dout + J_LN^T J_sub^T dout``.
    The first term is the path around the sub-layer (Chapter 5).
    """
    dout = check_gradient("dout", dout, cache.ln.x_hat.shape, "(..., T, D)", dtype=np.float64)
    return _residual_backward(dout, cache, sublayer_backward=sublayer_backward)


def _residual_backward(dout, cache, *, sublayer_backward):
    if cache.norm == "post":
        # forward was: out = LayerNorm(u + s), s = sublayer(u)
        dsum, dgamma, dbeta = _layer_norm_backward(dout, cache.ln)
        du_sublayer, *dsublayer = sublayer_backward(dsum, cache.sublayer)
        du = dsum + du_sublayer          # residual: u reaches the sum by two paths
    else:
        # forward was: out = u + s, s = sublayer(LayerNorm(u))
        dn, *dsublayer = sublayer_backward(dout, cache.sublayer)
        du_norm, dgamma, dbeta = _layer_norm_backward(dn, cache.ln)
        du = dout + du_norm              # residual: the path around is the identity
    return du, dgamma, dbeta, tuple(dsublayer)
