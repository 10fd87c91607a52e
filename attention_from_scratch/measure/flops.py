"""Every FLOP and byte count of the book, in one place.

Counts follow one convention: one multiply-add is 2 FLOPs, so
``(T, D) @ (D, D)`` costs ``2 T D^2``; only matrix products are counted.
Elementwise work (the softmax's exponentials, masks, scaling, biases) is
``O(T S)`` per head and left out. Each name says what it counts:

- ``attention_matmul_flops``: bare attention, one head (Chapter 6);
- ``self_attention_flops``: one self-attention layer, projections and
  attention apart (Chapter 6);
- ``multi_head_matmul_flops``: multi-head attention with batch and heads,
  forward and backward (Chapter 4 and ``bench``);
- ``layer_flops``: the layers of Table 1 as ``core`` computes them;
- ``multiply_adds_per_token``: decoding with and without a KV cache
  (Chapter 5), in multiply-adds;
- ``attention_weights_bytes``: memory of the stored weights.
"""

from attention_from_scratch.common.validate import check_int

LAYER_KINDS = ("self-attention", "recurrent", "convolution", "dilated convolution",
               "restricted self-attention")


def attention_matmul_flops(t, s, d_k, d_v):
    """Matmul FLOPs of bare attention ``softmax(q k^T / sqrt(Dk)) v``.

    Parameters
    ----------
    t, s, d_k, d_v : int
        Queries ``T``, keys ``S`` and the widths ``Dk``, ``Dv``.

    Returns
    -------
    flops : int
        ``2 T S Dk`` for the scores plus ``2 T S Dv`` for the weighted sum.

    Examples
    --------
    >>> attention_matmul_flops(6, 4, 2, 5) == 2 * attention_matmul_flops(3, 4, 2, 5)  # in T
    True
    """
    t, s, d_k, d_v = (check_int(name, value) for name, value in
                      (("t", t), ("s", s), ("d_k", d_k), ("d_v", d_v)))
    return 2 * t * s * d_k + 2 * t * s * d_v


def self_attention_flops(t, d):
    """Matmul FLOPs of one self-attention layer, split into its parts.

    Parameters
    ----------
    t : int
        Sequence length ``T``.
    d : int
        Model width ``D``; all heads together (``H`` heads of width
        ``D / H`` cost the same as one head of width ``D``, Chapter 4).

    Returns
    -------
    flops : dict of int
        ``"projections"``: queries, keys, values and output, ``4 * 2 T D^2``;
        ``"attention"``: scores and weighted sum, ``2 * 2 T^2 D``.

    Examples
    --------
    >>> f = self_attention_flops(1024, 64)
    >>> f["attention"] > f["projections"]     # T > 2 D: attention dominates
    True
    """
    t, d = check_int("t", t), check_int("d", d)
    return {"projections": 8 * t * d * d, "attention": attention_matmul_flops(t, t, d, d)}


def multi_head_matmul_flops(b, t, d, n_heads, *, s=None):
    """Matmul FLOPs of multi-head attention: ``(forward, backward)``.

    Forward: the projections ``x_q @ W_Q`` and ``concat @ W_O``
    (``2 B T D^2`` each), ``x_kv @ W_K`` and ``x_kv @ W_V`` (``2 B S D^2``
    each); in each of the ``H`` heads the scores ``q k^T`` and the weighted
    sum ``weights @ v``, ``2 B T S Dh`` each. ``H Dh = D``, so the heads
    together cost ``4 B T S D`` whatever ``H``. Backward: every product
    ``a @ b`` has two gradient products, ``dout @ b^T`` and ``a^T @ dout``,
    of the same size: twice the forward.

    Examples
    --------
    >>> multi_head_matmul_flops(1, 2, 4, 2, s=3)       # B, T, D, H; S = 3
    (416, 832)
    """
    s = t if s is None else s
    if d % n_heads:
        raise ValueError(f"n_heads = {n_heads} must divide D = {d}")
    d_head = d // n_heads
    projections = 2 * (2 * b * t * d * d) + 2 * (2 * b * s * d * d)   # Q and O; K and V
    heads = n_heads * 2 * (2 * b * t * s * d_head)                    # scores, weighted sum
    forward = projections + heads
    return forward, 2 * forward


def layer_flops(kind, t, d, *, width=3):
    """Matmul FLOPs of one layer as implemented in ``core`` (Table 1's first column).

    ``self-attention``: ``4 T^2 D``; ``recurrent``: ``4 T D^2`` (``x W_x``
    and ``h W_h``); convolutions: ``2 K T D^2``; ``restricted
    self-attention``: ``4 T r D`` for the exact window (the blocked
    ``core`` version computes twice that, the price of using matmuls).

    Examples
    --------
    >>> layer_flops("self-attention", 8, 2) == 4 * 8**2 * 2
    True
    """
    t, d, width = (check_int(n, v) for n, v in (("t", t), ("d", d),
                                                          ("width", width)))
    counts = {"self-attention": 4 * t * t * d, "recurrent": 4 * t * d * d,
              "convolution": 2 * width * t * d * d,
              "dilated convolution": 2 * width * t * d * d,
              "restricted self-attention": 4 * t * width * d}
    if kind not in counts:
        raise ValueError(f"kind must be one of {LAYER_KINDS}, got {kind!r}")
    return counts[kind]


def multiply_adds_per_token(n, *, d_model, d_ff, n_layers, cached):
    """Multiply-adds of the matrix products that produce the output at position ``n``.

    Parameters
    ----------
    n : int
        1-based position of the token being produced: it attends to ``n``
        positions.
    d_model, d_ff, n_layers : int, keyword-only
    cached : bool, keyword-only
        With a KV cache only the new position is computed; without, the
        whole causal pass over ``n`` positions is run again.

    Returns
    -------
    count : int

    Notes
    -----
    Per layer and per position: four ``(D, D)`` projections, ``4 D^2``,
    and the feed-forward network, ``2 D F``. Attention of one query over
    ``n`` keys: ``n D`` for the scores and ``n D`` for the weighted sum,
    summed over the heads. Without the cache all ``n x n`` scores are
    computed, masked ones included (that is what a full pass does).
    Layer norms, biases and the softmax are ``O(D)`` per position and
    left out.

    Examples
    --------
    >>> multiply_adds_per_token(3, d_model=2, d_ff=4, n_layers=1, cached=True)
    44
    """
    per_position = 4 * d_model ** 2 + 2 * d_model * d_ff
    if cached:
        return n_layers * (per_position + 2 * n * d_model)
    return n_layers * (n * per_position + 2 * n * n * d_model)


def attention_weights_bytes(t, s, *, n_heads=1, itemsize=4):
    """Bytes of the ``(H, T, S)`` attention weights a standard layer stores.

    Examples
    --------
    >>> one_head = attention_weights_bytes(1024, 1024)
    >>> attention_weights_bytes(2048, 2048) == 4 * one_head        # quadratic in T
    True
    >>> attention_weights_bytes(1024, 1024, n_heads=8) == 8 * one_head
    True
    """
    t, s = check_int("t", t), check_int("s", s)
    n_heads = check_int("n_heads", n_heads)
    return n_heads * t * s * check_int("itemsize", itemsize)
