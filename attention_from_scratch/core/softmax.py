"""Softmax over one axis, vectorised mirror of ``steps.softmax``."""

from typing import NamedTuple

import numpy as np

from attention_from_scratch._validate import (
    as_float_array,
    check_axis,
    check_same_shape,
    check_softmax_input,
)


class SoftmaxCache(NamedTuple):
    y: np.ndarray
    axis: int


def stable_row_max(x, axis):
    """Row maximum along ``axis`` with all ``-inf`` rows mapped to 0."""
    row_max = x.max(axis=axis, keepdims=True)
    row_max[np.isneginf(row_max)] = 0
    return row_max


def softmax_forward(x, *, axis=-1):
    """Numerically stable softmax along ``axis``, dtype preserved.

    An all ``-inf`` row gives all zeros, as in ``steps``.

    Examples
    --------
    >>> y, _ = softmax_forward(np.float32([[0.0, -np.inf], [-np.inf, -np.inf]]))
    >>> y.dtype == np.float32 and y.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    True
    """
    x = as_float_array("x", x)
    axis = check_axis("axis", axis, x.ndim)
    check_softmax_input(x)
    y = x - stable_row_max(x, axis)
    np.exp(y, out=y)
    total = y.sum(axis=axis, keepdims=True)
    total[total == 0] = 1.0
    y /= total
    return y, SoftmaxCache(y, axis)


def softmax_backward(dy, cache):
    """Gradient ``dx = y * (dy - sum(dy * y))`` of ``softmax_forward``."""
    y, axis = cache
    dy = as_float_array("dy", dy, dtype=y.dtype)
    check_same_shape("dy", dy, y.shape, "(...) like the forward's output")
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))
