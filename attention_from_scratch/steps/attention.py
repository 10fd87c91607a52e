"""Scaled dot-product attention, one step at a time (Chapter 2).

``attention(q, k, v) = softmax(q k^T / sqrt(Dk)) v``, built from three
pairs, each with its own backward: ``scores``, ``softmax`` (from
``steps.softmax``) and ``weighted_sum``. The loops over the leading axes
(batch, heads) show that every slice is an independent 2-D problem.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import (
    check_attention_forward_inputs,
    check_gradient,
    check_sequence_pair,
    check_weights_value,
)
from attention_from_scratch.steps.softmax import (
    SoftmaxCache,
    _softmax_backward,
    _softmax_forward,
)


class ScoresCache(NamedTuple):
    q: np.ndarray
    k: np.ndarray
    scale: float


def scores_forward(q, k):
    """Scaled scores ``q @ k^T / sqrt(Dk)``.

    Parameters
    ----------
    q : (..., T, Dk) array_like
    k : (..., S, Dk) array_like

    Returns
    -------
    scores : (..., T, S) ndarray, float64
    cache : ScoresCache

    See Also
    --------
    scores_backward

    Notes
    -----
    Without the :math:`1/\\sqrt{D_k}` the scores of unit-variance ``q``
    and ``k`` have variance ``Dk`` and the softmax saturates (Chapter 2).
    """
    q, k = check_sequence_pair("q", q, "k", k, width="Dk", dtype=np.float64)
    return _scores_forward(q, k)


def _scores_forward(q, k):
    scale = 1.0 / np.sqrt(q.shape[-1])
    scores = np.empty(q.shape[:-1] + k.shape[-2:-1])   # (..., T, S)
    for idx in np.ndindex(q.shape[:-2]):
        scores[idx] = q[idx] @ k[idx].T * scale        # (T, S)
    return scores, ScoresCache(q, k, scale)


def scores_backward(dscores, cache):
    """Gradients ``(dq, dk)`` of ``scores_forward``.

    ``dq = dscores k / sqrt(Dk)`` and ``dk = dscores^T q / sqrt(Dk)``.
    """
    dscores = check_gradient("dscores", dscores, cache.q.shape[:-1] + cache.k.shape[-2:-1],
                             "(..., T, S)", dtype=np.float64)
    return _scores_backward(dscores, cache)


def _scores_backward(dscores, cache):
    q, k, scale = cache
    dq = np.empty_like(q)                              # (..., T, Dk)
    dk = np.empty_like(k)                              # (..., S, Dk)
    for idx in np.ndindex(q.shape[:-2]):
        dq[idx] = dscores[idx] @ k[idx] * scale        # (T, Dk)
        dk[idx] = dscores[idx].T @ q[idx] * scale      # (S, Dk)
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
    out : (..., T, Dv) ndarray, float64
    cache : WeightedSumCache
    """
    weights, v = check_weights_value(weights, v, dtype=np.float64)
    return _weighted_sum_forward(weights, v)


def _weighted_sum_forward(weights, v):
    out = np.empty(weights.shape[:-1] + v.shape[-1:])  # (..., T, Dv)
    for idx in np.ndindex(weights.shape[:-2]):
        out[idx] = weights[idx] @ v[idx]               # (T, Dv)
    return out, WeightedSumCache(weights, v)


def weighted_sum_backward(dout, cache):
    """Gradients ``(dweights, dv)`` of ``weighted_sum_forward``.

    ``dweights = dout v^T``; ``dv = weights^T dout`` sums over queries.
    """
    dout = check_gradient("dout", dout, cache.weights.shape[:-1] + cache.v.shape[-1:],
                          "(..., T, Dv)", dtype=np.float64)
    return _weighted_sum_backward(dout, cache)


def _weighted_sum_backward(dout, cache):
    weights, v = cache
    dweights = np.empty_like(weights)                  # (..., T, S)
    dv = np.empty_like(v)                              # (..., S, Dv)
    for idx in np.ndindex(weights.shape[:-2]):
        dweights[idx] = dout[idx] @ v[idx].T           # (T, S)
        dv[idx] = weights[idx].T @ dout[idx]           # (S, Dv)
    return dweights, dv


class AttentionCache(NamedTuple):
    scores: ScoresCache
    softmax: SoftmaxCache
    weighted_sum: WeightedSumCache

    @property
    def weights(self):
        """The attention weights, ``(..., T, S)``."""
        return self.softmax.y


def attention_forward(q, k, v, *, mask=None, bias=None):
    """Scaled dot-product attention ``softmax(q k^T / sqrt(Dk) + bias) v``.

    Parameters
    ----------
    q : (..., T, Dk) array_like
        Queries: what each of the ``T`` positions is looking for.
    k : (..., S, Dk) array_like
        Keys: how each of the ``S`` positions describes itself.
    v : (..., S, Dv) array_like
        Values: what each position hands over.
    mask : (..., T, S) bool array_like, keyword-only, optional
        Broadcastable to the scores; ``True`` = this query may attend to
        this key. A query with no allowed key gets an output of zeros.
    bias : (..., T, S) float array_like, keyword-only, optional
        Broadcastable to the scores, finite; added to the scaled scores
        before the mask and the softmax (ALiBi's linear biases,
        ``alibi_bias``). A constant: the backward returns no gradient for
        it. A masked key keeps weight exactly 0 whatever its bias.

    Returns
    -------
    out : (..., T, Dv) ndarray, float64
    cache : AttentionCache
        Children's caches; ``cache.weights`` are the attention weights.

    See Also
    --------
    attention_backward, attention_from_scratch.core.attention

    Notes
    -----
    Masked scores become ``-inf`` before the softmax, so their weights are
    exactly 0 (Chapter 3). Chapter 2 derives every step.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = rng.normal(size=(3, 2)), rng.normal(size=(4, 2)), rng.normal(size=(4, 5))
    >>> out, cache = attention_forward(q, k, v)
    >>> out.shape == (3, 5) and bool(np.allclose(cache.weights.sum(axis=-1), 1.0))
    True
    """
    q, k, v, mask, bias = check_attention_forward_inputs(q, k, v, mask, bias, dtype=np.float64)
    return _attention_forward(q, k, v, mask=mask, bias=bias)


def _attention_forward(q, k, v, *, mask, bias):
    scores, scores_cache = _scores_forward(q, k)                   # (..., T, S)
    if bias is not None:
        scores = scores + bias                                     # (..., T, S)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)                   # (..., T, S)
    weights, softmax_cache = _softmax_forward(scores, axis=-1)     # (..., T, S)
    out, sum_cache = _weighted_sum_forward(weights, v)             # (..., T, Dv)
    return out, AttentionCache(scores_cache, softmax_cache, sum_cache)


def attention_backward(dout, cache):
    """Gradients ``(dq, dk, dv)`` of ``attention_forward``.

    The chain rule run in reverse through the children's caches. The mask
    needs no step of its own: a masked weight is exactly 0, so the softmax
    backward sends exactly 0 to its score, and from there to ``q`` and ``k``.
    Nor does the bias: ``scores + bias`` passes ``dscores`` on unchanged,
    and the bias, a constant, gets no gradient.
    """
    out_shape = cache.weights.shape[:-1] + cache.weighted_sum.v.shape[-1:]   # (..., T, Dv)
    dout = check_gradient("dout", dout, out_shape, "(..., T, Dv)", dtype=np.float64)
    return _attention_backward(dout, cache)


def _attention_backward(dout, cache):
    dweights, dv = _weighted_sum_backward(dout, cache.weighted_sum)
    dscores = _softmax_backward(dweights, cache.softmax)
    dq, dk = _scores_backward(dscores, cache.scores)
    return dq, dk, dv
