"""Sliding-window attention, vectorised mirror of ``steps.local_attention``.

Blocked, as fast local-attention kernels do it: cut the positions into
blocks of ``window``; a query in block ``b`` can only see keys in blocks
``b - 1`` and ``b``, so each block of queries attends to a ``2 * window``
slice of keys with one batched matmul, and a fixed band mask keeps the
exact window. Work and memory are ``O(S * window)``, linear in the
length. Dtype preserved.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_gradient, check_window_attention_inputs
from attention_from_scratch.core.softmax import masked_softmax_in_place


class LocalAttentionCache(NamedTuple):
    q_blocks: np.ndarray   # (..., B, W, Dk) queries, block by block
    k_pairs: np.ndarray    # (..., B, 2W, Dk) keys of the previous and the same block
    v_pairs: np.ndarray    # (..., B, 2W, Dv)
    weights: np.ndarray    # (..., B, W, 2W)
    t: int
    front: int             # zero rows put before the keys so blocks line up
    scale: float


def to_blocks(x, front, window):
    """Prepend ``front`` zero rows and cut the positions into blocks of ``window``."""
    padded = np.concatenate([np.zeros_like(x[..., :1, :]).repeat(front, axis=-2), x],
                            axis=-2)                                  # (..., L, D)
    return padded.reshape(x.shape[:-2] + (-1, window, x.shape[-1]))  # (..., L / W, W, D)


def pairs(blocks):
    """Block ``b - 1`` next to block ``b``, for ``b = 1 ..``: ``(..., B, 2W, D)``."""
    return np.concatenate([blocks[..., :-1, :, :], blocks[..., 1:, :, :]], axis=-2)


def band(n_pairs, window, front):
    """``(B, W, 2W)`` mask: query ``i`` of block ``b`` may see pair column ``c``."""
    i = np.arange(window)[:, None]
    c = np.arange(2 * window)[None, :]
    in_window = (c > i) & (c <= i + window)                           # (W, 2W)
    key_position = np.arange(n_pairs)[:, None] * window + np.arange(2 * window)  # (B, 2W)
    return in_window & (key_position >= front)[:, None, :]            # not a padding key


def local_attention_forward(q, k, v, *, window):
    """Causal attention restricted to the ``window`` most recent keys, blocked.

    Same contract as ``steps.local_attention.local_attention_forward``;
    queries before the last ``T`` positions are computed and dropped.

    Examples
    --------
    >>> from attention_from_scratch.core.attention import attention_forward
    >>> from attention_from_scratch.common.masks import sliding_window_mask
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2, 10, 3))
    >>> out, _ = local_attention_forward(x, x, x, window=4)
    >>> masked, _ = attention_forward(x, x, x, mask=sliding_window_mask(10, 4))
    >>> bool(np.allclose(out, masked))
    True
    """
    q, k, v, window = check_window_attention_inputs(q, k, v, window, dtype=None)
    t, s = q.shape[-2], k.shape[-2]
    front = window + (-s) % window          # one whole block of padding, then round up
    scale = 1.0 / np.sqrt(q.shape[-1])
    q_blocks = to_blocks(q, front + s - t, window)[..., 1:, :, :]    # (..., B, W, Dk)
    k_pairs = pairs(to_blocks(k, front, window))                     # (..., B, 2W, Dk)
    v_pairs = pairs(to_blocks(v, front, window))                     # (..., B, 2W, Dv)
    weights = (q_blocks * q.dtype.type(scale)) @ np.swapaxes(k_pairs, -1, -2)  # (..., B, W, 2W)
    # padding queries that see only padding keys get all-zero rows
    masked_softmax_in_place(weights, band(k_pairs.shape[-3], window, front))
    out = weights @ v_pairs                                          # (..., B, W, Dv)
    out = out.reshape(q.shape[:-2] + (-1, v.shape[-1]))[..., -t:, :]  # (..., T, Dv)
    return out, LocalAttentionCache(q_blocks, k_pairs, v_pairs, weights, t, front, scale)


def from_pairs(dpairs, front):
    """Backward of ``pairs`` then ``to_blocks``: add both halves back, drop the padding."""
    window = dpairs.shape[-2] // 2
    lead, n_pairs, d = dpairs.shape[:-3], dpairs.shape[-3], dpairs.shape[-1]
    dblocks = np.zeros(lead + (n_pairs + 1, window, d), dtype=dpairs.dtype)
    dblocks[..., :-1, :, :] += dpairs[..., :window, :]   # a block is the left half of pair b+1
    dblocks[..., 1:, :, :] += dpairs[..., window:, :]    # ... and the right half of pair b
    return dblocks.reshape(lead + (-1, d))[..., front:, :]


def local_attention_backward(dout, cache):
    """Gradients ``(dq, dk, dv)`` of ``local_attention_forward``."""
    q_blocks, k_pairs, v_pairs, weights, t, front, scale = cache
    lead, n_pairs, window = q_blocks.shape[:-3], q_blocks.shape[-3], q_blocks.shape[-2]
    dout = check_gradient("dout", dout, lead + (t, v_pairs.shape[-1]), "(..., T, Dv)",
                          dtype=weights.dtype)
    dout_blocks = np.zeros(lead + (n_pairs * window, dout.shape[-1]), dtype=dout.dtype)
    dout_blocks[..., -t:, :] = dout                                  # dropped queries: 0
    dout_blocks = dout_blocks.reshape(lead + (n_pairs, window, -1))  # (..., B, W, Dv)
    dv_pairs = np.swapaxes(weights, -1, -2) @ dout_blocks            # (..., B, 2W, Dv)
    dscores = dout_blocks @ np.swapaxes(v_pairs, -1, -2)             # (..., B, W, 2W)
    dscores -= (dscores * weights).sum(axis=-1, keepdims=True)
    dscores *= weights
    dscores *= weights.dtype.type(scale)
    dq = (dscores @ k_pairs).reshape(lead + (-1, k_pairs.shape[-1]))[..., -t:, :]
    dk_pairs = np.swapaxes(dscores, -1, -2) @ q_blocks               # (..., B, 2W, Dk)
    return dq, from_pairs(dk_pairs, front), from_pairs(dv_pairs, front)
