"""Layer normalisation, vectorised mirror of ``steps.layer_norm``."""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_gradient, check_layer_norm_inputs


class LayerNormCache(NamedTuple):
    x_hat: np.ndarray   # (..., D); kept rather than x and the mean, as in steps
    rstd: np.ndarray    # (..., 1)
    gamma: np.ndarray   # (D,)


def layer_norm_forward(x, gamma, beta, *, eps=1e-5):
    """``gamma * (x - mean) / sqrt(var + eps) + beta`` over the last axis.

    Same contract as ``steps.layer_norm.layer_norm_forward``; computes in
    the dtype of ``x``.

    Examples
    --------
    >>> x = np.float32([[1, 2, 6], [0, -3, 3]])
    >>> out, _ = layer_norm_forward(x, np.ones(3), np.zeros(3))
    >>> out.dtype == np.float32 and bool(np.allclose(out.mean(axis=-1), 0, atol=1e-6))
    True
    """
    x, gamma, beta, eps = check_layer_norm_inputs(x, gamma, beta, eps, dtype=None)
    return _layer_norm_forward(x, gamma, beta, eps=eps)


def _layer_norm_forward(x, gamma, beta, *, eps=1e-5):
    centered = x - x.mean(axis=-1, keepdims=True)                     # (..., D)
    var = np.mean(centered * centered, axis=-1, keepdims=True)        # (..., 1)
    rstd = 1 / np.sqrt(var + x.dtype.type(eps))                       # (..., 1)
    x_hat = centered * rstd                                           # (..., D)
    return x_hat * gamma + beta, LayerNormCache(x_hat, rstd, gamma)


def layer_norm_backward(dout, cache):
    """Gradients ``(dx, dgamma, dbeta)``, the staged chain rule multiplied out.

    Notes
    -----
    :math:`dx = r \\left(d\\hat x - \\overline{d\\hat x} - \\hat x\\,
    \\overline{d\\hat x \\odot \\hat x}\\right)` with :math:`r = 1/\\sqrt{
    \\sigma^2 + \\epsilon}`, :math:`d\\hat x = \\gamma \\odot dout` and
    bars for means over the last axis.
    """
    dout = check_gradient("dout", dout, cache.x_hat.shape, "(..., D)", dtype=cache.x_hat.dtype)
    return _layer_norm_backward(dout, cache)


def _layer_norm_backward(dout, cache):
    x_hat, rstd, gamma = cache
    d = x_hat.shape[-1]
    dout_rows = dout.reshape(-1, d)                                   # (N, D)
    dgamma = (dout_rows * x_hat.reshape(-1, d)).sum(axis=0)          # (D,)
    dbeta = dout_rows.sum(axis=0)                                     # (D,)
    dx_hat = dout * gamma                                             # (..., D)
    dx = rstd * (dx_hat - dx_hat.mean(axis=-1, keepdims=True)
                 - x_hat * (dx_hat * x_hat).mean(axis=-1, keepdims=True))
    return dx, dgamma, dbeta
