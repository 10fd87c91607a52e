"""Softmax over one axis, vectorised mirror of ``steps.softmax``."""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_gradient, check_softmax_inputs


class SoftmaxCache(NamedTuple):
    y: np.ndarray
    axis: int


def stable_row_max(x, axis):
    """Row maximum along ``axis`` with all ``-inf`` rows mapped to 0.

    Parameters
    ----------
    x : (...) ndarray
    axis : int

    Returns
    -------
    row_max : (...) ndarray
        The shape of ``x`` with ``axis`` of size 1. An all ``-inf`` row
        gets 0, so ``x - row_max`` stays ``-inf`` there, not NaN.
    """
    row_max = x.max(axis=axis, keepdims=True)   # x's shape, 1 along axis
    row_max[np.isneginf(row_max)] = 0
    return row_max


def masked_softmax_in_place(scores, mask=None, *, axis=-1, normalise=True):
    """The masked, stable softmax of Chapters 2-3, in ``scores``' buffer.

    ``-inf`` where ``mask`` is False, subtract the row max, exponentiate,
    then divide by the row sums (unless ``normalise=False``: multi-head
    attention divides its outputs instead, Chapter 4). A row with nothing
    to attend to stays all zeros: its sum is replaced by 1.

    Parameters
    ----------
    scores : (...) ndarray, float, overwritten
    mask : bool ndarray broadcastable to ``scores``, optional
        ``True`` = may attend.
    axis : int, keyword-only
    normalise : bool, keyword-only

    Returns
    -------
    total : (...) ndarray
        The row sums of the exponentials, ``scores``' shape with ``axis``
        of size 1, 1 where a row was all masked.

    Examples
    --------
    >>> x = np.float32([[0.0, 0.0, 5.0], [1.0, 2.0, 3.0]])
    >>> _ = masked_softmax_in_place(x, np.array([[True, True, False],
    ...                                          [False, False, False]]))
    >>> x.tolist()
    [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]
    """
    if mask is not None:
        np.copyto(scores, -np.inf, where=~mask)
    scores -= stable_row_max(scores, axis)
    np.exp(scores, out=scores)
    total = scores.sum(axis=axis, keepdims=True)   # scores' shape, 1 along axis
    total[total == 0] = 1   # a row with nothing to attend to stays all zeros
    if normalise:
        scores /= total
    return total


def softmax_forward(x, *, axis=-1):
    """Numerically stable softmax along ``axis``, dtype preserved.

    An all ``-inf`` row gives all zeros, as in ``steps``.

    Examples
    --------
    >>> x = np.float32([[0.0, -np.inf], [-np.inf, -np.inf]])
    >>> y, _ = softmax_forward(x)
    >>> y.dtype == np.float32 and y.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    True
    """
    x, axis = check_softmax_inputs(x, axis, dtype=None)
    y = x.copy()
    masked_softmax_in_place(y, axis=axis)
    return y, SoftmaxCache(y, axis)


def softmax_backward(dy, cache):
    """Gradient ``dx`` of ``softmax_forward``, in closed form.

    Parameters
    ----------
    dy : (...) array_like, shape of the forward's output
    cache : SoftmaxCache

    Returns
    -------
    dx : (...) ndarray, dtype of the forward's output

    See Also
    --------
    softmax_forward, attention_from_scratch.steps.softmax.softmax_backward

    Notes
    -----
    :math:`dx = y \\odot (dy - \\langle dy, y \\rangle)` along ``axis``:
    the Jacobian ``diag(y) - y y^T`` of ``steps`` multiplied out, with no
    ``(N, N)`` matrix (Chapter 2).
    """
    y, axis = cache
    dy = check_gradient("dy", dy, y.shape, "(...) like the forward's output", dtype=y.dtype)
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))
