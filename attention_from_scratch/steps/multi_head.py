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

from attention_from_scratch.common.params import ATTENTION_LAYOUTS
from attention_from_scratch.common.validate import (
    check_array,
    check_gradient,
    check_multi_head_inputs,
    check_self_attention_gradient,
    check_split_heads_inputs,
)
from attention_from_scratch.steps.attention import _attention_backward, _attention_forward
from attention_from_scratch.steps.linear import LinearCache, _linear_backward, _linear_forward


def split_heads(x, *, n_heads):
    """Cut the last axis into heads: ``(..., T, D) -> (..., H, T, Dh)``.

    Parameters
    ----------
    x : (..., T, D) array_like
    n_heads : int, keyword-only
        ``H``; must divide ``D``.

    Returns
    -------
    heads : (..., H, T, Dh) ndarray, float64
        Head ``h`` is columns ``h Dh`` to ``(h + 1) Dh - 1`` of ``x``; its
        row ``t`` is still position ``t``.

    See Also
    --------
    merge_heads : the inverse, and so the backward.

    Examples
    --------
    >>> x = np.arange(12.0).reshape(2, 6)          # T = 2, D = 6
    >>> split_heads(x, n_heads=3)[1].tolist()              # head 1: columns 2, 3
    [[2.0, 3.0], [8.0, 9.0]]
    """
    x, n_heads = check_split_heads_inputs(x, n_heads, dtype=np.float64)
    return _split_heads(x, n_heads=n_heads)


def _split_heads(x, *, n_heads):
    d_head = x.shape[-1] // n_heads
    heads = [x[..., h * d_head:(h + 1) * d_head] for h in range(n_heads)]   # H x (..., T, Dh)
    return np.stack(heads, axis=-3)                                        # (..., H, T, Dh)


def merge_heads(heads):
    """Concatenate the heads' columns: ``(..., H, T, Dh) -> (..., T, D)``.

    Parameters
    ----------
    heads : (..., H, T, Dh) array_like

    Returns
    -------
    concat : (..., T, D) ndarray, float64
        ``Concat(head_1, ..., head_H)`` along the last axis, ``D = H Dh``.

    See Also
    --------
    split_heads : the inverse, and so the backward.
    """
    heads = check_array("heads", heads, 3, "(..., H, T, Dh)", dtype=np.float64)
    return _merge_heads(heads)


def _merge_heads(heads):
    return np.concatenate([heads[..., h, :, :] for h in range(heads.shape[-3])], axis=-1)


def rows_fed_by(split, x, position, n_heads):
    """The ``(head, row)`` pairs of ``split(x, n_heads)`` that change when
    ``x[..., position, :]`` changes: the test that catches a wrong split.

    A right split gives ``[(0, t), ..., (H - 1, t)]`` for ``t = position``:
    a position is one row of every head and nothing else. Unlike finite
    differences or a round trip through a merge, this does not trust the
    split's own inverse. Leading axes are pooled.

    Examples
    --------
    >>> rows_fed_by(split_heads, np.zeros((3, 4)), 1, 2)
    [(0, 1), (1, 1)]
    """
    x = np.array(x, dtype=np.float64)
    bumped = x.copy()
    bumped[..., position, :] += 1.0
    changed = np.any(split(bumped, n_heads=n_heads) != split(x, n_heads=n_heads),
                     axis=-1)                                                 # (..., H, T)
    changed = changed.reshape(-1, *changed.shape[-2:]).any(axis=0)           # (H, T)
    return [(int(h), int(t)) for h, t in np.argwhere(changed)]


class HeadsCache(NamedTuple):
    out_shape: tuple   # a reshape needs no values, only shapes: to check dout
    n_heads: int


def split_heads_forward(x, *, n_heads):
    """``split_heads`` as a pair: ``(heads, HeadsCache)``."""
    heads = split_heads(x, n_heads=n_heads)
    return heads, HeadsCache(heads.shape, n_heads)


def split_heads_backward(dout, cache):
    """``dx = merge_heads(dout)``: a reshape's backward is its inverse."""
    dout = check_gradient("dout", dout, cache.out_shape, "(..., H, T, Dh)", dtype=np.float64)
    return _merge_heads(dout)


def merge_heads_forward(heads):
    """``merge_heads`` as a pair: ``(concat, HeadsCache)``."""
    concat = merge_heads(heads)
    return concat, HeadsCache(concat.shape, np.shape(heads)[-3])


def merge_heads_backward(dout, cache):
    """``dheads = split_heads(dout, H)``."""
    dout = check_gradient("dout", dout, cache.out_shape, "(..., T, D)", dtype=np.float64)
    return _split_heads(dout, n_heads=cache.n_heads)


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


def multi_head_attention_forward(x_q, x_kv, params, *, n_heads, mask=None, bias=None):
    """Multi-head attention: ``x_q`` queries, ``x_kv`` keys and values.

    Parameters
    ----------
    x_q : (..., T, D) array_like
    x_kv : (..., S, D) array_like
        Same leading axes as ``x_q``; ``x_q`` itself for self-attention.
    params : dict of str -> array_like
        Exactly ``w_q, w_k, w_v, w_o`` ``(D, D)``, used as ``x @ w``, and
        ``b_q, b_k, b_v, b_o`` ``(D,)``.
    n_heads : int, keyword-only
        ``H``; must divide ``D``.
    mask : bool array_like, keyword-only, optional
        ``True`` = may attend. ``(T, S)`` or ``(..., T, S)`` (shared by
        the heads), or ``(..., H, T, S)`` (per head, size 1 where shared).
        With leading axes a per-head mask needs them: pass ``(H, T, S)``
        as ``(1, H, T, S)`` for a batch ``(B, T, D)``. When ``B = H`` a
        ``(B, T, S)`` mask could mean either and is refused
        (``ValueError``): pass ``(B, 1, T, S)`` or ``(1, H, T, S)``.
    bias : float array_like, keyword-only, optional
        Added to every head's scaled scores before the softmax; the
        shapes a mask may have, e.g. ALiBi's per-head ``(1, H, T, S)``
        (``alibi_bias``). A constant: no gradient is returned for it.

    Returns
    -------
    out : (..., T, D) ndarray, float64
    cache : MultiHeadAttentionCache
        ``cache.weights`` are the heads' weights ``(..., H, T, S)``.

    See Also
    --------
    multi_head_attention_backward, self_multi_head_attention_forward

    Notes
    -----
    A query with nothing to attend to gets zero head outputs, so its
    output is ``b_O``. Chapter 4 derives the rest.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> from attention_from_scratch.common.params import init_multi_head_params
    >>> params = init_multi_head_params(6, rng=rng)
    >>> x_q, x_kv = rng.normal(size=(2, 3, 6)), rng.normal(size=(2, 4, 6))
    >>> out, cache = multi_head_attention_forward(x_q, x_kv, params,
    ...                                           n_heads=3)
    >>> out.shape, cache.weights.shape
    ((2, 3, 6), (2, 3, 3, 4))
    """
    x_q, x_kv, params, mask, bias = check_multi_head_inputs(
        x_q, x_kv, params, n_heads, mask, bias, layouts=ATTENTION_LAYOUTS, dtype=np.float64)
    return _multi_head_attention_forward(x_q, x_kv, params, n_heads=n_heads, mask=mask,
                                         bias=bias)


def _multi_head_attention_forward(x_q, x_kv, p, *, n_heads, mask, bias):
    q, q_cache = _linear_forward(x_q, p["w_q"], p["b_q"])    # (..., T, D)
    k, k_cache = _linear_forward(x_kv, p["w_k"], p["b_k"])   # (..., S, D)
    v, v_cache = _linear_forward(x_kv, p["w_v"], p["b_v"])   # (..., S, D)
    q = _split_heads(q, n_heads=n_heads)                     # (..., H, T, Dh)
    k = _split_heads(k, n_heads=n_heads)                     # (..., H, S, Dh)
    v = _split_heads(v, n_heads=n_heads)                     # (..., H, S, Dh)
    if mask is not None:                                     # one mask per head
        mask = np.broadcast_to(mask, (*mask.shape[:-3], n_heads, *mask.shape[-2:]))
    if bias is not None:                                     # one bias per head
        bias = np.broadcast_to(bias, (*bias.shape[:-3], n_heads, *bias.shape[-2:]))
    heads, head_caches = [], []
    for h in range(n_heads):   # every head is an independent attention
        head, head_cache = _attention_forward(
            q[..., h, :, :], k[..., h, :, :], v[..., h, :, :],
            mask=None if mask is None else mask[..., h, :, :],
            bias=None if bias is None else bias[..., h, :, :])      # (..., T, Dh)
        heads.append(head)
        head_caches.append(head_cache)
    concat = _merge_heads(np.stack(heads, axis=-3))          # (..., T, D)
    out, out_cache = _linear_forward(concat, p["w_o"], p["b_o"])  # (..., T, D)
    cache = MultiHeadAttentionCache(q_cache, k_cache, v_cache, tuple(head_caches),
                                    out_cache, n_heads)
    return out, cache


def multi_head_attention_backward(dout, cache):
    """Gradients of ``multi_head_attention_forward``.

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
        For a self-attention cache, ``dx = dx_q + dx_kv``.
    dparams : dict of str -> ndarray
        The keys and shapes of ``params``.
    """
    dout = check_gradient("dout", dout, cache.q.x.shape, "(..., T, D)", dtype=np.float64)
    return _multi_head_attention_backward(dout, cache)


def _multi_head_attention_backward(dout, cache):
    dconcat, dw_o, db_o = _linear_backward(dout, cache.out)  # (..., T, D)
    dheads = _split_heads(dconcat, n_heads=cache.n_heads)  # merge's backward: (..., H, T, Dh)
    dq, dk, dv = [], [], []
    for h, head_cache in enumerate(cache.heads):
        dq_h, dk_h, dv_h = _attention_backward(dheads[..., h, :, :], head_cache)
        dq.append(dq_h)
        dk.append(dk_h)
        dv.append(dv_h)
    dq = _merge_heads(np.stack(dq, axis=-3))                 # split's backward: (..., T, D)
    dk = _merge_heads(np.stack(dk, axis=-3))                 # (..., S, D)
    dv = _merge_heads(np.stack(dv, axis=-3))                 # (..., S, D)
    dx_q, dw_q, db_q = _linear_backward(dq, cache.q)
    dx_k, dw_k, db_k = _linear_backward(dk, cache.k)
    dx_v, dw_v, db_v = _linear_backward(dv, cache.v)
    dx_kv = dx_k + dx_v   # x_kv feeds both the keys and the values: its gradients add
    dparams = {"w_q": dw_q, "b_q": db_q, "w_k": dw_k, "b_k": db_k,
               "w_v": dw_v, "b_v": db_v, "w_o": dw_o, "b_o": db_o}
    return dx_q, dx_kv, dparams


def self_multi_head_attention_forward(x, params, *, n_heads, mask=None, bias=None):
    """Self-attention: ``multi_head_attention_forward(x, x, ...)``.

    Parameters
    ----------
    x : (..., T, D) array_like
        Gives the queries, keys and values.
    params, n_heads, mask, bias
        As for ``multi_head_attention_forward`` (with ``S = T``).

    Returns
    -------
    out : (..., T, D) ndarray, float64
    cache : MultiHeadAttentionCache
    """
    x, _, params, mask, bias = check_multi_head_inputs(
        x, x, params, n_heads, mask, bias, layouts=ATTENTION_LAYOUTS, dtype=np.float64,
        names=("x", "x"))
    return _self_multi_head_attention_forward(x, params, n_heads=n_heads, mask=mask, bias=bias)


def _self_multi_head_attention_forward(x, p, *, n_heads, mask, bias):
    return _multi_head_attention_forward(x, x, p, n_heads=n_heads, mask=mask, bias=bias)


def self_multi_head_attention_backward(dout, cache):
    """Gradients ``(dx, dparams)`` of the self-attention forward.

    ``x`` reaches the output by two paths, as the queries' input and as
    the keys' and values' input, so ``dx = dx_q + dx_kv``.

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
    dout = check_self_attention_gradient(dout, cache.q.x, cache.k.x, dtype=np.float64)
    return _self_multi_head_attention_backward(dout, cache)


def _self_multi_head_attention_backward(dout, cache):
    dx_q, dx_kv, dparams = _multi_head_attention_backward(dout, cache)
    dx = dx_q + dx_kv   # x fans out to both inputs: its gradients add
    return dx, dparams
