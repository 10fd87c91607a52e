"""Table 1 of Vaswani et al. (2017), measured instead of quoted (Chapter 6).

"Attention Is All You Need" compares four kinds of layer on three counts:
work per layer, sequential operations, and the maximum path length
between two positions. Here each kind is a real layer from ``core`` with
random weights, mapping ``(T, D)`` to ``(T, D)``. The path length is
*measured* from gradients: output ``i`` depends on input ``j`` exactly
when the backward pass sends a non-zero gradient from ``i`` to ``j``
(:func:`reach`). The sequential operations are measured as the rounds of
all-positions-at-once computation the outputs need
(:func:`sequential_rounds`). The work is counted (``measure.flops.layer_flops``).

All layers are causal (output ``i`` may only use inputs ``<= i``), so the
question "how many layers until the last output hears the first input?"
has the same meaning for each.
"""

import math

import numpy as np

from attention_from_scratch.common.masks import causal_mask
from attention_from_scratch.common.validate import check_int
from attention_from_scratch.core import attention, convolution, local_attention, recurrent
from attention_from_scratch.measure.flops import LAYER_KINDS


def _recurrent_weights(d, rng):
    scale = 1.0 / np.sqrt(d)
    return rng.normal(size=(d, d)) * scale, rng.normal(size=(d, d)) * scale, rng.normal(size=d)


def make_layer(kind, d, *, rng, width=3, layer_index=0):
    """One layer ``x (T, D) -> (T, D)`` with random weights.

    Parameters
    ----------
    kind : str
        One of ``LAYER_KINDS``.
    d : int
        Width ``D``.
    rng : numpy.random.Generator, keyword-only
    width : int, keyword-only
        Kernel width ``K`` of a convolution, or window ``r`` of restricted
        self-attention.
    layer_index : int, keyword-only
        Position in a stack; layer ``l`` of a dilated stack has dilation
        ``K ** l`` (WaveNet, van den Oord et al., 2016).

    Returns
    -------
    forward : callable
        ``forward(x) -> (out, cache)``.
    backward : callable
        ``backward(dout, cache) -> dx``.

    Notes
    -----
    The attention layers use ``q = k = v = x``: position-wise projections
    would not change which positions are connected, so they are left out,
    and ``dx`` is the sum of the three paths.
    """
    d = check_int("d", d)
    width = check_int("width", width)
    scale = 1.0 / np.sqrt(d)
    if kind == "recurrent":
        w_x, w_h, b = _recurrent_weights(d, rng)
        return (lambda x: recurrent.recurrent_forward(x, w_x, w_h, b),
                lambda dout, cache: recurrent.recurrent_backward(dout, cache)[0])
    if kind in ("convolution", "dilated convolution"):
        w, b = rng.normal(size=(width, d, d)) * scale, rng.normal(size=d)
        dilation = width ** layer_index if kind == "dilated convolution" else 1
        return (lambda x: convolution.convolution_forward(x, w, b, dilation=dilation),
                lambda dout, cache: convolution.convolution_backward(dout, cache)[0])
    if kind == "self-attention":
        return (lambda x: attention.attention_forward(x, x, x,
                                                      mask=causal_mask(x.shape[-2])),
                lambda dout, cache: sum(attention.attention_backward(dout, cache)))
    if kind == "restricted self-attention":
        return (lambda x: local_attention.local_attention_forward(x, x, x, window=width),
                lambda dout, cache: sum(local_attention.local_attention_backward(dout, cache)))
    raise ValueError(f"kind must be one of {LAYER_KINDS}, got {kind!r}")


def reach(kind, t, *, n_layers=1, width=3, d=4, seed=0, outputs=None):
    """Which inputs each output of a stack of layers depends on.

    Parameters
    ----------
    kind : str
        One of ``LAYER_KINDS``.
    t : int
        Sequence length ``T``.
    n_layers : int, keyword-only
        Layers in the stack.
    width : int, keyword-only
        As in :func:`make_layer`.
    d, seed : int, keyword-only
        Width of the random layers and the seed of their weights.
    outputs : sequence of int, keyword-only, optional
        The output positions to trace (default: all).

    Returns
    -------
    reached : (len(outputs), T) ndarray of bool
        ``reached[n, j]``: a gradient sent back from output ``outputs[n]``
        (a random vector, all other outputs zero) arrives non-zero at
        input ``j``.

    Examples
    --------
    >>> reached = reach("convolution", 5, width=2)   # each output: itself and one before
    >>> bool(np.array_equal(reached.sum(axis=1), [1, 2, 2, 2, 2]))
    True
    """
    t, n_layers = check_int("t", t), check_int("n_layers", n_layers)
    rng = np.random.default_rng(seed)
    layers = [make_layer(kind, d, rng=rng, width=width, layer_index=index)
              for index in range(n_layers)]
    h = rng.normal(size=(t, d))
    caches = []
    for forward, _ in layers:
        h, cache = forward(h)
        caches.append(cache)
    outputs = range(t) if outputs is None else outputs
    reached = np.zeros((len(outputs), t), dtype=bool)
    for row, position in enumerate(outputs):
        grad = np.zeros_like(h)
        grad[position] = rng.normal(size=d)
        for (_, backward), cache in zip(reversed(layers), reversed(caches), strict=True):
            grad = backward(grad, cache)
        reached[row] = np.any(grad != 0, axis=-1)
    return reached


def layers_to_connect_ends(kind, t, *, width=3, max_layers=None):
    """Fewest stacked layers whose last output depends on the first input.

    Measured by :func:`reach`, adding one layer at a time.

    Examples
    --------
    >>> layers_to_connect_ends("self-attention", 50) == 1
    True
    >>> layers_to_connect_ends("convolution", 9, width=3) == (9 - 1) // (3 - 1)
    True
    """
    t = check_int("t", t)
    max_layers = t if max_layers is None else check_int("max_layers", max_layers)
    for n_layers in range(1, max_layers + 1):
        if reach(kind, t, n_layers=n_layers, width=width, outputs=[t - 1])[0, 0]:
            return n_layers
    raise ValueError(f"{kind} with width {width} does not connect {t} positions "
                     f"within {max_layers} layers")


def recurrent_steps(t, *, decay=0.5):
    """Recurrence steps between each input and the last output, measured.

    At ``x = 0``, ``b = 0`` every ``tanh'`` equals 1, so with ``W_x = I``
    and ``W_h = decay * I`` the gradient from ``h_{T-1}`` to ``x_j`` is
    ``decay ** n`` where ``n`` is the number of recurrence steps between
    them; ``n = log|gradient| / log(decay)`` reads it back.

    Returns
    -------
    steps : (T,) ndarray of int
        ``steps[j]``: recurrence steps from input ``j`` to output ``T-1``.

    Examples
    --------
    >>> bool(np.array_equal(recurrent_steps(5), np.arange(4, -1, -1)))
    True
    """
    t = check_int("t", t)
    if not 0 < decay < 1:
        raise ValueError(f"decay must lie in (0, 1), got {decay!r}")
    eye = np.eye(2)
    h, cache = recurrent.recurrent_forward(np.zeros((t, 2)), eye, decay * eye, np.zeros(2))
    dh = np.zeros_like(h)
    dh[-1, 0] = 1.0
    dx = recurrent.recurrent_backward(dh, cache)[0]
    return np.rint(np.log(dx[:, 0]) / np.log(decay)).astype(int)


def sequential_rounds(kind, t, *, width=3, d=4, seed=0):
    """Rounds of computing all positions at once until every output is known.

    Table 1's "sequential operations", measured: a *round* computes every
    position in parallel, from the inputs and from what the previous round
    produced. Values not known yet are NaN, which spreads through any
    arithmetic that touches them, so an output is known once it is not
    NaN; the rounds are counted until none is left.

    A layer whose outputs read only its inputs (attention, convolution)
    is one round: its ``core`` forward. A recurrent state ``h_t`` needs
    ``h_{t-1}``, known only from the round before. One round of it is the
    ``core`` recurrent layer run on ``T`` sequences of length 1 (a batch:
    all in parallel), whose input carries the previous round's state:
    ``tanh([x_t, h_{t-1}] [W_x; W_h] + b) = tanh(x_t W_x + h_{t-1} W_h + b)``.

    Parameters
    ----------
    kind : str
        One of ``LAYER_KINDS``.
    t : int
        Sequence length ``T``.
    width, d, seed : int, keyword-only
        As in :func:`reach`.

    Returns
    -------
    rounds : int
    outputs : (T, d) ndarray
        What the rounds computed: equal to the layer's own forward pass.

    Examples
    --------
    >>> rounds, _ = sequential_rounds("recurrent", 5)
    >>> rounds == 5 and sequential_rounds("self-attention", 5)[0] == 1
    True
    """
    t = check_int("t", t)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(t, d))                                      # (T, D)
    if kind == "recurrent":
        w_x, w_h, b = _recurrent_weights(d, rng)
        w_stacked = np.concatenate([w_x, w_h])                       # (2D, D): [W_x; W_h]

        def one_round(previous):
            state = np.concatenate([np.zeros((1, d)), previous[:-1]])     # h_{t-1}; h_{-1} = 0
            steps = np.concatenate([x, state], axis=-1)[:, None, :]       # (T, 1, 2D)
            return recurrent.recurrent_forward(steps, w_stacked, w_h, b)[0][:, 0]   # (T, D)
    else:
        forward, _ = make_layer(kind, d, rng=rng, width=width)

        def one_round(previous):
            return forward(x)[0]                                      # reads inputs only
    outputs, rounds = np.full((t, d), np.nan), 0
    while np.isnan(outputs).any():
        if rounds == t:
            raise RuntimeError(f"{kind}: outputs still unknown after {t} rounds")
        outputs, rounds = one_round(outputs), rounds + 1
    return rounds, outputs


def predicted_layers_to_connect(kind, t, *, width=3):
    """Layers needed in theory, for comparison with the measurement.

    Examples
    --------
    >>> predicted_layers_to_connect("dilated convolution", 3**3, width=3) == 3
    True
    """
    t, width = check_int("t", t), check_int("width", width)
    if kind in ("self-attention", "recurrent") or t == 1:
        return 1
    if width < 2:
        raise ValueError(f"a {kind} layer of width 1 never connects two positions")
    if kind == "dilated convolution":
        n = 0
        while width ** n < t:                # K**n positions after n layers
            n += 1
        return n
    if kind in ("convolution", "restricted self-attention"):
        return math.ceil((t - 1) / (width - 1))
    raise ValueError(f"kind must be one of {LAYER_KINDS}, got {kind!r}")
