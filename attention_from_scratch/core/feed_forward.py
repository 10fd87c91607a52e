"""The position-wise feed-forward network, vectorised mirror of ``steps.feed_forward``."""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.params import FFN_LAYOUTS
from attention_from_scratch.common.validate import (
    as_float_array,
    check_feed_forward_inputs,
    check_gradient,
)
from attention_from_scratch.core.linear import LinearCache, _linear_backward, _linear_forward

_GELU_C = np.sqrt(2.0 / np.pi)


class ActivationCache(NamedTuple):
    x: np.ndarray


def relu_forward(x):
    """``max(x, 0)`` elementwise, dtype kept."""
    return _relu_forward(as_float_array("x", x))


def _relu_forward(x):
    return np.maximum(x, 0), ActivationCache(x)


def relu_backward(dout, cache):
    """Gradient ``dx = dout * (x > 0)``."""
    return dout * (cache.x > 0)


def gelu_forward(x):
    """GELU in its tanh approximation, dtype kept."""
    return _gelu_forward(as_float_array("x", x))


def _gelu_forward(x):
    c = x.dtype.type(_GELU_C)
    return 0.5 * x * (1 + np.tanh(c * (x + x.dtype.type(0.044715) * x ** 3))), \
        ActivationCache(x)


def gelu_backward(dout, cache):
    """Gradient ``dx`` of ``gelu_forward``."""
    x = cache.x
    c, a = x.dtype.type(_GELU_C), x.dtype.type(0.044715)
    tanh_u = np.tanh(c * (x + a * x ** 3))
    return dout * (0.5 * (1 + tanh_u) + 0.5 * x * (1 - tanh_u ** 2) * c * (1 + 3 * a * x ** 2))


# the feed-forward network's table: its input is checked already
ACTIVATIONS = {"relu": (_relu_forward, relu_backward), "gelu": (_gelu_forward, gelu_backward)}


class FeedForwardCache(NamedTuple):
    linear_1: LinearCache
    activation: ActivationCache
    linear_2: LinearCache
    activation_name: str


def feed_forward_forward(x, params, *, activation="relu"):
    """``act(x W_1 + b_1) W_2 + b_2`` at every position, dtype of ``x`` kept.

    Examples
    --------
    >>> from attention_from_scratch.common.params import init_feed_forward_params
    >>> params = init_feed_forward_params(4, 6, rng=np.random.default_rng(0))
    >>> out, _ = feed_forward_forward(np.ones((3, 4), np.float32), params, activation="gelu")
    >>> out.dtype == np.float32 and out.shape == (3, 4)
    True
    """
    x, params = check_feed_forward_inputs(x, params, activation, layouts=FFN_LAYOUTS,
                                          dtype=None)
    return _feed_forward_forward(x, params, activation=activation)


def _feed_forward_forward(x, params, *, activation):
    act_forward, _ = ACTIVATIONS[activation]
    hidden, linear_1 = _linear_forward(x, params["w_1"], params["b_1"])   # (..., F)
    hidden, act_cache = act_forward(hidden)                              # (..., F)
    out, linear_2 = _linear_forward(hidden, params["w_2"], params["b_2"])  # (..., D)
    return out, FeedForwardCache(linear_1, act_cache, linear_2, activation)


def feed_forward_backward(dout, cache):
    """Gradients ``(dx, dparams)`` of ``feed_forward_forward``."""
    dout = check_gradient("dout", dout, cache.linear_2.x.shape[:-1] + cache.linear_2.w.shape[1:],
                          "(..., D)", dtype=cache.linear_2.x.dtype)
    return _feed_forward_backward(dout, cache)


def _feed_forward_backward(dout, cache):
    _, act_backward = ACTIVATIONS[cache.activation_name]
    dhidden, dw_2, db_2 = _linear_backward(dout, cache.linear_2)      # (..., F)
    dhidden = act_backward(dhidden, cache.activation)                 # (..., F)
    dx, dw_1, db_1 = _linear_backward(dhidden, cache.linear_1)        # (..., D)
    return dx, {"w_1": dw_1, "b_1": db_1, "w_2": dw_2, "b_2": db_2}
