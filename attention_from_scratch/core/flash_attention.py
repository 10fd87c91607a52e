"""Memory-efficient exact attention, vectorised mirror of ``steps.flash_attention``.

The tiles of queries are independent (on a GPU each runs in its own
thread block), so here they are processed all at once: one loop over
blocks of ``block_size`` keys, each step a batched ``(..., T, Sb)`` tile.
The extra memory is ``O(T * block_size)``: still linear in ``T``, never
``T * S``. The dtype of ``q`` is preserved.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import (
    check_attention_inputs,
    check_gradient,
    check_int,
)


class FlashAttentionCache(NamedTuple):
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    out: np.ndarray
    lse: np.ndarray          # (..., T)
    mask: np.ndarray | None  # (..., T, S) broadcast view, or None
    block_size: int
    scale: float


def flash_attention_forward(q, k, v, *, mask=None, block_size=128):
    """Exact attention with an online softmax over blocks of keys.

    Same contract as ``steps.flash_attention.flash_attention_forward``;
    computes in the dtype of ``q``.

    Examples
    --------
    >>> from attention_from_scratch.core.attention import attention_forward
    >>> rng = np.random.default_rng(0)
    >>> q = rng.normal(size=(2, 9, 4)).astype(np.float32)
    >>> out, cache = flash_attention_forward(q, q, q, block_size=4)
    >>> out.dtype == np.float32 and cache.lse.shape == (2, 9)
    True
    >>> bool(np.allclose(out, attention_forward(q, q, q)[0], atol=1e-6))
    True
    """
    q, k, v, mask = check_attention_inputs(q, k, v, mask, dtype=None)
    block_size = check_int("block_size", block_size)
    s = k.shape[-2]
    if mask is not None:
        mask = np.broadcast_to(mask, q.shape[:-1] + (s,))
    scale = 1.0 / np.sqrt(q.shape[-1])
    q_scaled = q * q.dtype.type(scale)
    row_max = np.full(q.shape[:-1], -np.inf, dtype=q.dtype)     # (..., T)
    row_sum = np.zeros(q.shape[:-1], dtype=q.dtype)             # (..., T)
    acc = np.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)  # (..., T, Dv)
    shift = np.zeros_like(row_max)
    for start in range(0, s, block_size):                       # key tiles
        cols = slice(start, start + block_size)
        p = q_scaled @ np.swapaxes(k[..., cols, :], -1, -2)     # (..., T, Sb) scores
        if mask is not None:
            np.copyto(p, -np.inf, where=~mask[..., cols])
        new_max = np.maximum(row_max, p.max(axis=-1))
        shift = np.where(np.isneginf(new_max), 0, new_max)      # no inf - inf
        rescale = np.exp(row_max - shift)                       # (..., T)
        p -= shift[..., None]
        np.exp(p, out=p)                                        # (..., T, Sb) weights so far
        row_sum = row_sum * rescale + p.sum(axis=-1)
        acc = acc * rescale[..., None] + p @ v[..., cols, :]    # (..., T, Dv)
        row_max = new_max
    empty = row_sum == 0
    out = acc / np.where(empty, 1, row_sum)[..., None]          # (..., T, Dv)
    lse = shift + np.log(np.where(empty, 1, row_sum))           # (..., T)
    return out, FlashAttentionCache(q, k, v, out, lse, mask, block_size, scale)


def flash_attention_backward(dout, cache):
    """Gradients ``(dq, dk, dv)`` of ``flash_attention_forward``.

    Recomputes each block of weights as ``exp(scores - lse)``; uses
    ``rowsum(dout * out)`` for the softmax backward.
    """
    q, k, v, out, lse, mask, block_size, scale = cache
    dout = check_gradient("dout", dout, out.shape, "(..., T, Dv)", dtype=q.dtype)
    scale = q.dtype.type(scale)
    q_scaled = q * scale
    delta = (dout * out).sum(axis=-1, keepdims=True)           # (..., T, 1)
    dq = np.zeros_like(q)
    dk, dv = np.empty_like(k), np.empty_like(v)
    for start in range(0, k.shape[-2], block_size):             # key tiles
        cols = slice(start, start + block_size)
        weights = q_scaled @ np.swapaxes(k[..., cols, :], -1, -2)   # (..., T, Sb)
        if mask is not None:
            np.copyto(weights, -np.inf, where=~mask[..., cols])
        weights -= lse[..., None]
        np.exp(weights, out=weights)                            # recomputed, not stored
        dv[..., cols, :] = np.swapaxes(weights, -1, -2) @ dout  # (..., Sb, Dv)
        dscores = dout @ np.swapaxes(v[..., cols, :], -1, -2)   # (..., T, Sb) dweights
        dscores -= delta
        dscores *= weights
        dscores *= scale
        dq += dscores @ k[..., cols, :]                         # (..., T, Dk)
        dk[..., cols, :] = np.swapaxes(dscores, -1, -2) @ q     # (..., Sb, Dk)
    return dq, dk, dv
