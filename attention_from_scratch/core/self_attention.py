"""Single-head self-attention, vectorised mirror of ``steps.self_attention``.

The same composition of the ``core`` linear and attention pairs, so it
computes in the dtype of ``x`` (float32 stays float32).
"""

from typing import NamedTuple

from attention_from_scratch.common.params import SELF_ATTENTION_LAYOUTS
from attention_from_scratch.common.validate import check_input_and_params
from attention_from_scratch.core.attention import (
    AttentionCache,
    attention_backward,
    attention_forward,
)
from attention_from_scratch.core.linear import LinearCache, linear_backward, linear_forward


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
    x, params = check_input_and_params(x, params, SELF_ATTENTION_LAYOUTS, min_ndim=2,
                                       layout="(..., T, D)", dtype=None)
    q, q_cache = linear_forward(x, params["w_q"], params["b_q"])   # (..., T, Dk)
    k, k_cache = linear_forward(x, params["w_k"], params["b_k"])   # (..., T, Dk)
    v, v_cache = linear_forward(x, params["w_v"], params["b_v"])   # (..., T, Dv)
    out, attention_cache = attention_forward(q, k, v, mask=mask)   # (..., T, Dv)
    return out, SelfAttentionCache(q_cache, k_cache, v_cache, attention_cache)


def self_attention_backward(dout, cache):
    """Gradients ``(dx, dparams)`` of ``self_attention_forward``."""
    dq, dk, dv = attention_backward(dout, cache.attention)
    dx_q, dw_q, db_q = linear_backward(dq, cache.q)
    dx_k, dw_k, db_k = linear_backward(dk, cache.k)
    dx_v, dw_v, db_v = linear_backward(dv, cache.v)
    # x fans out to three paths (queries, keys, values): its gradients add
    dx = dx_q + dx_k + dx_v                                        # (..., T, D)
    dparams = {"w_q": dw_q, "b_q": db_q, "w_k": dw_k, "b_k": db_k,
               "w_v": dw_v, "b_v": db_v}
    return dx, dparams
