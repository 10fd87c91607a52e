"""Multi-head attention, vectorised mirror of ``steps.multi_head``.

Every head at once, no loop over heads:

- the projections that read the same input are one matmul over all
  positions: ``x @ [W_Q W_K W_V]`` for self-attention, ``x_kv @ [W_K W_V]``
  for cross-attention, with the ``1/sqrt(Dh)`` folded into ``W_Q``;
- the heads are *views* of that result, ``(..., T, n, H, Dh)`` read as
  ``(..., H, T, Dh)``: every head's rows are evenly strided with unit
  column stride, which BLAS takes as it is, so nothing is copied; the head
  outputs are written straight into the merged ``(..., T, H, Dh)`` layout
  and the input gradients straight into the fused projection's layout;
- the softmax and the mask work in place on the ``(..., H, T, S)`` scores,
  and the normalisation is deferred to the ``(..., H, T, Dh)`` head
  outputs, so the ``(T, S)`` array is never divided.

Same contract as ``steps.multi_head``; computes in the dtype of ``x_q``
(float32 stays float32).
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch._validate import (
    as_float_array,
    check_multi_head_inputs,
    check_ndim,
    check_params,
    check_positive_int,
    check_same_shape,
)
from attention_from_scratch.core.softmax import stable_row_max
from attention_from_scratch.steps.multi_head import (
    PARAM_SHAPES,
    HeadsCache,
    init_multi_head_params,
)

__all__ = ["PARAM_SHAPES", "HeadsCache", "MultiHeadAttentionCache", "init_multi_head_params",
           "merge_heads", "merge_heads_backward", "merge_heads_forward",
           "multi_head_attention_backward", "multi_head_attention_forward",
           "self_multi_head_attention_backward", "self_multi_head_attention_forward",
           "split_heads", "split_heads_backward", "split_heads_forward"]


def split_heads(x, n_heads):
    """``(..., T, D) -> (..., H, T, Dh)``, contiguous, dtype preserved.

    Reshape to ``(..., T, H, Dh)`` -- the last axis splits into heads --
    then swap ``T`` and ``H``. Reshaping straight to ``(..., H, T, Dh)``
    would be wrong: it cuts the rows of ``x`` in ``H`` chunks of positions.

    Examples
    --------
    >>> x = np.arange(12.0).reshape(2, 6)          # T = 2, D = 6
    >>> split_heads(x, 3)[1].tolist()              # head 1: columns 2 and 3
    [[2.0, 3.0], [8.0, 9.0]]
    """
    x = as_float_array("x", x)
    check_ndim("x", x, 2, "(..., T, D)")
    n_heads = check_positive_int("n_heads", n_heads)
    *lead, t, d_model = x.shape
    if d_model % n_heads:
        raise ValueError(f"n_heads = {n_heads} must divide D = {d_model}")
    x = x.reshape(*lead, t, n_heads, d_model // n_heads)        # (..., T, H, Dh)
    return np.ascontiguousarray(np.swapaxes(x, -2, -3))       # (..., H, T, Dh)


def merge_heads(x):
    """``(..., H, T, Dh) -> (..., T, D)``, the inverse of ``split_heads``."""
    x = as_float_array("x", x)
    check_ndim("x", x, 3, "(..., H, T, Dh)")
    *lead, n_heads, t, d_head = x.shape
    return np.swapaxes(x, -2, -3).reshape(*lead, t, n_heads * d_head)   # (..., T, D)


def split_heads_forward(x, *, n_heads):
    """``split_heads`` as a pair: ``(out, HeadsCache)``."""
    out = split_heads(x, n_heads)
    return out, HeadsCache(np.shape(x), n_heads)


def split_heads_backward(dout, cache):
    """Gradient ``dx = merge_heads(dout)``."""
    *lead, t, d_model = cache.x_shape
    h = cache.n_heads
    check_same_shape("dout", np.asarray(dout), (*lead, h, t, d_model // h), "(..., H, T, Dh)")
    return merge_heads(dout)


def merge_heads_forward(x):
    """``merge_heads`` as a pair: ``(out, HeadsCache)``."""
    x = np.asarray(x)
    return merge_heads(x), HeadsCache(x.shape, x.shape[-3])


def merge_heads_backward(dout, cache):
    """Gradient ``dx = split_heads(dout, H)``."""
    *lead, h, t, d_head = cache.x_shape
    check_same_shape("dout", np.asarray(dout), (*lead, t, h * d_head), "(..., T, D)")
    return split_heads(dout, cache.n_heads)


def _heads(y, part):
    """Head view ``(..., H, T, Dh)`` of ``part`` of ``y`` ``(..., T, n, H, Dh)``.

    ``split_heads`` without the copy: the reshape to ``(..., T, n, H, Dh)``
    is done by ``_project``, this swaps ``T`` and ``H``.
    """
    return np.swapaxes(y[..., part, :, :], -2, -3)


class Projection(NamedTuple):
    x: np.ndarray   # (..., T, D) the input, for dw
    w: np.ndarray   # (D, n D) the fused weights [W_Q/sqrt(Dh) W_K W_V] or a part, for dx


def _project(x, w, b, n_heads):
    """``x @ w + b`` for fused ``w`` ``(D, n D)``, as ``(..., T, n, H, Dh)``."""
    *lead, t, d_model = x.shape
    y = x.reshape(-1, d_model) @ w                                # (N, n D)
    y += b
    return y.reshape(*lead, t, -1, n_heads, d_model // n_heads)   # (..., T, n, H, Dh)


def _projection_backward(dy, projection):
    """``(dx, dw, db)`` of ``_project`` for ``dy`` ``(..., T, n, H, Dh)``."""
    x, w = projection
    dy = dy.reshape(-1, w.shape[1])                               # (N, n D)
    dx = dy @ w.T                                                 # (N, D)
    dw = x.reshape(-1, x.shape[-1]).T @ dy                        # (D, n D)
    return dx.reshape(x.shape), dw, dy.sum(axis=0)


class MultiHeadAttentionCache(NamedTuple):
    projections: tuple   # one Projection per input: (x,) for self, (x_q, x_kv) for cross
    q: np.ndarray        # (..., H, T, Dh) views of the projections; q includes the scale
    k: np.ndarray        # (..., H, S, Dh)
    v: np.ndarray        # (..., H, S, Dh)
    exp_scores: np.ndarray   # (..., H, T, S): exp(scores - row max), not normalised
    total: np.ndarray    # (..., H, T, 1): row sums of exp_scores (1 for an empty row)
    concat: np.ndarray   # (..., T, H, Dh): the merged head outputs, heads as views
    w_o: np.ndarray
    scale: float

    @property
    def weights(self):
        """The attention weights of every head, ``(..., H, T, S)``."""
        return self.exp_scores / self.total


def _attend_and_project(projections, q, k, v, mask, p, scale):
    """Every head's attention, merged, then ``@ W_O + b_O``."""
    exp_scores = q @ np.swapaxes(k, -1, -2)                       # (..., H, T, S)
    if mask is not None:
        np.copyto(exp_scores, -np.inf, where=~mask)
    exp_scores -= stable_row_max(exp_scores, -1)
    np.exp(exp_scores, out=exp_scores)
    total = exp_scores.sum(axis=-1, keepdims=True)                # (..., H, T, 1)
    total[total == 0] = 1   # a row with nothing to attend to stays all zeros
    *lead, n_heads, t, d_head = q.shape
    concat = np.empty((*lead, t, n_heads, d_head), dtype=q.dtype)  # merged layout
    heads = np.matmul(exp_scores, v, out=np.swapaxes(concat, -2, -3))   # (..., H, T, Dh)
    heads /= total          # normalise T x Dh outputs, not T x S weights
    out = concat.reshape(-1, n_heads * d_head) @ p["w_o"]         # (N, D)
    out += p["b_o"]
    cache = MultiHeadAttentionCache(projections, q, k, v, exp_scores, total, concat,
                                    p["w_o"], scale)
    return out.reshape(*lead, t, n_heads * d_head), cache


def _attend_and_project_backward(dout, cache, dq, dk, dv):
    """Write the heads' gradients into the views ``dq, dk, dv``; return
    ``dw_o, db_o``."""
    q, k, v, exp_scores, total, concat, w_o = cache[1:8]
    dout = as_float_array("dout", dout, dtype=q.dtype)
    check_same_shape("dout", dout, concat.shape[:-2] + w_o.shape[1:], "(..., T, D)")
    dout_rows = dout.reshape(-1, w_o.shape[1])                    # (N, D)
    concat_rows = concat.reshape(-1, w_o.shape[0])                # (N, D)
    dw_o = concat_rows.T @ dout_rows                              # (D, D)
    db_o = dout_rows.sum(axis=0)                                  # (D,)
    dconcat = (dout_rows @ w_o.T).reshape(concat.shape)           # (..., T, H, Dh)
    # forward was heads = (exp_scores @ v) / total: divide once, on T x Dh
    dheads = np.swapaxes(dconcat, -2, -3) / total                 # (..., H, T, Dh)
    np.matmul(np.swapaxes(exp_scores, -1, -2), dheads, out=dv)    # (..., H, S, Dh)
    # softmax backward with rowsum(dweights * weights) = rowsum(dheads * heads)
    heads = np.swapaxes(concat, -2, -3)                           # (..., H, T, Dh)
    dscores = dheads @ np.swapaxes(v, -1, -2)                     # (..., H, T, S)
    dscores -= (dheads * heads).sum(axis=-1, keepdims=True)
    dscores *= exp_scores
    np.matmul(dscores, k, out=dq)                                 # (..., H, T, Dh)
    np.matmul(np.swapaxes(dscores, -1, -2), q, out=dk)            # (..., H, S, Dh)
    return dw_o, db_o


def _scaled_query_params(p, scale):
    """``W_Q / sqrt(Dh)`` and ``b_Q / sqrt(Dh)``: the scores' scale, paid on
    ``(D, D)`` weights instead of ``(T, S)`` scores."""
    scale = p["w_q"].dtype.type(scale)
    return p["w_q"] * scale, p["b_q"] * scale


def multi_head_attention_forward(x_q, x_kv, params, *, n_heads, mask=None):
    """Multi-head attention, all heads in batched matmuls, dtype preserved.

    Same contract as ``steps.multi_head.multi_head_attention_forward``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> params = init_multi_head_params(6, rng=rng)
    >>> x_q = rng.normal(size=(2, 3, 6)).astype(np.float32)
    >>> x_kv = rng.normal(size=(2, 4, 6)).astype(np.float32)
    >>> out, cache = multi_head_attention_forward(x_q, x_kv, params, n_heads=3)
    >>> out.dtype == np.float32 and cache.weights.shape == (2, 3, 3, 4)
    True
    """
    x_q = as_float_array("x_q", x_q)
    x_kv = as_float_array("x_kv", x_kv, dtype=x_q.dtype)
    mask, d_head = check_multi_head_inputs(x_q, x_kv, n_heads, mask)
    p = check_params("params", params, PARAM_SHAPES, sizes={"D": x_q.shape[-1]},
                     dtype=x_q.dtype)
    scale = 1.0 / np.sqrt(d_head)
    w_q, b_q = _scaled_query_params(p, scale)
    w_kv = np.concatenate([p["w_k"], p["w_v"]], axis=1)           # (D, 2D)
    b_kv = np.concatenate([p["b_k"], p["b_v"]])                   # (2D,)
    y_q = _project(x_q, w_q, b_q, n_heads)                        # (..., T, 1, H, Dh)
    y_kv = _project(x_kv, w_kv, b_kv, n_heads)                    # (..., S, 2, H, Dh)
    projections = (Projection(x_q, w_q), Projection(x_kv, w_kv))
    return _attend_and_project(projections, _heads(y_q, 0), _heads(y_kv, 0),
                               _heads(y_kv, 1), mask, p, scale)


def multi_head_attention_backward(dout, cache):
    """Gradients ``(dx_q, dx_kv, dparams)`` of ``multi_head_attention_forward``."""
    x_q, x_kv = cache.projections[0].x, cache.projections[1].x
    *lead, n_heads, _, d_head = cache.q.shape
    dy_q = np.empty(x_q.shape[:-1] + (1, n_heads, d_head), dtype=cache.q.dtype)
    dy_kv = np.empty(x_kv.shape[:-1] + (2, n_heads, d_head), dtype=cache.q.dtype)
    dw_o, db_o = _attend_and_project_backward(dout, cache, _heads(dy_q, 0),
                                              _heads(dy_kv, 0), _heads(dy_kv, 1))
    dx_q, dw_q, db_q = _projection_backward(dy_q, cache.projections[0])
    # [dK dV] @ [W_K W_V]^T = dK W_K^T + dV W_V^T: the two paths into x_kv add
    dx_kv, dw_kv, db_kv = _projection_backward(dy_kv, cache.projections[1])
    dw_k, dw_v = np.split(dw_kv, 2, axis=1)
    db_k, db_v = np.split(db_kv, 2)
    scale = cache.q.dtype.type(cache.scale)   # the forward used W_Q * scale
    dparams = {"w_q": dw_q * scale, "b_q": db_q * scale, "w_k": dw_k, "b_k": db_k,
               "w_v": dw_v, "b_v": db_v, "w_o": dw_o, "b_o": db_o}
    return dx_q, dx_kv, dparams


def self_multi_head_attention_forward(x, params, *, n_heads, mask=None):
    """Multi-head self-attention with one fused ``x @ [W_Q W_K W_V]``.

    Same contract as ``steps.multi_head.self_multi_head_attention_forward``.
    """
    x = as_float_array("x", x)
    mask, d_head = check_multi_head_inputs(x, x, n_heads, mask)
    p = check_params("params", params, PARAM_SHAPES, sizes={"D": x.shape[-1]},
                     dtype=x.dtype)
    scale = 1.0 / np.sqrt(d_head)
    w_q, b_q = _scaled_query_params(p, scale)
    w_qkv = np.concatenate([w_q, p["w_k"], p["w_v"]], axis=1)     # (D, 3D)
    b_qkv = np.concatenate([b_q, p["b_k"], p["b_v"]])             # (3D,)
    y = _project(x, w_qkv, b_qkv, n_heads)                        # (..., T, 3, H, Dh)
    return _attend_and_project((Projection(x, w_qkv),), _heads(y, 0), _heads(y, 1),
                               _heads(y, 2), mask, p, scale)


def self_multi_head_attention_backward(dout, cache):
    """Gradients ``(dx, dparams)``; ``dx = dx_q + dx_kv``.

    ``x`` feeds the queries, keys and values; the fused matmul
    ``[dQ dK dV] @ [W_Q W_K W_V]^T = dQ W_Q^T + dK W_K^T + dV W_V^T``
    adds the three paths.
    """
    x = cache.projections[0].x
    *lead, n_heads, _, d_head = cache.q.shape
    dy = np.empty(x.shape[:-1] + (3, n_heads, d_head), dtype=cache.q.dtype)
    dw_o, db_o = _attend_and_project_backward(dout, cache, _heads(dy, 0), _heads(dy, 1),
                                              _heads(dy, 2))
    dx, dw_qkv, db_qkv = _projection_backward(dy, cache.projections[0])
    dw_q, dw_k, dw_v = np.split(dw_qkv, 3, axis=1)
    db_q, db_k, db_v = np.split(db_qkv, 3)
    scale = cache.q.dtype.type(cache.scale)   # the forward used W_Q * scale
    dparams = {"w_q": dw_q * scale, "b_q": db_q * scale, "w_k": dw_k, "b_k": db_k,
               "w_v": dw_v, "b_v": db_v, "w_o": dw_o, "b_o": db_o}
    return dx, dparams
