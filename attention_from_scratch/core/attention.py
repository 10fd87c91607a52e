"""Scaled dot-product attention, vectorised mirror of ``steps.attention``.

Batched matmuls over any leading axes, the softmax and the mask applied
in place, dtype preserved (float32 for speed).
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch._validate import (
    as_float_array,
    check_attention_inputs,
    check_query_key,
    check_same_shape,
    check_weights_value,
)
from attention_from_scratch.core.softmax import stable_row_max


class ScoresCache(NamedTuple):
    q: np.ndarray
    k: np.ndarray
    scale: float


def scores_forward(q, k):
    """Scaled scores ``q @ k^T / sqrt(Dk)``, ``(..., T, S)``."""
    q = as_float_array("q", q)
    k = as_float_array("k", k, dtype=q.dtype)
    check_query_key(q, k)
    scale = 1.0 / np.sqrt(q.shape[-1])
    scores = q @ np.swapaxes(k, -1, -2) * q.dtype.type(scale)   # (..., T, S)
    return scores, ScoresCache(q, k, scale)


def scores_backward(dscores, cache):
    """Gradients ``(dq, dk)`` of ``scores_forward``."""
    q, k, scale = cache
    dscores = as_float_array("dscores", dscores, dtype=q.dtype)
    check_same_shape("dscores", dscores, q.shape[:-1] + k.shape[-2:-1], "(..., T, S)")
    dscores = dscores * q.dtype.type(scale)
    dq = dscores @ k                                  # (..., T, Dk)
    dk = np.swapaxes(dscores, -1, -2) @ q             # (..., S, Dk)
    return dq, dk


class WeightedSumCache(NamedTuple):
    weights: np.ndarray
    v: np.ndarray


def weighted_sum_forward(weights, v):
    """Weighted average of the value rows, ``(..., T, Dv)``."""
    weights = as_float_array("weights", weights)
    v = as_float_array("v", v, dtype=weights.dtype)
    check_weights_value(weights, v)
    return weights @ v, WeightedSumCache(weights, v)


def weighted_sum_backward(dout, cache):
    """Gradients ``(dweights, dv)`` of ``weighted_sum_forward``."""
    weights, v = cache
    dout = as_float_array("dout", dout, dtype=weights.dtype)
    check_same_shape("dout", dout, weights.shape[:-1] + v.shape[-1:], "(..., T, Dv)")
    dweights = dout @ np.swapaxes(v, -1, -2)          # (..., T, S)
    dv = np.swapaxes(weights, -1, -2) @ dout          # (..., S, Dv)
    return dweights, dv


class AttentionCache(NamedTuple):
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    weights: np.ndarray   # (..., T, S): stored, not recomputed (Chapter 6 recomputes)
    out: np.ndarray       # lets the softmax backward use rowsum(dout * out)
    scale: float


def attention_forward(q, k, v, *, mask=None):
    """Scaled dot-product attention ``softmax(q k^T / sqrt(Dk)) v``.

    Same contract as ``steps.attention.attention_forward``; computes in
    the dtype of ``q`` (float32 stays float32).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> q = rng.normal(size=(2, 3, 4)).astype(np.float32)
    >>> out, cache = attention_forward(q, q, q, mask=np.tri(3, dtype=bool))
    >>> out.dtype == np.float32 and bool(np.all(cache.weights[:, 0, 1:] == 0))
    True
    """
    q = as_float_array("q", q)
    k = as_float_array("k", k, dtype=q.dtype)
    v = as_float_array("v", v, dtype=q.dtype)
    mask = check_attention_inputs(q, k, v, mask)
    scale = 1.0 / np.sqrt(q.shape[-1])
    weights = (q * q.dtype.type(scale)) @ np.swapaxes(k, -1, -2)   # (..., T, S)
    if mask is not None:
        np.copyto(weights, -np.inf, where=~mask)
    weights -= stable_row_max(weights, -1)
    np.exp(weights, out=weights)
    total = weights.sum(axis=-1, keepdims=True)                  # (..., T, 1)
    total[total == 0] = 1   # a row with nothing to attend to stays all zeros
    weights /= total
    out = weights @ v                                            # (..., T, Dv)
    return out, AttentionCache(q, k, v, weights, out, scale)


def attention_backward(dout, cache):
    """Gradients ``(dq, dk, dv)`` of ``attention_forward``.

    Notes
    -----
    The softmax backward uses ``rowsum(dweights * weights) =
    rowsum(dout * out)``: a ``(T, Dv)`` product instead of ``(T, S)``.
    """
    q, k, v, weights, out, scale = cache
    dout = as_float_array("dout", dout, dtype=q.dtype)
    check_same_shape("dout", dout, out.shape, "(..., T, Dv)")
    dv = np.swapaxes(weights, -1, -2) @ dout                     # (..., S, Dv)
    dscores = dout @ np.swapaxes(v, -1, -2)                      # (..., T, S)
    dscores -= (dout * out).sum(axis=-1, keepdims=True)
    dscores *= weights
    dscores *= q.dtype.type(scale)
    dq = dscores @ k                                             # (..., T, Dk)
    dk = np.swapaxes(dscores, -1, -2) @ q                        # (..., S, Dk)
    return dq, dk, dv
