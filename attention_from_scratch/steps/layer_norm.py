"""Layer normalisation, with its backward taken one step at a time (Chapter 5).

Each position's vector is normalised over its ``D`` features to mean 0
and variance 1, then scaled and shifted by a learned gain ``gamma`` and
bias ``beta`` (Ba, Kiros and Hinton 2016, "Layer Normalization"). The
Transformer applies it after every residual sum (Vaswani et al. 2017).
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_gradient, check_layer_norm_inputs


class LayerNormCache(NamedTuple):
    # Memory against recompute: the backward needs x_hat and 1/std. We keep
    # x_hat (one array the size of x) and rstd (one number per position)
    # rather than x and its mean: the same memory, and x_hat is used as is.
    x_hat: np.ndarray   # (..., D) normalised input
    rstd: np.ndarray    # (..., 1) 1 / sqrt(var + eps)
    gamma: np.ndarray   # (D,)


def layer_norm_forward(x, gamma, beta, *, eps=1e-5):
    """Normalise each position over its features, then scale and shift.

    Parameters
    ----------
    x : (..., D) array_like
    gamma : (D,) array_like
        Learned gain, usually initialised to ones.
    beta : (D,) array_like
        Learned bias, usually initialised to zeros.
    eps : float, keyword-only
        Added to the variance so a constant vector does not divide by 0.

    Returns
    -------
    out : (..., D) ndarray, float64
    cache : LayerNormCache

    See Also
    --------
    layer_norm_backward

    Notes
    -----
    :math:`\\hat x = (x - \\mu) / \\sqrt{\\sigma^2 + \\epsilon}` with the
    mean :math:`\\mu` and the biased variance :math:`\\sigma^2` over the
    last axis, and :math:`y = \\gamma \\odot \\hat x + \\beta`. Chapter 5
    derives the backward.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 6.0], [0.0, -3.0, 3.0]])
    >>> out, cache = layer_norm_forward(x, np.ones(3), np.zeros(3))
    >>> bool(np.allclose(out.mean(axis=-1), 0) and np.allclose(out.var(axis=-1), 1, atol=1e-4))
    True
    """
    x, gamma, beta, eps = check_layer_norm_inputs(x, gamma, beta, eps, dtype=np.float64)
    return _layer_norm_forward(x, gamma, beta, eps=eps)


def _layer_norm_forward(x, gamma, beta, *, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)                 # (..., 1)
    centered = x - mean                                   # (..., D)
    var = (centered ** 2).mean(axis=-1, keepdims=True)    # (..., 1)
    rstd = 1.0 / np.sqrt(var + eps)                       # (..., 1)
    x_hat = centered * rstd                               # (..., D)
    out = x_hat * gamma + beta                            # (..., D)
    return out, LayerNormCache(x_hat, rstd, gamma)


def layer_norm_backward(dout, cache):
    """Gradients ``(dx, dgamma, dbeta)`` of ``layer_norm_forward``.

    The forward read bottom-up. ``centered`` reaches ``x_hat`` twice:
    directly, and through the variance that ``rstd`` is made of; ``x``
    reaches ``centered`` twice: directly, and through the mean. Each fan-out
    adds a term. ``core`` uses the same result multiplied out:
    ``dx = rstd * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat))``.
    """
    dout = check_gradient("dout", dout, cache.x_hat.shape, "(..., D)", dtype=np.float64)
    return _layer_norm_backward(dout, cache)


def _layer_norm_backward(dout, cache):
    x_hat, rstd, gamma = cache
    d = x_hat.shape[-1]
    lead_axes = tuple(range(x_hat.ndim - 1))
    # forward was: out = x_hat * gamma + beta, gamma and beta shared by positions
    dgamma = (dout * x_hat).sum(axis=lead_axes)            # (D,)
    dbeta = dout.sum(axis=lead_axes)                       # (D,)
    dx_hat = dout * gamma                                  # (..., D)
    # forward was: x_hat = centered * rstd
    centered = x_hat / rstd                                # (..., D)
    dcentered = dx_hat * rstd
    drstd = (dx_hat * centered).sum(axis=-1, keepdims=True)   # (..., 1)
    # forward was: rstd = (var + eps) ** -0.5
    dvar = drstd * -0.5 * rstd ** 3
    # forward was: var = mean(centered ** 2): the second path into centered
    dcentered += dvar * 2.0 * centered / d
    # forward was: centered = x - mean(x): x reaches centered through the mean too
    dx = dcentered - dcentered.mean(axis=-1, keepdims=True)
    return dx, dgamma, dbeta
