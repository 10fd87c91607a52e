"""Scaled dot-product attention, vectorised mirror of ``steps.attention``.

Batched matmuls over any leading axes, the softmax and the mask applied
in place, dtype preserved (float32 for speed).

``scores``, ``weighted_sum`` and ``attention`` have the same names and
signatures as in ``steps``. But where ``steps.attention.attention_forward``
calls the three pairs (scores, softmax, weighted sum) and keeps a cache of
their caches, ``attention_forward`` here fuses the three steps, so its
``AttentionCache`` is flat: ``(q, k, v, weights, out, scale)``. Fusing
lets one ``(..., T, S)`` buffer go from scores to weights in place, the
largest array attention makes; the flat cache holds each array once and
keeps ``out``, which the backward uses to get the softmax's row sums from
a ``(..., T, Dv)`` product instead of a ``(..., T, S)`` one.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import (
    check_attention_forward_inputs,
    check_gradient,
    check_sequence_pair,
    check_weights_value,
)
from attention_from_scratch.core.softmax import masked_softmax_in_place


class ScoresCache(NamedTuple):
    q: np.ndarray
    k: np.ndarray
    scale: float


def scores_forward(q, k):
    """Scaled scores ``q @ k^T / sqrt(Dk)``, dtype preserved.

    Parameters
    ----------
    q : (..., T, Dk) array_like
    k : (..., S, Dk) array_like

    Returns
    -------
    scores : (..., T, S) ndarray, dtype of ``q``
    cache : ScoresCache

    See Also
    --------
    scores_backward, attention_from_scratch.steps.attention.scores_forward

    Examples
    --------
    >>> q = np.ones((2, 3, 4), dtype=np.float32)
    >>> scores, cache = scores_forward(q, np.ones((2, 5, 4)))
    >>> scores.dtype == np.float32 and bool(np.all(scores == 2.0))
    True
    """
    q, k = check_sequence_pair("q", q, "k", k, width="Dk", dtype=None)
    scale = 1.0 / np.sqrt(q.shape[-1])
    scores = q @ np.swapaxes(k, -1, -2) * q.dtype.type(scale)   # (..., T, S)
    return scores, ScoresCache(q, k, scale)


def scores_backward(dscores, cache):
    """Gradients ``(dq, dk)`` of ``scores_forward``.

    Parameters
    ----------
    dscores : (..., T, S) array_like
    cache : ScoresCache

    Returns
    -------
    dq : (..., T, Dk) ndarray
    dk : (..., S, Dk) ndarray

    See Also
    --------
    scores_forward, attention_from_scratch.steps.attention.scores_backward

    Notes
    -----
    ``dq = dscores k / sqrt(Dk)`` and ``dk = dscores^T q / sqrt(Dk)``.
    """
    q, k, scale = cache
    dscores = check_gradient("dscores", dscores, q.shape[:-1] + k.shape[-2:-1], "(..., T, S)",
                             dtype=q.dtype)
    dscores = dscores * q.dtype.type(scale)
    dq = dscores @ k                                  # (..., T, Dk)
    dk = np.swapaxes(dscores, -1, -2) @ q             # (..., S, Dk)
    return dq, dk


class WeightedSumCache(NamedTuple):
    weights: np.ndarray
    v: np.ndarray


def weighted_sum_forward(weights, v):
    """Each output row is a weighted average of the value rows.

    Parameters
    ----------
    weights : (..., T, S) array_like
    v : (..., S, Dv) array_like

    Returns
    -------
    out : (..., T, Dv) ndarray, dtype of ``weights``
    cache : WeightedSumCache

    See Also
    --------
    weighted_sum_backward,
    attention_from_scratch.steps.attention.weighted_sum_forward

    Examples
    --------
    >>> weights = np.full((3, 4), 0.25, dtype=np.float32)
    >>> v = np.arange(8.0).reshape(4, 2)
    >>> out, cache = weighted_sum_forward(weights, v)
    >>> out.dtype == np.float32 and bool(np.allclose(out, v.mean(axis=0)))
    True
    """
    weights, v = check_weights_value(weights, v, dtype=None)
    return weights @ v, WeightedSumCache(weights, v)


def weighted_sum_backward(dout, cache):
    """Gradients ``(dweights, dv)`` of ``weighted_sum_forward``.

    Parameters
    ----------
    dout : (..., T, Dv) array_like
    cache : WeightedSumCache

    Returns
    -------
    dweights : (..., T, S) ndarray
    dv : (..., S, Dv) ndarray

    See Also
    --------
    weighted_sum_forward,
    attention_from_scratch.steps.attention.weighted_sum_backward

    Notes
    -----
    ``dweights = dout v^T``; ``dv = weights^T dout`` sums over queries.
    """
    weights, v = cache
    dout = check_gradient("dout", dout, weights.shape[:-1] + v.shape[-1:], "(..., T, Dv)",
                          dtype=weights.dtype)
    dweights = dout @ np.swapaxes(v, -1, -2)          # (..., T, S)
    dv = np.swapaxes(weights, -1, -2) @ dout          # (..., S, Dv)
    return dweights, dv


class AttentionCache(NamedTuple):
    """Flat, not a tuple of children's caches: the steps are fused."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    weights: np.ndarray   # (..., T, S): stored, not recomputed (Chapter 6 recomputes)
    out: np.ndarray       # lets the softmax backward use rowsum(dout * out)
    scale: float


def attention_forward(q, k, v, *, mask=None, bias=None):
    """Scaled dot-product attention ``softmax(q k^T / sqrt(Dk) + bias) v``.

    Same contract as ``steps.attention.attention_forward``; computes in
    the dtype of ``q`` (float32 stays float32). ``bias`` (optional,
    ``(..., T, S)``) is a constant: no gradient is returned for it.

    Returns
    -------
    out : (..., T, Dv) ndarray, dtype of ``q``
    cache : AttentionCache
        Flat ``(q, k, v, weights, out, scale)``; ``cache.weights`` are the
        attention weights, as in ``steps``.

    See Also
    --------
    attention_backward, attention_from_scratch.steps.attention

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> q = rng.normal(size=(2, 3, 4)).astype(np.float32)
    >>> out, cache = attention_forward(q, q, q, mask=np.tri(3, dtype=bool))
    >>> future = cache.weights[:, 0, 1:]             # query 0's later keys
    >>> out.dtype == np.float32 and bool(np.all(future == 0))
    True
    """
    q, k, v, mask, bias = check_attention_forward_inputs(q, k, v, mask, bias, dtype=None)
    return _attention_forward(q, k, v, mask=mask, bias=bias)


def _attention_forward(q, k, v, *, mask, bias):
    scale = 1.0 / np.sqrt(q.shape[-1])
    weights = (q * q.dtype.type(scale)) @ np.swapaxes(k, -1, -2)   # (..., T, S)
    if bias is not None:
        weights += bias
    masked_softmax_in_place(weights, mask)                       # (..., T, S)
    out = weights @ v                                            # (..., T, Dv)
    return out, AttentionCache(q, k, v, weights, out, scale)


def attention_backward(dout, cache):
    """Gradients ``(dq, dk, dv)`` of ``attention_forward``.

    Parameters
    ----------
    dout : (..., T, Dv) array_like
    cache : AttentionCache

    Returns
    -------
    dq : (..., T, Dk) ndarray
    dk : (..., S, Dk) ndarray
    dv : (..., S, Dv) ndarray

    See Also
    --------
    attention_forward, attention_from_scratch.steps.attention

    Notes
    -----
    The softmax backward uses ``rowsum(dweights * weights) =
    rowsum(dout * out)``: a ``(T, Dv)`` product instead of ``(T, S)``.
    A bias passes ``dscores`` on unchanged and gets no gradient itself.
    """
    dout = check_gradient("dout", dout, cache.out.shape, "(..., T, Dv)", dtype=cache.q.dtype)
    return _attention_backward(dout, cache)


def _attention_backward(dout, cache):
    q, k, v, weights, out, scale = cache
    scale = q.dtype.type(scale)
    # forward was: out = weights @ v
    dv = np.swapaxes(weights, -1, -2) @ dout                     # (..., S, Dv)
    dweights = dout @ np.swapaxes(v, -1, -2)                     # (..., T, S)
    # softmax: dscores = weights * (dweights - rowsum(dweights * weights)),
    # computed in dweights' buffer, which is not needed again
    dscores = dweights
    dscores -= (dout * out).sum(axis=-1, keepdims=True)   # the rowsum, see Notes
    dscores *= weights
    # forward was: scores = q @ k^T * scale
    dq = dscores @ k * scale                                     # (..., T, Dk)
    dk = np.swapaxes(dscores, -1, -2) @ q * scale                # (..., S, Dk)
    return dq, dk, dv
