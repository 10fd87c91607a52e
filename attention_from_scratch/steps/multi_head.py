"""Multi-head attention: split, attend, concatenate, project (Chapter 4).

``MultiHead(x_q, x_kv) = Concat(head_1, ..., head_H) W_O + b_O`` with
``head_h = Attention(Q_h, K_h, V_h)``, where ``Q_h`` is columns
``h Dh ... (h + 1) Dh`` of ``Q = x_q W_Q + b_Q`` (Vaswani et al. 2017,
section 3.2.2). One ``(D, D)`` projection split into ``H`` column blocks
is the same as ``H`` separate ``(D, Dh)`` projections. Here every head is
a separate call of Chapter 2's attention, in a loop over heads.
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
from attention_from_scratch.steps.attention import attention_backward, attention_forward
from attention_from_scratch.steps.linear import LinearCache, linear_backward, linear_forward

PARAM_SHAPES = {   # weights are (D_in, D_out): y = x @ w + b
    "w_q": ("D", "D"), "b_q": ("D",), "w_k": ("D", "D"), "b_k": ("D",),
    "w_v": ("D", "D"), "b_v": ("D",), "w_o": ("D", "D"), "b_o": ("D",),
}


def split_heads(x, n_heads):
    """``(..., T, D) -> (..., H, T, Dh)``: head ``h`` gets columns ``h Dh .. (h+1) Dh``.

    Examples
    --------
    >>> x = np.arange(12.0).reshape(2, 6)          # T = 2, D = 6
    >>> split_heads(x, 3)[1].tolist()              # head 1: columns 2 and 3
    [[2.0, 3.0], [8.0, 9.0]]
    """
    x = as_float_array("x", x, dtype=np.float64)
    check_ndim("x", x, 2, "(..., T, D)")
    n_heads = check_positive_int("n_heads", n_heads)
    d_model = x.shape[-1]
    if d_model % n_heads:
        raise ValueError(f"n_heads = {n_heads} must divide D = {d_model}")
    d_head = d_model // n_heads
    heads = [x[..., h * d_head:(h + 1) * d_head] for h in range(n_heads)]   # H x (..., T, Dh)
    return np.stack(heads, axis=-3)                                        # (..., H, T, Dh)


def merge_heads(x):
    """``(..., H, T, Dh) -> (..., T, D)``: concatenate the heads' columns.

    The inverse of ``split_heads``, and so its backward (and vice versa).
    """
    x = as_float_array("x", x, dtype=np.float64)
    check_ndim("x", x, 3, "(..., H, T, Dh)")
    return np.concatenate([x[..., h, :, :] for h in range(x.shape[-3])], axis=-1)


class HeadsCache(NamedTuple):
    x_shape: tuple   # only to check dout: a reshape needs nothing else
    n_heads: int


def split_heads_forward(x, *, n_heads):
    """``split_heads`` as a pair: ``(out, HeadsCache)``."""
    out = split_heads(x, n_heads)
    return out, HeadsCache(np.shape(x), n_heads)


def split_heads_backward(dout, cache):
    """Gradient ``dx = merge_heads(dout)``: a reshape's backward is its inverse."""
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


def init_multi_head_params(d_model, *, rng):
    """Random ``params`` for ``multi_head_attention_forward``.

    Weights are drawn from ``N(0, 1/D)`` (unit-variance inputs give
    unit-variance projections), biases are zero. The shapes do not depend
    on the number of heads: ``H`` only decides how the columns are split.
    """
    d_model = check_positive_int("d_model", d_model)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    std = 1.0 / np.sqrt(d_model)
    return {key: rng.normal(scale=std, size=(d_model,) * 2) if key[0] == "w"
            else np.zeros(d_model) for key in PARAM_SHAPES}


class MultiHeadAttentionCache(NamedTuple):
    q: LinearCache    # the three input projections
    k: LinearCache
    v: LinearCache
    heads: tuple      # one AttentionCache per head
    out: LinearCache  # the output projection
    n_heads: int

    @property
    def weights(self):
        """The attention weights of every head, ``(..., H, T, S)``."""
        return np.stack([head.weights for head in self.heads], axis=-3)


def multi_head_attention_forward(x_q, x_kv, params, *, n_heads, mask=None):
    """Multi-head attention: ``x_q`` queries, ``x_kv`` gives keys and values.

    Parameters
    ----------
    x_q : (..., T, D) array_like
    x_kv : (..., S, D) array_like
        Same leading axes as ``x_q``; pass ``x_q`` itself for
        self-attention (or use ``self_multi_head_attention_forward``).
    params : dict of str -> array_like
        ``w_q, w_k, w_v, w_o`` of shape ``(D, D)`` used as ``x @ w``,
        ``b_q, b_k, b_v, b_o`` of shape ``(D,)``; exactly these keys.
    n_heads : int, keyword-only
        ``H``; must divide ``D``.
    mask : bool array_like, keyword-only, optional
        ``(T, S)``, ``(..., T, S)`` (the same for every head) or
        ``(..., H, T, S)``; ``True`` = may attend.

    Returns
    -------
    out : (..., T, D) ndarray, float64
    cache : MultiHeadAttentionCache
        ``cache.weights`` are the heads' attention weights ``(..., H, T, S)``.

    See Also
    --------
    multi_head_attention_backward, attention_from_scratch.core.multi_head

    Notes
    -----
    ``Concat(head_1, ..., head_H) W_O + b_O`` with ``head_h =
    Attention(Q_h, K_h, V_h)`` on head ``h``'s columns of the projections
    (Chapter 4). A query with nothing to attend to gets zero head outputs,
    so its output is ``b_O``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> params = init_multi_head_params(6, rng=rng)
    >>> x_q, x_kv = rng.normal(size=(2, 3, 6)), rng.normal(size=(2, 4, 6))
    >>> out, cache = multi_head_attention_forward(x_q, x_kv, params, n_heads=3)
    >>> out.shape, cache.weights.shape
    ((2, 3, 6), (2, 3, 3, 4))
    """
    x_q = as_float_array("x_q", x_q, dtype=np.float64)
    x_kv = as_float_array("x_kv", x_kv, dtype=np.float64)
    mask, _ = check_multi_head_inputs(x_q, x_kv, n_heads, mask)
    p = check_params("params", params, PARAM_SHAPES, sizes={"D": x_q.shape[-1]},
                     dtype=np.float64)
    q, q_cache = linear_forward(x_q, p["w_q"], p["b_q"])     # (..., T, D)
    k, k_cache = linear_forward(x_kv, p["w_k"], p["b_k"])    # (..., S, D)
    v, v_cache = linear_forward(x_kv, p["w_v"], p["b_v"])    # (..., S, D)
    q = split_heads(q, n_heads)                              # (..., H, T, Dh)
    k = split_heads(k, n_heads)                              # (..., H, S, Dh)
    v = split_heads(v, n_heads)                              # (..., H, S, Dh)
    heads, head_caches = [], []
    for h in range(n_heads):   # every head is an independent attention
        head_mask = None if mask is None else mask[..., h % mask.shape[-3], :, :]  # H or 1
        head, head_cache = attention_forward(q[..., h, :, :], k[..., h, :, :],
                                             v[..., h, :, :], mask=head_mask)  # (..., T, Dh)
        heads.append(head)
        head_caches.append(head_cache)
    concat = merge_heads(np.stack(heads, axis=-3))           # (..., T, D)
    out, out_cache = linear_forward(concat, p["w_o"], p["b_o"])   # (..., T, D)
    cache = MultiHeadAttentionCache(q_cache, k_cache, v_cache, tuple(head_caches),
                                    out_cache, n_heads)
    return out, cache


def multi_head_attention_backward(dout, cache):
    """Gradients ``(dx_q, dx_kv, dparams)`` of ``multi_head_attention_forward``."""
    dconcat, dw_o, db_o = linear_backward(dout, cache.out)   # (..., T, D)
    dheads = split_heads(dconcat, cache.n_heads)             # merge's backward: (..., H, T, Dh)
    dq, dk, dv = [], [], []
    for h, head_cache in enumerate(cache.heads):
        dq_h, dk_h, dv_h = attention_backward(dheads[..., h, :, :], head_cache)
        dq.append(dq_h)
        dk.append(dk_h)
        dv.append(dv_h)
    dq = merge_heads(np.stack(dq, axis=-3))                  # split's backward: (..., T, D)
    dk = merge_heads(np.stack(dk, axis=-3))                  # (..., S, D)
    dv = merge_heads(np.stack(dv, axis=-3))                  # (..., S, D)
    dx_q, dw_q, db_q = linear_backward(dq, cache.q)
    dx_k, dw_k, db_k = linear_backward(dk, cache.k)
    dx_v, dw_v, db_v = linear_backward(dv, cache.v)
    dx_kv = dx_k + dx_v   # x_kv feeds both the keys and the values: its gradients add
    dparams = {"w_q": dw_q, "b_q": db_q, "w_k": dw_k, "b_k": db_k,
               "w_v": dw_v, "b_v": db_v, "w_o": dw_o, "b_o": db_o}
    return dx_q, dx_kv, dparams


def self_multi_head_attention_forward(x, params, *, n_heads, mask=None):
    """Multi-head self-attention: ``x`` gives queries, keys and values.

    ``multi_head_attention_forward(x, x, params, ...)``; see there.
    """
    return multi_head_attention_forward(x, x, params, n_heads=n_heads, mask=mask)


def self_multi_head_attention_backward(dout, cache):
    """Gradients ``(dx, dparams)``, with ``dx = dx_q + dx_kv``.

    ``x`` reaches the output by two paths, as the queries' input and as the
    keys' and values' input, so its gradient is the sum of the two.
    """
    dx_q, dx_kv, dparams = multi_head_attention_backward(dout, cache)
    dx = dx_q + dx_kv   # x fans out to both inputs: its gradients add
    return dx, dparams
