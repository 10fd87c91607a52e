"""Sliding-window (local, restricted) attention, query by query (Chapter 6).

Each query attends only to itself and the ``window - 1`` keys before it:
the same result as ``attention_forward(q, k, v, mask=sliding_window_mask(
T, window, S))``, but the work is ``O(T * window * D)`` instead of
``O(T * S * D)``, because only the keys inside the window are ever
touched. Vaswani et al. (2017) call it restricted self-attention; it
underlies Longformer's local attention (Beltagy et al., 2020).
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_gradient, check_window_attention_inputs


class LocalAttentionCache(NamedTuple):
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    weights: np.ndarray   # (..., T, window): column c holds key p - window + 1 + c
    scale: float


def key_range(t, s, i, window):
    """Keys ``lo .. hi - 1`` that query ``i`` of ``T`` (the last ``T`` of ``S``) sees."""
    position = s - t + i
    return max(0, position - window + 1), position + 1


def local_attention_forward(q, k, v, *, window):
    """Causal attention restricted to a window of the most recent keys.

    Parameters
    ----------
    q : (..., T, Dk) array_like
        The queries sit at the last ``T`` of the ``S`` key positions.
    k : (..., S, Dk) array_like, ``S >= T``
    v : (..., S, Dv) array_like
    window : int, keyword-only
        Keys each query sees, itself included.

    Returns
    -------
    out : (..., T, Dv) ndarray, float64
    cache : LocalAttentionCache
        Holds ``(..., T, window)`` weights, not ``(..., T, S)``.

    See Also
    --------
    local_attention_backward, attention_from_scratch.common.masks.sliding_window_mask

    Examples
    --------
    >>> from attention_from_scratch.common.masks import sliding_window_mask
    >>> from attention_from_scratch.steps.attention import attention_forward
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = rng.normal(size=(4, 2)), rng.normal(size=(6, 2)), rng.normal(size=(6, 3))
    >>> out, cache = local_attention_forward(q, k, v, window=3)
    >>> masked, _ = attention_forward(q, k, v, mask=sliding_window_mask(4, 3, 6))
    >>> bool(np.allclose(out, masked)) and cache.weights.shape == (4, 3)
    True
    """
    q, k, v, window = check_window_attention_inputs(q, k, v, window, dtype=np.float64)
    t, s = q.shape[-2], k.shape[-2]
    scale = 1.0 / np.sqrt(q.shape[-1])
    out = np.empty(q.shape[:-1] + v.shape[-1:])                 # (..., T, Dv)
    weights = np.zeros(q.shape[:-1] + (window,))                # (..., T, window)
    for idx in np.ndindex(q.shape[:-2]):
        for i in range(t):
            lo, hi = key_range(t, s, i, window)
            scores = k[idx][lo:hi] @ q[idx][i] * scale          # (n,) with n <= window
            e = np.exp(scores - scores.max())                   # never empty: sees itself
            w = e / e.sum()
            weights[idx][i, window - len(w):] = w
            out[idx][i] = w @ v[idx][lo:hi]                     # (Dv,)
    return out, LocalAttentionCache(q, k, v, weights, scale)


def local_attention_backward(dout, cache):
    """Gradients ``(dq, dk, dv)`` of ``local_attention_forward``.

    Query by query, the attention backward on the window's keys; a key
    lies in up to ``window`` windows, so its gradients add.
    """
    q, k, v, weights, scale = cache
    dout = check_gradient("dout", dout, q.shape[:-1] + v.shape[-1:], "(..., T, Dv)",
                          dtype=np.float64)
    t, s, window = q.shape[-2], k.shape[-2], weights.shape[-1]
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    for idx in np.ndindex(q.shape[:-2]):
        for i in range(t):
            lo, hi = key_range(t, s, i, window)
            w = weights[idx][i, window - (hi - lo):]            # (n,)
            dv[idx][lo:hi] += np.outer(w, dout[idx][i])         # (n, Dv)
            dw = v[idx][lo:hi] @ dout[idx][i]                   # (n,)
            dscores = w * (dw - dw @ w) * scale                 # softmax backward, scaled
            dq[idx][i] = dscores @ k[idx][lo:hi]                # (Dk,)
            dk[idx][lo:hi] += np.outer(dscores, q[idx][i])      # (n, Dk)
    return dq, dk, dv
