"""Memory-efficient exact attention, one tile at a time (Chapter 6).

The FlashAttention algorithm (Dao et al., 2022, "FlashAttention: Fast and
Memory-Efficient Exact Attention with IO-Awareness"): the same output and
gradients as ``softmax(q k^T / sqrt(Dk)) v``, without ever holding the
``(T, S)`` weights. The forward walks over the keys one tile at a time
with an *online* softmax that keeps, per query row, only the running
maximum and the running sum; the backward recomputes each tile of weights
from the row's log-sum-exp instead of reading it from a stored matrix.
A tile is ``(Tb, Sb)``: up to ``block_size`` queries by up to
``block_size`` keys (Dao et al.'s ``B_r`` and ``B_c``; ``B`` is the batch
in this package). A causal mask and key padding are built tile by tile
from positions (``common.tiles.tile_mask``), and a tile no query may see
is skipped: no scores, no exponentials.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.tiles import tile_mask, tiles
from attention_from_scratch.common.validate import (
    check_flash_attention_inputs,
    check_gradient,
)


class FlashAttentionCache(NamedTuple):
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    out: np.ndarray         # (..., T, Dv): rowsum(dout * out) replaces rowsum(dw * w)
    lse: np.ndarray         # (..., T): log-sum-exp of each score row, all that is kept
    mask: np.ndarray | None  # (..., T, S) broadcast view of the caller's mask, or None
    block_size: int
    scale: float
    causal: bool
    key_lengths: np.ndarray | None  # (...) broadcast view of the valid keys, or None


def flash_attention_forward(q, k, v, *, mask=None, causal=False, key_lengths=None,
                            block_size=128):
    """Exact attention, computed tile by tile with an online softmax.

    Parameters
    ----------
    q : (..., T, Dk) array_like
    k : (..., S, Dk) array_like
    v : (..., S, Dv) array_like
    mask : (..., T, S) bool array_like, keyword-only, optional
        ``True`` = may attend. A query with no allowed key gets zeros.
    causal : bool, keyword-only
        Query ``i`` may see key ``j`` iff ``j <= i + (S - T)``, as
        ``causal_mask(T, S)`` (the queries are the last ``T`` positions;
        for ``T > S`` the first ``T - S`` queries see nothing).
    key_lengths : int array_like, keyword-only, optional
        Valid keys per sequence, padding on the right, as
        ``padding_mask``. Its shape is a leading prefix of
        ``q.shape[:-2]``: ``(B,)`` for ``q (B, H, T, Dk)`` gives each
        batch row one length for all its heads; ``()`` one for all.
    block_size : int, keyword-only
        Rows and columns of one tile of scores.

    Returns
    -------
    out : (..., T, Dv) ndarray, float64
    cache : FlashAttentionCache
        Holds the inputs, ``out`` and one log-sum-exp per query: memory
        linear in ``T`` and ``S``, never ``T * S``.

    See Also
    --------
    flash_attention_backward, attention_from_scratch.steps.attention

    Notes
    -----
    For each query row the tile loop keeps ``m`` (largest score so far),
    ``l`` (sum of ``exp(score - m)``) and ``acc`` (sum of
    ``exp(score - m) v``). A new tile with a larger maximum ``m'``
    rescales both by ``exp(m - m')``; at the end ``out = acc / l`` and
    ``lse = m + log l``. Chapter 6 derives the update. ``mask``,
    ``causal`` and ``key_lengths`` combine: a key is seen only if all
    three allow it.

    Examples
    --------
    >>> from attention_from_scratch.steps.attention import attention_forward
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = rng.normal(size=(5, 2)), rng.normal(size=(7, 2)), rng.normal(size=(7, 3))
    >>> out, cache = flash_attention_forward(q, k, v, block_size=3)
    >>> bool(np.allclose(out, attention_forward(q, k, v)[0]))
    True
    """
    q, k, v, mask, causal, key_lengths, block_size = check_flash_attention_inputs(
        q, k, v, mask, causal, key_lengths, block_size, dtype=np.float64)
    t, s = q.shape[-2], k.shape[-2]
    if mask is not None:
        mask = np.broadcast_to(mask, q.shape[:-1] + (s,))     # a view: no (T, S) copy
    scale = 1.0 / np.sqrt(q.shape[-1])
    out = np.zeros(q.shape[:-1] + v.shape[-1:])               # (..., T, Dv)
    lse = np.zeros(q.shape[:-1])                              # (..., T)
    for idx in np.ndindex(q.shape[:-2]):
        length = None if key_lengths is None else key_lengths[idx]
        given = None if mask is None else mask[idx]           # (T, S) view
        for rows in tiles(t, block_size):
            q_tile = q[idx][rows]                             # (Tb, Dk)
            row_max = np.full(len(q_tile), -np.inf)           # m
            row_sum = np.zeros(len(q_tile))                   # l
            acc = np.zeros((len(q_tile), v.shape[-1]))        # (Tb, Dv)
            shift = np.zeros(len(q_tile))
            for cols in tiles(s, block_size):
                allowed = tile_mask(rows, cols, t, s, causal=causal, key_lengths=length,
                                    mask=given)               # (Tb, Sb) or None: all
                if allowed is not None and not allowed.any():
                    continue                                  # nothing to see: skip the tile
                scores = q_tile @ k[idx][cols].T * scale      # (Tb, Sb)
                if allowed is not None:
                    scores = np.where(allowed, scores, -np.inf)
                new_max = np.maximum(row_max, scores.max(axis=1))
                # a row with nothing allowed yet keeps m = -inf; shift by 0 to avoid inf - inf
                shift = np.where(np.isneginf(new_max), 0.0, new_max)
                rescale = np.exp(row_max - shift)             # old terms were relative to old m
                p = np.exp(scores - shift[:, None])           # (Tb, Sb)
                row_sum = row_sum * rescale + p.sum(axis=1)
                acc = acc * rescale[:, None] + p @ v[idx][cols]
                row_max = new_max
            empty = row_sum == 0                              # nothing to attend to
            out[idx][rows] = acc / np.where(empty, 1.0, row_sum)[:, None]
            # an empty row stores lse = 0 (shift 0, log 1): its scores are all -inf anyway
            lse[idx][rows] = shift + np.log(np.where(empty, 1.0, row_sum))
    return out, FlashAttentionCache(q, k, v, out, lse, mask, block_size, scale, causal,
                                    key_lengths)


def flash_attention_backward(dout, cache):
    """Gradients ``(dq, dk, dv)`` of ``flash_attention_forward``.

    Each tile of weights is recomputed as ``exp(scores - lse)``: exactly
    the forward's weights, at the price of one more ``q k^T`` per tile.
    The softmax backward needs ``rowsum(dweights * weights)``, which
    equals ``rowsum(dout * out)``: a ``(T, Dv)`` product, no ``(T, S)``.
    The tiles the forward skipped are skipped again: their weights, and
    so their gradients, are zero.
    """
    q, k, v, out, lse, mask, block_size, scale, causal, key_lengths = cache
    dout = check_gradient("dout", dout, out.shape, "(..., T, Dv)", dtype=np.float64)
    delta = (dout * out).sum(axis=-1)                         # (..., T)
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    t, s = q.shape[-2], k.shape[-2]
    for idx in np.ndindex(q.shape[:-2]):
        length = None if key_lengths is None else key_lengths[idx]
        given = None if mask is None else mask[idx]
        for cols in tiles(s, block_size):
            for rows in tiles(t, block_size):
                allowed = tile_mask(rows, cols, t, s, causal=causal, key_lengths=length,
                                    mask=given)
                if allowed is not None and not allowed.any():
                    continue
                scores = q[idx][rows] @ k[idx][cols].T * scale           # (Tb, Sb)
                if allowed is not None:
                    scores = np.where(allowed, scores, -np.inf)
                weights = np.exp(scores - lse[idx][rows][:, None])     # (Tb, Sb)
                dv[idx][cols] += weights.T @ dout[idx][rows]           # (Sb, Dv)
                dweights = dout[idx][rows] @ v[idx][cols].T            # (Tb, Sb)
                dscores = weights * (dweights - delta[idx][rows][:, None])
                # q and k meet again in every tile: their gradients add up tile by tile
                dq[idx][rows] += dscores @ k[idx][cols] * scale        # (Tb, Dk)
                dk[idx][cols] += dscores.T @ q[idx][rows] * scale      # (Sb, Dk)
    return dq, dk, dv
