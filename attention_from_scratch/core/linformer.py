"""Low-rank attention, vectorised mirror of ``steps.linformer``.

The projections are single matmuls broadcast over the leading axes, and
the attention over the ``R`` projected keys is ``core.attention``. Dtype
preserved.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_projection_inputs
from attention_from_scratch.core.attention import (
    AttentionCache,
    attention_backward,
    attention_forward,
)


class LinformerCache(NamedTuple):
    k: np.ndarray
    v: np.ndarray
    e: np.ndarray
    f: np.ndarray
    attention: AttentionCache


def linformer_attention_forward(q, k, v, e, f):
    """``softmax(q (E k)^T / sqrt(Dk)) (F v)``; dtype of ``q`` preserved.

    Same contract as ``steps.linformer.linformer_attention_forward``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2, 6, 3)).astype(np.float32)
    >>> out, cache = linformer_attention_forward(x, x, x, np.ones((2, 6)) / 6, np.eye(2, 6))
    >>> out.dtype == np.float32 and cache.attention.weights.shape == (2, 6, 2)
    True
    """
    q, k, v, e, f = check_projection_inputs(q, k, v, e, f, dtype=None)
    k_low = e @ k                                             # (..., R, Dk)
    v_low = f @ v                                             # (..., R, Dv)
    out, attention_cache = attention_forward(q, k_low, v_low)  # (..., T, Dv)
    return out, LinformerCache(k, v, e, f, attention_cache)


def linformer_attention_backward(dout, cache):
    """Gradients ``(dq, dk, dv, de, df)`` of ``linformer_attention_forward``."""
    k, v, e, f, attention_cache = cache
    dq, dk_low, dv_low = attention_backward(dout, attention_cache)
    r, s = e.shape
    de = (dk_low @ np.swapaxes(k, -1, -2)).reshape(-1, r, s).sum(axis=0)   # (R, S)
    df = (dv_low @ np.swapaxes(v, -1, -2)).reshape(-1, r, s).sum(axis=0)   # (R, S)
    dk = e.T @ dk_low                                         # (..., S, Dk)
    dv = f.T @ dv_low                                         # (..., S, Dv)
    return dq, dk, dv, de, df
