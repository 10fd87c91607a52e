"""Residual connections with their layer norm, mirror of ``steps.residual``.

The wrapper has no loops of its own; it keeps the dtype of ``u`` and uses
``core``'s layer norm.
"""

from typing import NamedTuple

from attention_from_scratch.common.validate import check_gradient, check_residual_inputs
from attention_from_scratch.core.layer_norm import (
    LayerNormCache,
    _layer_norm_backward,
    _layer_norm_forward,
)


class ResidualCache(NamedTuple):
    sublayer: tuple
    ln: LayerNormCache
    norm: str


def residual_forward(u, gamma, beta, *, sublayer, norm="post"):
    """``LayerNorm(u + sublayer(u))`` or ``u + sublayer(LayerNorm(u))``.

    Same contract as ``steps.residual.residual_forward``; dtype of ``u``
    kept.

    Examples
    --------
    >>> import numpy as np
    >>> u = np.float32([[1, 2, 6], [0, -3, 3]])
    >>> def double(v):
    ...     return 2 * v, None
    >>> out, _ = residual_forward(u, np.ones(3), np.zeros(3), sublayer=double)
    >>> out.dtype == np.float32 and bool(np.allclose(out.mean(axis=-1), 0, atol=1e-6))
    True
    """
    u, gamma, beta, sublayer = check_residual_inputs(u, gamma, beta, norm, sublayer,
                                                     dtype=None)
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
    """Gradients ``(du, dgamma, dbeta, dsublayer)`` of ``residual_forward``."""
    dout = check_gradient("dout", dout, cache.ln.x_hat.shape, "(..., T, D)",
                          dtype=cache.ln.x_hat.dtype)
    return _residual_backward(dout, cache, sublayer_backward=sublayer_backward)


def _residual_backward(dout, cache, *, sublayer_backward):
    if cache.norm == "post":
        dsum, dgamma, dbeta = _layer_norm_backward(dout, cache.ln)
        du_sublayer, *dsublayer = sublayer_backward(dsum, cache.sublayer)
        du = dsum + du_sublayer          # residual
    else:
        dn, *dsublayer = sublayer_backward(dout, cache.sublayer)
        du_norm, dgamma, dbeta = _layer_norm_backward(dn, cache.ln)
        du = dout + du_norm              # residual
    return du, dgamma, dbeta, tuple(dsublayer)
