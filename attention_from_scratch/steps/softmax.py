"""Softmax over one axis, with its Jacobian written out (Chapters 0, 2).

This is the one place the book builds the softmax Jacobian as a matrix;
everything else uses the closed-form vector-Jacobian product.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_gradient, check_softmax_inputs


class SoftmaxCache(NamedTuple):
    y: np.ndarray   # the Jacobian needs only the output
    axis: int


def softmax_forward(x, *, axis=-1):
    """Numerically stable softmax along ``axis``.

    Parameters
    ----------
    x : (...) array_like
        Scores. ``-inf`` marks an entry that must get weight exactly 0.
    axis : int, keyword-only

    Returns
    -------
    y : (...) ndarray, float64, same shape as ``x``
    cache : SoftmaxCache

    See Also
    --------
    softmax_backward

    Notes
    -----
    :math:`y_i = e^{x_i - m} / \\sum_j e^{x_j - m}` with :math:`m = \\max_j
    x_j`; subtracting the row maximum changes nothing mathematically and
    keeps every exponent at most 0, so nothing overflows. A row that is
    entirely ``-inf`` has nothing to attend to: it gets all zeros, not the
    NaN of 0/0 (Chapter 3).

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 3.0], [1e4, 0, -1e4]])
    >>> y, cache = softmax_forward(x)
    >>> bool(np.allclose(y.sum(axis=-1), 1.0) and np.isfinite(y).all())
    True
    """
    x, axis = check_softmax_inputs(x, axis, dtype=np.float64)
    return _softmax_forward(x, axis=axis)


def _softmax_forward(x, *, axis):
    row_max = x.max(axis=axis, keepdims=True)      # x's shape, 1 along axis
    row_max[np.isneginf(row_max)] = 0.0   # an all -inf row: exp gives zeros
    e = np.exp(x - row_max)
    total = e.sum(axis=axis, keepdims=True)        # x's shape, 1 along axis
    y = e / np.where(total > 0, total, 1.0)
    return y, SoftmaxCache(y, axis)


def softmax_jacobian(y_row):
    """Jacobian ``dy_i/dx_j = y_i (delta_ij - y_j)`` of one softmax row.

    Parameters
    ----------
    y_row : (N,) ndarray

    Returns
    -------
    jacobian : (N, N) ndarray, symmetric
    """
    return np.diag(y_row) - np.outer(y_row, y_row)   # (N, N)


def softmax_backward(dy, cache):
    """Gradient ``dx`` of ``softmax_forward``, one Jacobian per row.

    Parameters
    ----------
    dy : (...) array_like, shape of the forward's output
    cache : SoftmaxCache

    Returns
    -------
    dx : (...) ndarray

    See Also
    --------
    softmax_forward

    Notes
    -----
    :math:`dx = J^T dy` row by row. Multiplying out gives the closed form
    :math:`y \\odot (dy - \\langle dy, y \\rangle)` used by ``core``.
    """
    dy = check_gradient("dy", dy, cache.y.shape, "(...) like the forward's output",
                        dtype=np.float64)
    return _softmax_backward(dy, cache)


def _softmax_backward(dy, cache):
    y, axis = cache
    y_rows = np.moveaxis(y, axis, -1)                # (..., N)
    dy_rows = np.moveaxis(dy, axis, -1)              # (..., N)
    dx_rows = np.empty_like(y_rows)
    for idx in np.ndindex(y_rows.shape[:-1]):
        jacobian = softmax_jacobian(y_rows[idx])     # (N, N)
        dx_rows[idx] = jacobian.T @ dy_rows[idx]
    return np.moveaxis(dx_rows, -1, axis)            # (...) as x
