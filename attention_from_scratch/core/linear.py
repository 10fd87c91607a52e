"""Linear layer ``x @ w + b``, vectorised mirror of ``steps.linear``."""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_gradient, check_linear_inputs


class LinearCache(NamedTuple):
    x: np.ndarray
    w: np.ndarray


def linear_forward(x, w, b):
    """Affine map ``x @ w + b`` over the last axis, dtype preserved.

    Parameters
    ----------
    x : (..., D_in) array_like
    w : (D_in, D_out) array_like
    b : (D_out,) array_like

    Returns
    -------
    out : (..., D_out) ndarray, dtype of ``x``
    cache : LinearCache

    See Also
    --------
    linear_backward, attention_from_scratch.steps.linear.linear_forward

    Examples
    --------
    >>> x = np.ones((2, 3), dtype=np.float32)
    >>> out, cache = linear_forward(x, np.eye(3, 4), np.zeros(4))
    >>> out.dtype == np.float32 and out.shape == (2, 4)
    True
    """
    x, w, b = check_linear_inputs(x, w, b, dtype=None)
    return _linear_forward(x, w, b)


def _linear_forward(x, w, b):
    out = x @ w + b                                  # (..., D_out)
    return out, LinearCache(x, w)


def linear_backward(dout, cache):
    """Gradients ``(dx, dw, db)`` of ``linear_forward``.

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
    linear_forward, attention_from_scratch.steps.linear.linear_backward

    Notes
    -----
    ``dw = x^T dout`` with the leading axes flattened into one row axis:
    one matmul sums the per-position outer products.
    """
    dout = check_gradient("dout", dout, cache.x.shape[:-1] + cache.w.shape[1:], "(..., D_out)",
                          dtype=cache.x.dtype)
    return _linear_backward(dout, cache)


def _linear_backward(dout, cache):
    x, w = cache
    d_in, d_out = w.shape
    dout_rows = dout.reshape(-1, d_out)              # (N, D_out)
    dx = dout @ w.T                                  # (..., D_in)
    dw = x.reshape(-1, d_in).T @ dout_rows           # (D_in, D_out)
    db = dout_rows.sum(axis=0)                       # (D_out,)
    return dx, dw, db
