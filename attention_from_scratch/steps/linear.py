"""Linear layer ``y = x @ w + b``, step by step (Chapter 0).

Weights are ``(D_in, D_out)`` and multiply from the right, so the same
code serves any number of leading axes. (PyTorch's ``nn.Linear`` stores
the transpose, ``(D_out, D_in)``, and computes ``x @ W.T + b``.)
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_gradient, check_linear_inputs


class LinearCache(NamedTuple):
    x: np.ndarray   # dw needs the input
    w: np.ndarray   # dx needs the weights


def linear_forward(x, w, b):
    """Affine map ``x @ w + b`` over the last axis.

    Parameters
    ----------
    x : (..., D_in) array_like
    w : (D_in, D_out) array_like
    b : (D_out,) array_like

    Returns
    -------
    out : (..., D_out) ndarray, float64
    cache : LinearCache

    See Also
    --------
    linear_backward

    Notes
    -----
    :math:`y = x W + b`. Chapter 0 derives the backward pass.

    Examples
    --------
    >>> x, w, b = np.ones((2, 3)), np.eye(3, 4), np.arange(4.0)
    >>> out, cache = linear_forward(x, w, b)
    >>> out.shape == (2, 4) and np.array_equal(out[0], [1, 2, 3, 3])
    True
    """
    x, w, b = check_linear_inputs(x, w, b, dtype=np.float64)
    return _linear_forward(x, w, b)


def _linear_forward(x, w, b):
    out = x @ w + b                                  # (..., D_out)
    return out, LinearCache(x, w)


def linear_backward(dout, cache):
    """Gradients of ``linear_forward`` for upstream gradient ``dout``.

    Parameters
    ----------
    dout : (..., D_out) array_like
    cache : LinearCache

    Returns
    -------
    dx : (..., D_in) ndarray
    dw : (D_in, D_out) ndarray
    db : (D_out,) ndarray

    See Also
    --------
    linear_forward

    Notes
    -----
    The same ``w`` and ``b`` serve every position, so their gradients sum
    over positions: the loop below makes that sum visible, one outer
    product ``x_n^T dout_n`` per position ``n``.
    """
    dout = check_gradient("dout", dout, cache.x.shape[:-1] + cache.w.shape[1:], "(..., D_out)",
                          dtype=np.float64)
    return _linear_backward(dout, cache)


def _linear_backward(dout, cache):
    x, w = cache
    d_in, d_out = w.shape
    dx = dout @ w.T                                  # (..., D_in)
    x_rows = x.reshape(-1, d_in)                     # (N, D_in)
    dout_rows = dout.reshape(-1, d_out)              # (N, D_out)
    dw = np.zeros_like(w)
    db = np.zeros(d_out)
    for x_n, dout_n in zip(x_rows, dout_rows, strict=True):
        dw += np.outer(x_n, dout_n)                  # w fans out to every position
        db += dout_n
    return dx, dw, db
