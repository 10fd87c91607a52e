"""Multi-head attention, vectorised mirror of ``steps.multi_head``.

Every head at once, no loop over heads:

- the projections that read the same input are one matmul:
  ``x @ [W_Q W_K W_V]`` for self-attention, ``x_kv @ [W_K W_V]`` for
  cross-attention, with the ``1/sqrt(Dh)`` folded into ``W_Q``;
- the heads are *views* of that result: ``(..., T, n, H, Dh)`` read as
  ``(..., H, T, Dh)``. A head's rows are evenly strided and its columns
  adjacent, which BLAS takes as it is (contiguous copies of the heads
  measure no faster: ``python -m attention_from_scratch bench``);
- each head of each sequence is an independent chunk of work, and the
  chunks run on every CPU core (``common.parallel``: NumPy releases
  Python's lock while it computes). The forward computes a head a tile of
  queries at a time, ``(Tb, Sb)`` scores small enough to stay in the CPU's
  cache, where the mask and the softmax work in place;
- a tile computes only the keys its queries may see: under a causal mask
  most of the upper triangle is never computed nor exponentiated, and the
  mask itself is applied only to the keys that some query of the tile
  cannot see (the diagonal block). The same result as the dense path;
- the head outputs go straight into the merged ``(..., T, H, Dh)``
  layout, and the softmax's division is done on the ``(T, Dh)`` outputs
  instead of the ``(T, S)`` weights;
- when a head's ``T S`` scores fit one tile, the forward keeps the tile
  (its exponentiated scores) for the backward. Past that the forward keeps
  no ``(T, S)`` array, only each row's max and sum, and the backward
  recomputes the exponentiated scores a block of keys at a time, with
  every query that sees them (``(Tr, Sb)`` strips), so that the block's
  ``dk`` and ``dv`` are each one product over all its queries;
- a column of ones folds an elementwise pass into a product:
  ``A 1 = rowsum(A)`` gives the forward's row sums (BLAS reads a tile
  faster than ``np.sum`` does), and in the backward
  ``[q, -m] [k, 1]^T = q k^T - m`` shifts the scores by the row max and
  ``[dw, dt] [v, 1]^T = dw v^T + dt`` adds the ``dtotal`` term, inside
  products computed anyway.

Same contract as ``steps.multi_head``; computes in the dtype of ``x_q``
(float32 stays float32). Shape letters of the tiles: ``N`` sequences (the
leading axes flattened), ``Nb`` those of one chunk, ``Tb`` the queries
and ``Sb`` the keys of a tile, ``Tr`` the queries of a strip.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.parallel import matmul, run_chunks
from attention_from_scratch.common.params import ATTENTION_LAYOUTS
from attention_from_scratch.common.tiles import tiles
from attention_from_scratch.common.validate import (
    check_array,
    check_gradient,
    check_multi_head_inputs,
    check_self_attention_gradient,
    check_split_heads_inputs,
)
from attention_from_scratch.core.softmax import stable_row_max


def split_heads(x, *, n_heads):
    """Cut the last axis into heads: ``(..., T, D) -> (..., H, T, Dh)``.

    Reshape to ``(..., T, H, Dh)`` -- the last axis splits into heads,
    no number moves -- then swap ``T`` and ``H``. Reshaping straight to
    ``(..., H, T, Dh)`` would be wrong: it cuts the flat rows of ``x``
    into chunks, so a row of a head is no longer one position.

    Parameters
    ----------
    x : (..., T, D) array_like
    n_heads : int, keyword-only
        ``H``; must divide ``D``.

    Returns
    -------
    heads : (..., H, T, Dh) ndarray, contiguous, dtype of ``x``

    See Also
    --------
    merge_heads : the inverse, and so the backward.

    Examples
    --------
    >>> x = np.arange(12.0).reshape(2, 6)          # T = 2, D = 6
    >>> split_heads(x, n_heads=3)[1].tolist()              # head 1: columns 2, 3
    [[2.0, 3.0], [8.0, 9.0]]
    """
    x, n_heads = check_split_heads_inputs(x, n_heads, dtype=None)
    return _split_heads(x, n_heads=n_heads)


def _split_heads(x, *, n_heads):
    *lead, t, d_model = x.shape
    x = x.reshape(*lead, t, n_heads, d_model // n_heads)        # (..., T, H, Dh)
    return np.ascontiguousarray(np.swapaxes(x, -2, -3))       # (..., H, T, Dh)


def merge_heads(heads):
    """Concatenate the heads' columns: ``(..., H, T, Dh) -> (..., T, D)``.

    Swap ``H`` and ``T`` back, then reshape ``(..., T, H, Dh)`` to
    ``(..., T, D)``.

    Parameters
    ----------
    heads : (..., H, T, Dh) array_like

    Returns
    -------
    concat : (..., T, D) ndarray, dtype of ``heads``

    See Also
    --------
    split_heads : the inverse, and so the backward.
    """
    heads = check_array("heads", heads, 3, "(..., H, T, Dh)", dtype=None)
    return _merge_heads(heads)


def _merge_heads(heads):
    *lead, n_heads, t, d_head = heads.shape
    return np.swapaxes(heads, -2, -3).reshape(*lead, t, n_heads * d_head)   # (..., T, D)


class HeadsCache(NamedTuple):
    out_shape: tuple   # a reshape needs no values, only shapes: to check dout
    n_heads: int


def split_heads_forward(x, *, n_heads):
    """``split_heads`` as a pair: ``(heads, HeadsCache)``."""
    heads = split_heads(x, n_heads=n_heads)
    return heads, HeadsCache(heads.shape, n_heads)


def split_heads_backward(dout, cache):
    """``dx = merge_heads(dout)``: a reshape's backward is its inverse."""
    dout = check_gradient("dout", dout, cache.out_shape, "(..., H, T, Dh)", dtype=None)
    return _merge_heads(dout)


def merge_heads_forward(heads):
    """``merge_heads`` as a pair: ``(concat, HeadsCache)``."""
    concat = merge_heads(heads)
    return concat, HeadsCache(concat.shape, np.shape(heads)[-3])


def merge_heads_backward(dout, cache):
    """``dheads = split_heads(dout, H)``."""
    dout = check_gradient("dout", dout, cache.out_shape, "(..., T, D)", dtype=None)
    return _split_heads(dout, n_heads=cache.n_heads)


def _heads(y, part):
    """Head view ``(..., H, T, Dh)`` of ``part`` of ``y``, which is
    ``(..., T, n, H, Dh)``: ``split_heads`` without the copy."""
    return np.swapaxes(y[..., part, :, :], -2, -3)


def _project(x, w, b, n_heads):
    """``x @ w + b`` for ``w (D, n D)``, as ``(..., T, n, H, Dh)``."""
    *lead, t, d_model = x.shape
    y = matmul(x.reshape(-1, d_model), w)                         # (N, n D)
    y += b
    return y.reshape(*lead, t, -1, n_heads, d_model // n_heads)   # (..., T, n, H, Dh)


def _projection_backward(dy, x, w):
    """``(dx, dw, db)`` of ``_project`` for ``dy (..., T, n, H, Dh)``."""
    dy = dy.reshape(-1, w.shape[1])                               # (N, n D)
    dx = matmul(dy, w.T)                                          # (N, D)
    dw = matmul(x.reshape(-1, x.shape[-1]).T, dy)                 # (D, n D)
    return dx.reshape(x.shape), dw, dy.sum(axis=0)


class MultiHeadAttentionCache(NamedTuple):
    """What the backward reads: the row max and row sum of the
    exponentiated scores, ``H T`` numbers each per sequence, from which the
    backward recomputes them a strip of keys at a time; and the
    exponentiated scores themselves only when a head's ``T S`` fit one tile
    (``_keeps_scores``), where keeping them is cheaper than computing them
    again (Chapter 4)."""

    x_q: np.ndarray          # (..., T, D), for dw_q
    x_kv: np.ndarray         # (..., S, D), for dw_k, dw_v; x_q itself if self
    w_q: np.ndarray          # (D, D): W_Q * scale, for dx_q
    w_kv: np.ndarray         # (D, 2D): [W_K W_V], for dx_kv
    q: np.ndarray            # (..., H, T, Dh) views of the projections; q scaled
    k: np.ndarray            # (..., H, S, Dh)
    v: np.ndarray            # (..., H, S, Dh)
    mask: object             # a copy, broadcastable to (..., H, T, S), or None
    bias: object             # the same, or None
    row_max: np.ndarray      # (..., H, T, 1): the scores' row max, 0 if nothing to see
    total: np.ndarray        # (..., H, T, 1): row sums of exp(scores - row_max), 1 if 0
    exp_scores: object       # (..., H, T, S): exp(scores - row_max), 0 where masked or
                             # not computed, when _keeps_scores(T, S); else None
    concat: np.ndarray       # (..., T, H, Dh): the merged head outputs
    w_o: np.ndarray          # (D, D)
    scale: float             # 1 / sqrt(Dh), folded into w_q

    @property
    def weights(self):
        """The attention weights of every head, ``(..., H, T, S)``: the kept
        exponentiated scores divided by their row sums, or recomputed in one
        pass from ``q``, ``k`` and the kept row max and sum."""
        if self.exp_scores is not None:
            return self.exp_scores / self.total
        scores = self.q @ np.swapaxes(self.k, -1, -2)                  # (..., H, T, S)
        if self.bias is not None:
            scores += self.bias
        if self.mask is not None:
            scores[~np.broadcast_to(self.mask, scores.shape)] = -np.inf
        scores -= self.row_max
        np.exp(scores, out=scores)
        scores /= self.total
        return scores


TILE_SIZE = 2 ** 18   # scores per tile: 1 MiB of float32 stays in the CPU's cache
KEEP_SCORES_UP_TO = None   # keep a head's scores while T S <= this; None: TILE_SIZE


def _keeps_scores(t, s):
    """Whether the forward keeps the exponentiated scores for the backward:
    by default when a head's ``T S`` scores fit one tile. The forward has
    then computed exactly the block the backward would compute again, and
    keeping it costs ``T S`` numbers per head and sequence, at most
    ``TILE_SIZE``; longer heads keep only the row max and sum, so that
    memory stays linear in ``T`` (Chapter 4).

    ``KEEP_SCORES_UP_TO``, when set, moves the cut-off (both paths give the
    same gradients to round-off): ``0`` recomputes always, as Chapter 4
    does to time the two; a larger number keeps longer heads.

    Examples
    --------
    >>> _keeps_scores(512, 512), _keeps_scores(1024, 512)
    (True, False)
    """
    up_to = TILE_SIZE if KEEP_SCORES_UP_TO is None else KEEP_SCORES_UP_TO
    return t * s <= up_to


def _chunks(n, n_heads, t, s):
    """Independent chunks of work, ``(sequences, head)``: one head of as
    many sequences as fill a tile when ``T S`` is small (few chunks, each
    batched), of one sequence when it is large."""
    per_chunk = max(1, TILE_SIZE // (t * s))                        # sequences per chunk
    return [(slice(start, min(start + per_chunk, n)), head)
            for head in range(n_heads) for start in range(0, n, per_chunk)]


def _tiles(mask, t, s):
    """The forward's plan: ``(rows, cols, partly)`` per block of
    ``TILE_SIZE // S`` queries (at least 16).

    ``cols`` slices the keys that any query of the block may see, in any
    sequence or head (None when none may): the keys outside are never
    computed, so a causal mask skips most of its upper triangle, a padding
    mask the padded keys. ``partly`` indexes, within the ``(rows, cols)``
    tile, the keys that some query may not see, ``(..., keys)`` (None when
    all may): only there is the mask applied.
    """
    return [(rows, cols, None if partly is None else (..., partly))
            for rows, cols, partly in _plan(mask, t, s, axis=0)]


def _strips(mask, t, s):
    """The backward's plan: ``(rows, cols, partly)`` per block of
    ``TILE_SIZE // T`` keys (at least 16).

    ``_tiles`` with queries and keys swapped: ``rows`` slices the queries
    that see some key of the block ``cols`` (None when none do), and
    ``partly`` indexes, within the ``(rows, cols)`` tile, the queries that
    do not see them all, ``(..., queries, :)``.
    """
    return [(rows, cols, None if partly is None else (..., partly, slice(None)))
            for cols, rows, partly in _plan(mask, t, s, axis=1)]


def _plan(mask, t, s, axis):
    """``(block, span, partly)`` per block of the ``(T, S)`` grid along
    ``axis`` (0: queries, 1: keys): ``span`` slices the other axis where
    some entry of the block is visible, ``partly`` slices, within ``span``,
    where some is not."""
    length, across = (t, s) if axis == 0 else (s, t)
    blocks = tiles(length, max(16, TILE_SIZE // across))
    if mask is None:
        return [(block, slice(0, across), None) for block in blocks]
    lead = mask.reshape(-1, *mask.shape[-2:])                       # (N, T or 1, S or 1)
    # visible in some sequence and head, and in all of them
    seen_by_any, seen_by_all = (lead[0], lead[0]) if len(lead) == 1 else (
        lead.any(axis=0), lead.all(axis=0))
    seen_by_any, seen_by_all = (np.broadcast_to(a, (t, s)) for a in (seen_by_any, seen_by_all))
    plan = []
    for block in blocks:
        index = (block,) if axis == 0 else (slice(None), block)
        seen = np.flatnonzero(seen_by_any[index].any(axis=axis))    # seen by some of the block
        if seen.size == 0:
            plan.append((block, None, None))
            continue
        span = slice(int(seen[0]), int(seen[-1]) + 1)
        index = (block, span) if axis == 0 else (span, block)
        hidden = np.flatnonzero(~seen_by_all[index].all(axis=axis))  # not seen by all of it
        partly = slice(int(hidden[0]), int(hidden[-1]) + 1) if hidden.size else None
        plan.append((block, span, partly))
    return plan


def _per_head(a, q_shape, s):
    """A mask or bias (or None) as ``(N, H, T, S)``, the leading axes of the
    queries ``(..., H, T, Dh)`` flattened to ``N``: a view but for the
    leading axes, which NumPy copies when ``a`` is shared along some of
    them and not others (a copy of ``a``'s own entries per sequence, never
    spread over the heads or positions it is shared by)."""
    if a is None:
        return None
    *lead, n_heads, t, _ = q_shape
    a = np.asarray(a)
    a = a.reshape((1,) * (len(lead) + 3 - a.ndim) + a.shape)        # (..., H|1, T|1, S|1)
    own = a.shape[-3:]
    a = np.broadcast_to(a, (*lead, *own)).reshape(-1, *own)         # (N, H|1, T|1, S|1)
    return np.broadcast_to(a, (a.shape[0], n_heads, t, s))          # (N, H, T, S) view


def _exp_tile(q, k, bias, mask, partly, *, shifted=False, out=None):
    """The exponentiated scores of one tile, ``exp(q k^T + bias - row_max)``,
    ``(Nb, Tb, Sb)``, with 0 where the mask hides a key; and the row max.

    ``q (Nb, Tb, Dh)`` and ``k (Nb, Sb, Dh)`` are the tile's queries and
    keys, ``bias`` and ``mask`` the tile's (or None). The mask is applied
    only on ``partly``, the part of the tile where some query does not see
    some key (an index into the tile, or None).

    The forward finds the row max and returns it. The backward already has
    it and passes ``q`` and ``k`` with a column each, ``[q, -row_max]``
    and ``[k, 1]``, whose product is the scores minus the row max
    (``shifted=True``; None is returned for the row max): the numbers the
    forward exponentiated, to round-off. ``out``, if given, receives the
    tile (the forward writes a head's kept scores there).
    """
    scores = np.matmul(q, np.swapaxes(k, -1, -2), out=out)                 # (Nb, Tb, Sb)
    if bias is not None:
        scores += bias
    if partly is not None:
        np.copyto(scores[partly], -np.inf, where=~mask[partly])
    row_max = None
    if not shifted:
        row_max = stable_row_max(scores, -1)                               # (Nb, Tb, 1)
        scores -= row_max
    return np.exp(scores, out=scores), row_max


def _in_tile(a, tile):
    """``a[tile]``, or None for no mask or bias."""
    return None if a is None else a[tile]


def _attend_and_project(q, k, v, mask, bias, w_o, b_o):
    """Every head's attention, merged, then ``@ W_O + b_O``.

    Returns ``out (..., T, D)`` and what the backward reads: the row max
    and row sum of the exponentiated scores, the exponentiated scores
    themselves if ``_keeps_scores`` (else None), and ``concat``. The bias
    is a constant added to the (already scaled) scores. The work is cut
    into independent chunks (``_chunks``) that run on every core, each
    computed one tile of queries at a time (``_tiles``); the leading axes
    are flattened to ``N`` sequences.
    """
    *lead, n_heads, t, d_head = q.shape
    s = k.shape[-2]
    plan = _tiles(mask, t, s)                                       # (rows, cols, partly)
    mask, bias = _per_head(mask, q.shape, s), _per_head(bias, q.shape, s)   # (N, H, T, S)
    q, k, v = (a.reshape(-1, n_heads, a.shape[-2], d_head) for a in (q, k, v))
    n = q.shape[0]
    row_max = np.zeros((n, n_heads, t, 1), dtype=q.dtype)           # (N, H, T, 1)
    total = np.ones((n, n_heads, t, 1), dtype=q.dtype)              # (N, H, T, 1)
    concat = np.zeros((n, t, n_heads, d_head), dtype=q.dtype)       # (N, T, H, Dh)
    heads = np.swapaxes(concat, 1, 2)                               # (N, H, T, Dh) view
    kept_exp_scores = (np.zeros((n, n_heads, t, s), dtype=q.dtype)  # (N, H, T, S)
                       if _keeps_scores(t, s) else None)

    def attend(chunk):                                              # (sequences, head)
        for rows, cols, partly in plan:
            if cols is None:
                continue                          # nothing to attend to: zeros, total 1
            queries = chunk + (rows,)             # the tile's rows of every (N, H, T, .)
            tile = queries + (cols,)
            exp_scores, row_max[queries] = _exp_tile(
                q[chunk][:, rows], k[chunk][:, cols], _in_tile(bias, tile),
                _in_tile(mask, tile), partly, out=_in_tile(kept_exp_scores, tile))
            # the row sums as a product with a column of ones: faster than a sum here.
            # Numbers in [0, 1] cannot sum to an invalid value, yet this product
            # once raised NumPy's "invalid value" warning in a test run (not
            # reproduced in 3000 reruns): a flag left by BLAS, not the numbers
            ones = np.ones((exp_scores.shape[-1], 1), dtype=q.dtype)   # (Sb, 1)
            with np.errstate(invalid="ignore"):
                row_total = exp_scores @ ones                           # (Nb, Tb, 1)
            row_total[row_total == 0] = 1         # a row with nothing to attend to
            total[queries] = row_total
            weighted = np.matmul(exp_scores, v[chunk][:, cols], out=heads[queries])
            weighted /= row_total   # divide Tb x Dh outputs, not Tb x Sb weights

    run_chunks(attend, _chunks(n, n_heads, t, s))
    out = matmul(concat.reshape(-1, n_heads * d_head), w_o)         # (N T, D): heads merged
    out += b_o
    if kept_exp_scores is not None:
        kept_exp_scores = kept_exp_scores.reshape(*lead, n_heads, t, s)
    return (out.reshape(*lead, t, n_heads * d_head), row_max.reshape(*lead, n_heads, t, 1),
            total.reshape(*lead, n_heads, t, 1), kept_exp_scores,
            concat.reshape(*lead, t, n_heads, d_head))


def _attention_backward(dheads, cache):
    """Gradients of every head's attention for ``dheads (..., H, T, Dh)``.

    Returned in the projections' layouts, ``dy_q (..., T, 1, H, Dh)``
    holding ``dq`` and ``dy_kv (..., S, 2, H, Dh)`` holding ``dk, dv``,
    so that each projection's backward is one matmul. The chunks are the
    forward's, each computed a block of keys at a time (``_strips``), with
    every query that sees them, so that a block's ``dk`` and ``dv`` are
    each one product and ``dq`` adds up over the strips. The exponentiated
    scores are read from the cache when the forward kept them (then a
    head's keys are one strip), and otherwise recomputed with the
    forward's row max.
    """
    c = cache
    *lead, n_heads, t, d_head = c.q.shape
    s = c.k.shape[-2]
    strips = _strips(c.mask, t, s)                                  # (rows, cols, partly)
    mask, bias = _per_head(c.mask, c.q.shape, s), _per_head(c.bias, c.q.shape, s)
    flat = (dheads, c.q, c.k, c.v, c.row_max, c.total, np.swapaxes(c.concat, -2, -3))
    dheads, q, k, v, row_max, total, heads = (                  # leading axes as one, N
        a.reshape(-1, *a.shape[-3:]) for a in flat)
    kept = c.exp_scores is not None
    kept_exp_scores = c.exp_scores.reshape(-1, n_heads, t, s) if kept else None   # (N, H, T, S)
    n = q.shape[0]
    dy_q = np.zeros((n, t, 1, n_heads, d_head), dtype=q.dtype)     # (N, T, 1, H, Dh)
    dy_kv = np.zeros((n, s, 2, n_heads, d_head), dtype=q.dtype)    # (N, S, 2, H, Dh)
    dq, dk, dv = _heads(dy_q, 0), _heads(dy_kv, 0), _heads(dy_kv, 1)

    def backward(chunk):
        # forward: weighted = exp_scores @ v, total = rowsum(exp_scores),
        # heads = weighted / total
        dweighted = dheads[chunk] / total[chunk]                                    # (Nb, T, Dh)
        dtotal = -np.einsum("ntd,ntd->nt", dweighted, heads[chunk])[..., None]     # (Nb, T, 1)
        ones = np.ones((*dtotal.shape[:-2], s, 1), dtype=q.dtype)                  # (Nb, S, 1)
        dweighted_total = np.concatenate([dweighted, dtotal], axis=-1)             # (Nb, T, Dh+1)
        v_ones = np.concatenate([v[chunk], ones], axis=-1)                         # (Nb, S, Dh+1)
        if not kept:   # [q, -row_max] [k, 1]^T = scores - row_max, to recompute exp_scores
            q_shift = np.concatenate([q[chunk], -row_max[chunk]], axis=-1)        # (Nb, T, Dh+1)
            k_ones = np.concatenate([k[chunk], ones], axis=-1)                     # (Nb, S, Dh+1)
        dq_chunk = np.zeros_like(dweighted)       # (Nb, T, Dh): dq adds up over the strips
        for rows, cols, partly in strips:
            if rows is None:
                continue                          # keys no query sees: dk, dv stay 0
            if kept:
                exp_scores = kept_exp_scores[chunk][:, rows, cols]                  # (Nb, Tr, Sb)
            else:
                tile = chunk + (rows, cols)
                exp_scores, _ = _exp_tile(q_shift[:, rows], k_ones[:, cols],
                                          _in_tile(bias, tile), _in_tile(mask, tile),
                                          partly, shifted=True)                     # (Nb, Tr, Sb)
            np.matmul(np.swapaxes(exp_scores, -1, -2), dweighted[:, rows],
                      out=dv[chunk][:, cols])                                       # (Nb, Sb, Dh)
            # exp_scores feeds weighted and total: dexp_scores = dweighted v^T + dtotal,
            # one product with a column each, [dweighted, dtotal] [v, 1]^T
            dexp_scores = (dweighted_total[:, rows]
                           @ np.swapaxes(v_ones[:, cols], -1, -2))                  # (Nb, Tr, Sb)
            # exp's backward (the row max is a shift: it gets no gradient)
            dscores = np.multiply(dexp_scores, exp_scores, out=dexp_scores)
            np.matmul(np.swapaxes(dscores, -1, -2), q[chunk][:, rows],
                      out=dk[chunk][:, cols])                                       # (Nb, Sb, Dh)
            dq_chunk[:, rows] += dscores @ k[chunk][:, cols]                        # (Nb, Tr, Dh)
        dq[chunk] = dq_chunk                      # into the projection's layout, once

    run_chunks(backward, _chunks(n, n_heads, t, s))
    return dy_q.reshape(*lead, *dy_q.shape[1:]), dy_kv.reshape(*lead, *dy_kv.shape[1:])


def _scaled_query_params(p, d_head):
    """``W_Q / sqrt(Dh)``, ``b_Q / sqrt(Dh)`` and the scale: the scores'
    scale, paid on ``(D, D)`` weights instead of ``(T, S)`` scores."""
    scale = 1.0 / np.sqrt(d_head)
    return p["w_q"] * p["w_q"].dtype.type(scale), p["b_q"] * p["b_q"].dtype.type(scale), scale


def multi_head_attention_forward(x_q, x_kv, params, *, n_heads, mask=None, bias=None):
    """Multi-head attention, all heads in batched matmuls, dtype preserved.

    Same contract as ``steps.multi_head.multi_head_attention_forward``:
    a per-head mask for inputs with leading axes is ``(..., H, T, S)``,
    e.g. ``(1, H, T, S)`` for a batch ``(B, T, D)``; with ``B = H`` a
    ``(B, T, S)`` mask is ambiguous and refused.

    Parameters
    ----------
    x_q : (..., T, D) array_like
    x_kv : (..., S, D) array_like
    params : dict of str -> array_like
        ``w_q, w_k, w_v, w_o (D, D)``, ``b_q, b_k, b_v, b_o (D,)``.
    n_heads : int, keyword-only
    mask : bool array_like, keyword-only, optional
        ``(T, S)``, ``(..., T, S)`` or ``(..., H, T, S)``.
    bias : float array_like, keyword-only, optional
        Added to the scaled scores before the softmax; a mask's shapes.
        A constant: no gradient is returned for it.

    Returns
    -------
    out : (..., T, D) ndarray, dtype of ``x_q``
    cache : MultiHeadAttentionCache
        Keeps the row max and row sum of the exponentiated scores,
        ``(..., H, T, 1)`` each, and the ``(..., H, T, S)`` exponentiated
        scores themselves only while a head's scores fit one tile
        (``_keeps_scores``); past that the backward recomputes them a
        strip of keys at a time, one more thin ``q k^T`` product and
        exponential, and memory stays linear in ``T`` (Chapter 4).

    See Also
    --------
    multi_head_attention_backward, self_multi_head_attention_forward

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> from attention_from_scratch.common.params import init_multi_head_params
    >>> params = init_multi_head_params(6, rng=rng)
    >>> x_q = rng.normal(size=(2, 3, 6)).astype(np.float32)
    >>> x_kv = rng.normal(size=(2, 4, 6)).astype(np.float32)
    >>> out, cache = multi_head_attention_forward(x_q, x_kv, params,
    ...                                           n_heads=3)
    >>> out.dtype == np.float32 and cache.weights.shape == (2, 3, 3, 4)
    True
    """
    x_q, x_kv, params, mask, bias = check_multi_head_inputs(
        x_q, x_kv, params, n_heads, mask, bias, layouts=ATTENTION_LAYOUTS, dtype=None)
    return _multi_head_attention_forward(x_q, x_kv, params, n_heads=n_heads, mask=mask,
                                         bias=bias)


def _own_copy(a):
    """A copy of a mask or bias for the cache, so that the backward reads
    what the forward did even if the caller reuses its array; an axis it is
    broadcast along (stride 0) stays of size 1, not spread out."""
    if a is None:
        return None
    return a[tuple(slice(0, 1) if stride == 0 else slice(None) for stride in a.strides)].copy()


def _multi_head_attention_forward(x_q, x_kv, p, *, n_heads, mask, bias):
    mask, bias = _own_copy(mask), _own_copy(bias)
    w_q, b_q, scale = _scaled_query_params(p, x_q.shape[-1] // n_heads)
    w_kv = np.concatenate([p["w_k"], p["w_v"]], axis=1)           # (D, 2D)
    b_kv = np.concatenate([p["b_k"], p["b_v"]])                   # (2D,)
    y_q = _project(x_q, w_q, b_q, n_heads)                        # (..., T, 1, H, Dh)
    y_kv = _project(x_kv, w_kv, b_kv, n_heads)                    # (..., S, 2, H, Dh)
    q, k, v = _heads(y_q, 0), _heads(y_kv, 0), _heads(y_kv, 1)
    out, row_max, total, exp_scores, concat = _attend_and_project(q, k, v, mask, bias,
                                                                  p["w_o"], p["b_o"])
    return out, MultiHeadAttentionCache(x_q, x_kv, w_q, w_kv, q, k, v, mask, bias, row_max,
                                        total, exp_scores, concat, p["w_o"], scale)


def multi_head_attention_backward(dout, cache):
    """Gradients ``(dx_q, dx_kv, dparams)`` of the multi-head forward.

    Parameters
    ----------
    dout : (..., T, D) array_like
    cache : MultiHeadAttentionCache
        From ``multi_head_attention_forward`` or
        ``self_multi_head_attention_forward``.

    Returns
    -------
    dx_q : (..., T, D) ndarray
    dx_kv : (..., S, D) ndarray
    dparams : dict of str -> ndarray
        The keys and shapes of ``params``.
    """
    dout = check_gradient("dout", dout, cache.x_q.shape, "(..., T, D)", dtype=cache.q.dtype)
    return _multi_head_attention_backward(dout, cache)


def _multi_head_attention_backward(dout, cache):
    c = cache
    d_model = c.w_o.shape[0]
    dout_rows = dout.reshape(-1, d_model)                         # (N, D)
    dw_o = matmul(c.concat.reshape(-1, d_model).T, dout_rows)     # (D, D)
    db_o = dout_rows.sum(axis=0)                                  # (D,)
    dconcat = matmul(dout_rows, c.w_o.T).reshape(c.concat.shape)  # (..., T, H, Dh)
    dy_q, dy_kv = _attention_backward(np.swapaxes(dconcat, -2, -3), c)   # merge's backward
    dx_q, dw_q, db_q = _projection_backward(dy_q, c.x_q, c.w_q)
    # [dK dV] @ [W_K W_V]^T = dK W_K^T + dV W_V^T: the two paths into x_kv add
    dx_kv, dw_kv, db_kv = _projection_backward(dy_kv, c.x_kv, c.w_kv)
    dw_k, dw_v = np.split(dw_kv, 2, axis=1)
    db_k, db_v = np.split(db_kv, 2)
    scale = c.q.dtype.type(c.scale)   # the forward used W_Q * scale
    dparams = {"w_q": dw_q * scale, "b_q": db_q * scale, "w_k": dw_k, "b_k": db_k,
               "w_v": dw_v, "b_v": db_v, "w_o": dw_o, "b_o": db_o}
    return dx_q, dx_kv, dparams


def self_multi_head_attention_forward(x, params, *, n_heads, mask=None, bias=None):
    """Multi-head self-attention with one fused ``x @ [W_Q W_K W_V]``.

    Same contract as the ``steps`` version.

    Parameters
    ----------
    x : (..., T, D) array_like
    params, n_heads, mask, bias
        As for ``multi_head_attention_forward`` (with ``S = T``).

    Returns
    -------
    out : (..., T, D) ndarray, dtype of ``x``
    cache : MultiHeadAttentionCache
        The one ``multi_head_attention_forward(x, x, ...)`` gives.
    """
    x, _, params, mask, bias = check_multi_head_inputs(
        x, x, params, n_heads, mask, bias, layouts=ATTENTION_LAYOUTS, dtype=None,
        names=("x", "x"))
    return _self_multi_head_attention_forward(x, params, n_heads=n_heads, mask=mask, bias=bias)


def _self_multi_head_attention_forward(x, p, *, n_heads, mask, bias):
    mask, bias = _own_copy(mask), _own_copy(bias)
    w_q, b_q, scale = _scaled_query_params(p, x.shape[-1] // n_heads)
    w_qkv = np.concatenate([w_q, p["w_k"], p["w_v"]], axis=1)     # (D, 3D)
    b_qkv = np.concatenate([b_q, p["b_k"], p["b_v"]])             # (3D,)
    y = _project(x, w_qkv, b_qkv, n_heads)                        # (..., T, 3, H, Dh)
    q, k, v = _heads(y, 0), _heads(y, 1), _heads(y, 2)
    out, row_max, total, exp_scores, concat = _attend_and_project(q, k, v, mask, bias,
                                                                  p["w_o"], p["b_o"])
    d_model = x.shape[-1]
    return out, MultiHeadAttentionCache(x, x, w_qkv[:, :d_model], w_qkv[:, d_model:], q, k,
                                        v, mask, bias, row_max, total, exp_scores, concat,
                                        p["w_o"], scale)


def self_multi_head_attention_backward(dout, cache):
    """Gradients ``(dx, dparams)`` of the self-attention forward.

    ``x`` feeds the queries and the keys and values: ``dx = dx_q + dx_kv``.

    Parameters
    ----------
    dout : (..., T, D) array_like
    cache : MultiHeadAttentionCache
        From a forward with ``x_q`` equal to ``x_kv`` (``ValueError``
        otherwise: use ``multi_head_attention_backward``).

    Returns
    -------
    dx : (..., T, D) ndarray
    dparams : dict of str -> ndarray
    """
    dout = check_self_attention_gradient(dout, cache.x_q, cache.x_kv, dtype=cache.q.dtype)
    return _self_multi_head_attention_backward(dout, cache)


def _self_multi_head_attention_backward(dout, cache):
    dx_q, dx_kv, dparams = _multi_head_attention_backward(dout, cache)
    dx = dx_q + dx_kv   # x fans out to both inputs: its gradients add
    return dx, dparams
