"""The position-wise feed-forward network, built from the linear pair (Chapter 5).

``FFN(x) = act(x W_1 + b_1) W_2 + b_2``, applied to every position on its
own with the same weights (Vaswani et al. 2017, section 3.3: ReLU,
``F = 4 D``). GELU (Hendrycks and Gimpel 2016), used by BERT and GPT, is
offered in its tanh approximation.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.params import FFN_LAYOUTS
from attention_from_scratch.common.validate import (
    as_float_array,
    check_feed_forward_inputs,
    check_gradient,
)
from attention_from_scratch.steps.linear import LinearCache, _linear_backward, _linear_forward

_GELU_C = np.sqrt(2.0 / np.pi)


class ActivationCache(NamedTuple):
    x: np.ndarray   # both derivatives are functions of the input


def relu_forward(x):
    """``max(x, 0)`` elementwise; returns ``(out, ActivationCache)``."""
    return _relu_forward(as_float_array("x", x, dtype=np.float64))


def _relu_forward(x):
    return np.maximum(x, 0.0), ActivationCache(x)


def relu_backward(dout, cache):
    """Gradient ``dx``: ``dout`` where ``x > 0``, else 0 (0 at the kink)."""
    return dout * (cache.x > 0)


def gelu_forward(x):
    """GELU, tanh form: ``x/2 (1 + tanh(c (x + 0.044715 x^3)))``, ``c = sqrt(2/pi)``."""
    return _gelu_forward(as_float_array("x", x, dtype=np.float64))


def _gelu_forward(x):
    u = _GELU_C * (x + 0.044715 * x ** 3)
    return 0.5 * x * (1.0 + np.tanh(u)), ActivationCache(x)


def gelu_backward(dout, cache):
    """Gradient ``dx`` of ``gelu_forward``: product rule on ``x/2 * (1 + tanh u)``."""
    x = cache.x
    tanh_u = np.tanh(_GELU_C * (x + 0.044715 * x ** 3))
    du_dx = _GELU_C * (1.0 + 3 * 0.044715 * x ** 2)
    return dout * (0.5 * (1.0 + tanh_u) + 0.5 * x * (1.0 - tanh_u ** 2) * du_dx)


# the feed-forward network's table: its input is checked already
ACTIVATIONS = {"relu": (_relu_forward, relu_backward), "gelu": (_gelu_forward, gelu_backward)}


class FeedForwardCache(NamedTuple):
    linear_1: LinearCache
    activation: ActivationCache
    linear_2: LinearCache
    activation_name: str


def feed_forward_forward(x, params, *, activation="relu"):
    """Two linear layers with a nonlinearity between, at every position.

    Parameters
    ----------
    x : (..., D) array_like
    params : dict
        ``w_1`` (D, F), ``b_1`` (F,), ``w_2`` (F, D), ``b_2`` (D,).
    activation : {"relu", "gelu"}, keyword-only

    Returns
    -------
    out : (..., D) ndarray, float64
    cache : FeedForwardCache

    See Also
    --------
    feed_forward_backward, init_feed_forward_params

    Notes
    -----
    Nothing here mixes positions: row ``n`` of the output depends on row
    ``n`` of the input only. Attention mixes positions; the feed-forward
    network transforms each one.

    Examples
    --------
    >>> from attention_from_scratch.common.params import init_feed_forward_params
    >>> params = init_feed_forward_params(4, 6, rng=np.random.default_rng(0))
    >>> x = np.random.default_rng(1).normal(size=(2, 3, 4))
    >>> out, cache = feed_forward_forward(x, params)
    >>> out.shape == (2, 3, 4) and bool(np.allclose(out[1], feed_forward_forward(x[1], params)[0]))
    True
    """
    x, params = check_feed_forward_inputs(x, params, activation, layouts=FFN_LAYOUTS,
                                          dtype=np.float64)
    return _feed_forward_forward(x, params, activation=activation)


def _feed_forward_forward(x, params, *, activation):
    act_forward, _ = ACTIVATIONS[activation]
    hidden, linear_1 = _linear_forward(x, params["w_1"], params["b_1"])   # (..., F)
    hidden, act_cache = act_forward(hidden)                              # (..., F)
    out, linear_2 = _linear_forward(hidden, params["w_2"], params["b_2"])  # (..., D)
    return out, FeedForwardCache(linear_1, act_cache, linear_2, activation)


def feed_forward_backward(dout, cache):
    """Gradients ``(dx, dparams)`` of ``feed_forward_forward``: the chain rule reversed."""
    dout = check_gradient("dout", dout, cache.linear_2.x.shape[:-1] + cache.linear_2.w.shape[1:],
                          "(..., D)", dtype=np.float64)
    return _feed_forward_backward(dout, cache)


def _feed_forward_backward(dout, cache):
    _, act_backward = ACTIVATIONS[cache.activation_name]
    dhidden, dw_2, db_2 = _linear_backward(dout, cache.linear_2)      # (..., F)
    dhidden = act_backward(dhidden, cache.activation)                 # (..., F)
    dx, dw_1, db_1 = _linear_backward(dhidden, cache.linear_1)        # (..., D)
    return dx, {"w_1": dw_1, "b_1": db_1, "w_2": dw_2, "b_2": db_2}
