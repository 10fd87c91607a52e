"""Low-rank attention: project the keys and values first (Chapter 6).

Linformer (Wang et al., 2020, "Linformer: Self-Attention with Linear
Complexity") multiplies the ``S`` keys and values by ``(R, S)`` matrices
``E`` and ``F`` before attending, so each query scores ``R`` projected
keys instead of ``S``:

``out = softmax(q (E k)^T / sqrt(Dk)) (F v)``,

``O(T R D)`` work and ``(T, R)`` weights. ``E`` and ``F`` are learned;
they mix positions, so a causal mask no longer means anything.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_projection_inputs
from attention_from_scratch.steps.attention import (
    AttentionCache,
    attention_backward,
    attention_forward,
)


class LinformerCache(NamedTuple):
    k: np.ndarray
    v: np.ndarray
    e: np.ndarray
    f: np.ndarray
    attention: AttentionCache   # attention over the R projected keys and values


def linformer_attention_forward(q, k, v, e, f):
    """Attention over ``R`` learned mixtures of the keys and values.

    Parameters
    ----------
    q : (..., T, Dk) array_like
    k : (..., S, Dk) array_like
    v : (..., S, Dv) array_like
    e : (R, S) array_like
        Key projection, shared by all leading axes.
    f : (R, S) array_like
        Value projection.

    Returns
    -------
    out : (..., T, Dv) ndarray, float64
    cache : LinformerCache

    See Also
    --------
    linformer_attention_backward

    Notes
    -----
    With ``R = S`` and ``E = F = I`` this is exact attention; so is any
    permutation matrix, since attention does not care about the order of
    the keys. Chapter 6 measures how the error shrinks as ``R`` grows.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = rng.normal(size=(3, 2)), rng.normal(size=(5, 2)), rng.normal(size=(5, 4))
    >>> out, _ = linformer_attention_forward(q, k, v, np.eye(5), np.eye(5))
    >>> bool(np.allclose(out, attention_forward(q, k, v)[0]))
    True
    """
    q, k, v, e, f = check_projection_inputs(q, k, v, e, f, dtype=np.float64)
    k_low = np.empty(k.shape[:-2] + (len(e), k.shape[-1]))     # (..., R, Dk)
    v_low = np.empty(v.shape[:-2] + (len(f), v.shape[-1]))     # (..., R, Dv)
    for idx in np.ndindex(k.shape[:-2]):
        k_low[idx] = e @ k[idx]                                # R mixtures of the S keys
        v_low[idx] = f @ v[idx]
    out, attention_cache = attention_forward(q, k_low, v_low)  # (..., T, Dv)
    return out, LinformerCache(k, v, e, f, attention_cache)


def linformer_attention_backward(dout, cache):
    """Gradients ``(dq, dk, dv, de, df)`` of ``linformer_attention_forward``.

    ``E`` and ``F`` serve every leading slice, so their gradients sum
    over the slices.
    """
    k, v, e, f, attention_cache = cache
    dq, dk_low, dv_low = attention_backward(dout, attention_cache)
    dk, dv = np.empty_like(k), np.empty_like(v)
    de, df = np.zeros_like(e), np.zeros_like(f)
    for idx in np.ndindex(k.shape[:-2]):
        dk[idx] = e.T @ dk_low[idx]                            # (S, Dk)
        dv[idx] = f.T @ dv_low[idx]                            # (S, Dv)
        de += dk_low[idx] @ k[idx].T                           # (R, S)
        df += dv_low[idx] @ v[idx].T
    return dq, dk, dv, de, df
