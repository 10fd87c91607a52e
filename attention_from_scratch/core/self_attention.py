"""Single-head self-attention, vectorised mirror of ``steps.self_attention``.

The same composition of the ``core`` linear and attention pairs, so it
computes in the dtype of ``x`` (float32 stays float32).
"""

from typing import NamedTuple

from attention_from_scratch.common.params import SELF_ATTENTION_LAYOUTS
from attention_from_scratch.common.validate import check_gradient, check_self_attention_inputs
from attention_from_scratch.core.attention import (
    AttentionCache,
    _attention_backward,
    _attention_forward,
)
from attention_from_scratch.core.linear import LinearCache, _linear_backward, _linear_forward


class SelfAttentionCache(NamedTuple):
    q: LinearCache
    k: LinearCache
    v: LinearCache
    attention: AttentionCache

    @property
    def weights(self):
        """The attention weights, ``(..., T, T)``."""
        return self.attention.weights


def self_attention_forward(x, params, *, mask=None):
    """Single-head self-attention: ``x`` attends to itself, dtype preserved.

    Same contract as ``steps.self_attention.self_attention_forward``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> from attention_from_scratch.common.params import init_self_attention_params
    >>> params = init_self_attention_params(5, 2, 3, rng=rng)
    >>> x = rng.normal(size=(2, 4, 5)).astype(np.float32)
    >>> out, cache = self_attention_forward(x, params)
    >>> out.dtype == np.float32 and out.shape == (2, 4, 3)
    True
    """
    x, params, mask = check_self_attention_inputs(x, params, mask,
                                                  layouts=SELF_ATTENTION_LAYOUTS, dtype=None)
    return _self_attention_forward(x, params, mask=mask)


def _self_attention_forward(x, params, *, mask):
    q, q_cache = _linear_forward(x, params["w_q"], params["b_q"])   # (..., T, Dk)
    k, k_cache = _linear_forward(x, params["w_k"], params["b_k"])   # (..., T, Dk)
    v, v_cache = _linear_forward(x, params["w_v"], params["b_v"])   # (..., T, Dv)
    out, attention_cache = _attention_forward(q, k, v, mask=mask, bias=None)   # (..., T, Dv)
    return out, SelfAttentionCache(q_cache, k_cache, v_cache, attention_cache)


def self_attention_backward(dout, cache):
    """Gradients ``(dx, dparams)`` of ``self_attention_forward``."""
    dout = check_gradient("dout", dout, cache.v.x.shape[:-1] + cache.v.w.shape[1:],
                          "(..., T, Dv)", dtype=cache.v.x.dtype)
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
