"""Memory-efficient exact attention, vectorised mirror of ``steps.flash_attention``.

The same ``(Tb, Sb)`` tiles, each one batched ``(..., Tb, Sb)`` product
for all the leading axes (batch, heads) at once. The extra memory is a
few tiles per thread plus one ``(..., T, Dk)`` array: linear in ``T``,
never ``T * S``. The dtype of ``q`` is preserved.

The work is spread over the CPU's cores (``common.parallel``) in chunks
that never write to the same memory, and whose results do not depend on
how many threads run them:

- forward: each block of queries is independent of the others (on a GPU
  each runs in its own thread block);
- backward: the key blocks are dealt into ``KEY_GROUPS`` groups. A group
  owns the ``dk`` and ``dv`` rows of its keys, and adds its share of
  ``dq`` into an array of its own; the shares are summed at the end.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.parallel import run_chunks
from attention_from_scratch.common.tiles import tile_mask, tiles
from attention_from_scratch.common.validate import (
    check_flash_attention_inputs,
    check_gradient,
)

# Groups of key blocks in the backward, each with its own (..., T, Dk) share
# of dq: two keep two cores busy for one more array of the size of q.
KEY_GROUPS = 2


def dealt(blocks, group):
    """The blocks of one of ``KEY_GROUPS`` groups, dealt there and back.

    Dealt like cards, but turning at each end (0 1 1 0 0 1 1 0 ... for
    two groups): under a causal mask the first keys are seen by the most
    queries, and a plain round robin (0 1 0 1 ...) would give the first
    group the most work.

    Examples
    --------
    >>> dealt(list(range(8)), 0), dealt(list(range(8)), 1)
    ([0, 3, 4, 7], [1, 2, 5, 6])
    """
    return [block for n, block in enumerate(blocks)
            if group == (n % KEY_GROUPS if n // KEY_GROUPS % 2 == 0
                         else KEY_GROUPS - 1 - n % KEY_GROUPS)]


class FlashAttentionCache(NamedTuple):
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    out: np.ndarray
    lse: np.ndarray          # (..., T)
    mask: np.ndarray | None  # (..., T, S) broadcast view, or None
    block_size: int
    scale: float
    causal: bool
    key_lengths: np.ndarray | None  # (...) broadcast view, or None


def flash_attention_forward(q, k, v, *, mask=None, causal=False, key_lengths=None,
                            block_size=128):
    """Exact attention with an online softmax, one block of queries per chunk.

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
    q, k, v, mask, causal, key_lengths, block_size = check_flash_attention_inputs(
        q, k, v, mask, causal, key_lengths, block_size, dtype=None)
    t, s = q.shape[-2], k.shape[-2]
    if mask is not None:
        mask = np.broadcast_to(mask, q.shape[:-1] + (s,))
    scale = 1.0 / np.sqrt(q.shape[-1])
    out = np.empty(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)    # (..., T, Dv)
    lse = np.empty(q.shape[:-1], dtype=q.dtype)                   # (..., T)

    def query_block(rows):
        q_tile = q[..., rows, :] * q.dtype.type(scale)            # (..., Tb, Dk)
        row_max = np.full(q_tile.shape[:-1], -np.inf, dtype=q.dtype)   # (..., Tb)
        row_sum = np.zeros_like(row_max)
        acc = np.zeros(q_tile.shape[:-1] + v.shape[-1:], dtype=q.dtype)  # (..., Tb, Dv)
        shift = np.zeros_like(row_max)
        for cols in tiles(s, block_size):
            allowed = tile_mask(rows, cols, t, s, causal=causal, key_lengths=key_lengths,
                                mask=mask)                        # (..., Tb, Sb) or None
            if allowed is not None and not allowed.any():
                continue                                          # no query sees it: skip
            p = q_tile @ np.swapaxes(k[..., cols, :], -1, -2)     # (..., Tb, Sb) scores
            if allowed is not None:
                np.copyto(p, -np.inf, where=~allowed)
            new_max = np.maximum(row_max, p.max(axis=-1))
            shift = np.where(np.isneginf(new_max), 0, new_max)    # no inf - inf
            rescale = np.exp(row_max - shift)                     # (..., Tb)
            p -= shift[..., None]
            np.exp(p, out=p)                                      # (..., Tb, Sb) weights so far
            row_sum = row_sum * rescale + p.sum(axis=-1)
            acc *= rescale[..., None]
            acc += p @ v[..., cols, :]                            # (..., Tb, Dv)
            row_max = new_max
        empty = row_sum == 0
        out[..., rows, :] = acc / np.where(empty, 1, row_sum)[..., None]
        lse[..., rows] = shift + np.log(np.where(empty, 1, row_sum))

    # the last queries see the most keys when causal: start them first
    run_chunks(query_block, tiles(t, block_size)[::-1])
    return out, FlashAttentionCache(q, k, v, out, lse, mask, block_size, scale, causal,
                                    key_lengths)


def flash_attention_backward(dout, cache):
    """Gradients ``(dq, dk, dv)`` of ``flash_attention_forward``.

    Recomputes each tile of weights as ``exp(scores - lse)``; uses
    ``rowsum(dout * out)`` for the softmax backward; skips the tiles the
    forward skipped.
    """
    q, k, v, out, lse, mask, block_size, scale, causal, key_lengths = cache
    dout = check_gradient("dout", dout, out.shape, "(..., T, Dv)", dtype=q.dtype)
    scale = q.dtype.type(scale)
    t, s = q.shape[-2], k.shape[-2]
    delta = (dout * out).sum(axis=-1)                            # (..., T)
    dk, dv = np.zeros_like(k), np.zeros_like(v)
    key_tiles = tiles(s, block_size)

    def key_group(group):
        dq = np.zeros_like(q)                                    # this group's share
        for cols in dealt(key_tiles, group):
            k_tile = k[..., cols, :] * scale                     # (..., Sb, Dk)
            dk_tile = np.zeros_like(k_tile)
            dv_tile = np.zeros(k_tile.shape[:-1] + v.shape[-1:], dtype=q.dtype)
            for rows in tiles(t, block_size):
                allowed = tile_mask(rows, cols, t, s, causal=causal,
                                    key_lengths=key_lengths, mask=mask)
                if allowed is not None and not allowed.any():
                    continue
                weights = q[..., rows, :] @ np.swapaxes(k_tile, -1, -2)   # (..., Tb, Sb)
                if allowed is not None:
                    np.copyto(weights, -np.inf, where=~allowed)
                weights -= lse[..., rows, None]
                np.exp(weights, out=weights)                     # recomputed, not stored
                dv_tile += np.swapaxes(weights, -1, -2) @ dout[..., rows, :]   # (..., Sb, Dv)
                dscores = dout[..., rows, :] @ np.swapaxes(v[..., cols, :], -1, -2)
                dscores -= delta[..., rows, None]
                dscores *= weights                               # (..., Tb, Sb) d(scores)
                dq[..., rows, :] += dscores @ k_tile             # (..., Tb, Dk)
                dk_tile += np.swapaxes(dscores, -1, -2) @ q[..., rows, :]     # (..., Sb, Dk)
                del weights, dscores        # freed before the next tile's: two tiles at most
            dk[..., cols, :] = dk_tile * scale
            dv[..., cols, :] = dv_tile
        return dq

    shares = run_chunks(key_group, range(KEY_GROUPS))
    dq = shares[0]
    for share in shares[1:]:                                     # in order: same sum always
        dq += share
    return dq, dk, dv
