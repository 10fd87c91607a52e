"""Single-head self-attention: queries, keys and values from one ``x`` (Chapter 1).

Every position of ``x`` is projected three times, by the linear pair of
Chapter 0: into a query (what it looks for), a key (how it describes
itself) and a value (what it hands over). The projections then meet in
the attention pair of Chapter 2. Because ``x`` feeds all three, its
gradient is the sum of three paths.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.params import SELF_ATTENTION_LAYOUTS
from attention_from_scratch.common.validate import check_gradient, check_self_attention_inputs
from attention_from_scratch.steps.attention import (
    AttentionCache,
    _attention_backward,
    _attention_forward,
)
from attention_from_scratch.steps.linear import LinearCache, _linear_backward, _linear_forward


class SelfAttentionCache(NamedTuple):
    q: LinearCache            # the three projections' caches ...
    k: LinearCache
    v: LinearCache
    attention: AttentionCache  # ... and the attention's

    @property
    def weights(self):
        """The attention weights, ``(..., T, T)``."""
        return self.attention.weights


def self_attention_forward(x, params, *, mask=None):
    """Single-head self-attention: ``x`` attends to itself.

    Parameters
    ----------
    x : (..., T, D) array_like
    params : dict of str -> array_like
        ``w_q (D, Dk)``, ``b_q (Dk,)``, ``w_k (D, Dk)``, ``b_k (Dk,)``,
        ``w_v (D, Dv)``, ``b_v (Dv,)``; exactly these keys.
    mask : (..., T, T) bool array_like, keyword-only, optional
        ``True`` = this query may attend to this key (see
        ``attention_forward``).

    Returns
    -------
    out : (..., T, Dv) ndarray, float64
    cache : SelfAttentionCache
        The children's caches; ``cache.weights`` are the attention weights.

    See Also
    --------
    self_attention_backward, init_self_attention_params

    Notes
    -----
    :math:`Q = X W_Q + b_Q`, :math:`K = X W_K + b_K`,
    :math:`V = X W_V + b_V`, then
    :math:`\\mathrm{softmax}(Q K^T / \\sqrt{D_k}) V` (Chapter 1; the
    attention itself is derived in Chapter 2).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> from attention_from_scratch.common.params import init_self_attention_params
    >>> params = init_self_attention_params(5, 2, 3, rng=rng)
    >>> out, cache = self_attention_forward(rng.normal(size=(4, 5)), params)
    >>> out.shape == (4, 3) and bool(np.allclose(cache.weights.sum(axis=-1), 1.0))
    True
    """
    x, params, mask = check_self_attention_inputs(x, params, mask,
                                                  layouts=SELF_ATTENTION_LAYOUTS, dtype=np.float64)
    return _self_attention_forward(x, params, mask=mask)


def _self_attention_forward(x, params, *, mask):
    q, q_cache = _linear_forward(x, params["w_q"], params["b_q"])   # (..., T, Dk)
    k, k_cache = _linear_forward(x, params["w_k"], params["b_k"])   # (..., T, Dk)
    v, v_cache = _linear_forward(x, params["w_v"], params["b_v"])   # (..., T, Dv)
    out, attention_cache = _attention_forward(q, k, v, mask=mask, bias=None)   # (..., T, Dv)
    return out, SelfAttentionCache(q_cache, k_cache, v_cache, attention_cache)


def self_attention_backward(dout, cache):
    """Gradients ``(dx, dparams)`` of ``self_attention_forward``.

    Returns
    -------
    dx : (..., T, D) ndarray
    dparams : dict of str -> ndarray
        The same keys and shapes as ``params``.
    """
    dout = check_gradient("dout", dout, cache.v.x.shape[:-1] + cache.v.w.shape[1:],
                          "(..., T, Dv)", dtype=np.float64)
    return _self_attention_backward(dout, cache)


def _self_attention_backward(dout, cache):
    dq, dk, dv = _attention_backward(dout, cache.attention)
    dx_q, dw_q, db_q = _linear_backward(dq, cache.q)
    dx_k, dw_k, db_k = _linear_backward(dk, cache.k)
    dx_v, dw_v, db_v = _linear_backward(dv, cache.v)
    # x fans out to three paths (queries, keys, values): its gradients add
    dx = dx_q + dx_k + dx_v                                        # (..., T, D)
    dparams = {"w_q": dw_q, "b_q": db_q, "w_k": dw_k, "b_k": db_k,
               "w_v": dw_v, "b_v": db_v}
    return dx, dparams
