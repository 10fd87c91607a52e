"""Boolean attention masks: ``True`` = this query may attend to this key (Chapter 3).

The same polarity as PyTorch's ``scaled_dot_product_attention``; note that
``nn.MultiheadAttention``'s ``key_padding_mask`` is the opposite (``True``
= ignore). Masks broadcast against scores of shape ``(..., T, S)``, and
two masks combine with ``&``: a query may attend to a key only if every
mask allows it.

Examples
--------
>>> mask = causal_mask(3) & padding_mask([2, 3], 3)   # (T, S) & (B, 1, S)
>>> mask.shape
(2, 3, 3)
>>> mask[0].astype(int).tolist()     # sequence 0 has 2 real tokens
[[1, 0, 0], [1, 1, 0], [1, 1, 0]]
"""

import numpy as np

from attention_from_scratch.common.validate import as_array, check_int


def _query_positions(t, s):
    """Positions of the ``T`` queries among ``S`` keys: the last ``T``."""
    if s < t:
        raise ValueError(f"s must be at least t = {t} (the queries are the last t "
                         f"of the s positions), got s = {s}")
    return np.arange(s - t, s)[:, None]                               # (T, 1)


def causal_mask(t, s=None):
    """Query ``i`` may attend to key ``j`` iff ``j`` is not in its future.

    Parameters
    ----------
    t : int
        Number of queries ``T``.
    s : int, optional
        Number of keys ``S >= T`` (default ``T``). When ``S > T`` the ``T``
        queries are the *last* ``T`` positions, as when new tokens attend
        to cached keys: query ``i`` sits at position ``S - T + i``.

    Returns
    -------
    mask : (T, S) ndarray of bool

    See Also
    --------
    sliding_window_mask : a causal mask that also forgets the far past.

    Notes
    -----
    ``mask[i, j] = j <= i + (S - T)``. For ``S = T`` this is the lower
    triangle, ``np.tril``; for ``S > T`` it is the last ``T`` rows of the
    ``(S, S)`` mask.

    Examples
    --------
    >>> causal_mask(3).astype(int).tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    >>> causal_mask(2, 3).astype(int).tolist()   # 1 cached key, then 2 new queries
    [[1, 1, 0], [1, 1, 1]]
    """
    t = check_int("t", t)
    s = t if s is None else check_int("s", s)
    return np.arange(s)[None, :] <= _query_positions(t, s)            # (T, S)


def padding_mask(lengths, s, *, side="right"):
    """Mask out padding keys from per-sequence lengths.

    Parameters
    ----------
    lengths : (B,) array_like of int
        Real tokens per sequence, each in ``[0, S]``.
    s : int
        Padded length ``S``.
    side : {"right", "left"}, keyword-only
        Where the padding sits: after the real tokens (``"right"``) or
        before them (``"left"``).

    Returns
    -------
    mask : (B, 1, S) ndarray of bool
        Broadcasts over the query axis ``T`` of scores ``(B, T, S)``. For
        scores with a head axis, ``(B, H, T, S)``, use ``mask[:, None]``
        ``(B, 1, 1, S)``: broadcasting aligns axes from the right, so
        ``(B, 1, S)`` would meet ``H``, not ``B``.

    Notes
    -----
    Only keys are masked: a padding *query* still attends to the real
    keys, and its output is simply ignored downstream. Combined with a
    causal mask, left padding leaves the padding queries nothing to
    attend to (Chapter 3).

    Examples
    --------
    >>> padding_mask([2, 3], 3)[:, 0].astype(int).tolist()
    [[1, 1, 0], [1, 1, 1]]
    >>> padding_mask([2, 3], 3, side="left")[:, 0].astype(int).tolist()
    [[0, 1, 1], [1, 1, 1]]
    """
    if side not in ("right", "left"):
        raise ValueError(f'side must be "right" or "left", got {side!r}')
    s = check_int("s", s)
    lengths = as_array("lengths", lengths, layout="(B,)")
    if lengths.ndim != 1 or lengths.size == 0:
        raise ValueError(f"lengths must have shape (B,) with B >= 1, got shape "
                         f"{lengths.shape}")
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
    if np.any(lengths < 0) or np.any(lengths > s):
        raise ValueError(f"lengths must lie in [0, s] = [0, {s}], got {lengths.tolist()}")
    positions = np.arange(s)[None, :]                                 # (1, S)
    if side == "right":
        mask = positions < lengths[:, None]                           # (B, S)
    else:
        mask = positions >= s - lengths[:, None]                      # (B, S)
    return mask[:, None, :]                                           # (B, 1, S)


def sliding_window_mask(t, window, s=None):
    """Causal local attention: each query sees itself and ``window - 1`` keys before.

    Parameters
    ----------
    t : int
        Number of queries ``T``.
    window : int
        Keys each query may see, itself included (``>= 1``).
    s : int, optional
        Number of keys ``S >= T`` (default ``T``); as in
        :func:`causal_mask`, the queries are the last ``T`` positions.

    Returns
    -------
    mask : (T, S) ndarray of bool

    See Also
    --------
    causal_mask : the same with an unlimited window.

    Notes
    -----
    ``mask[i, j] = p - window < j <= p`` with ``p = i + (S - T)`` the
    query's position: ``causal_mask(t, s) & (j > p - window)``. Local
    attention keeps the cost per query fixed as sequences grow (Longformer,
    Beltagy et al. 2020, uses a window on both sides; this is the one-sided
    form for autoregressive models).

    Examples
    --------
    >>> sliding_window_mask(4, 2).astype(int).tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    t = check_int("t", t)
    window = check_int("window", window)
    s = t if s is None else check_int("s", s)
    query_positions = _query_positions(t, s)                          # (T, 1)
    keys = np.arange(s)[None, :]                                      # (1, S)
    return causal_mask(t, s) & (keys > query_positions - window)      # (T, S)


def decoder_self_mask(t, self_mask=None):
    """The causal ``(T, T)`` mask, AND the caller's mask if one is given.

    A decoder must never see the future, so the block applies the causal
    mask itself; ``self_mask`` can only take more away (padding).

    Examples
    --------
    >>> decoder_self_mask(2, np.array([True, False])).tolist()
    [[True, False], [True, False]]
    """
    causal = causal_mask(t)                                        # (T, T)
    return causal if self_mask is None else causal & np.asarray(self_mask)


def alibi_slopes(n_heads):
    """ALiBi's per-head slopes, the geometric sequence ``2^(-8 h / H)``.

    Head ``h = 1 .. H`` gets slope ``2^(-8 h / H)``: for ``H = 8`` the
    slopes are ``1/2, 1/4, ..., 1/256`` (Press et al. 2022, section 3).
    Steep heads look only nearby; shallow ones see far.

    Examples
    --------
    >>> alibi_slopes(4).tolist()
    [0.25, 0.0625, 0.015625, 0.00390625]
    """
    n_heads = check_int("n_heads", n_heads)
    return 2.0 ** (-8.0 * np.arange(1, n_heads + 1) / n_heads)          # (H,)


def alibi_bias(t, s=None, *, n_heads):
    """ALiBi's linear attention biases, ``-slope_h * |i - j|`` (Chapter 7).

    Parameters
    ----------
    t : int
        Number of queries ``T``.
    s : int, optional
        Number of keys ``S >= T`` (default ``T``); as in
        :func:`causal_mask`, the queries are the last ``T`` positions.
    n_heads : int, keyword-only
        ``H``: one slope per head, :func:`alibi_slopes`.

    Returns
    -------
    bias : (H, T, S) ndarray, float64
        Added to the scores before the softmax (``attention_forward``'s
        ``bias``): for a batch ``(B, T, D)`` pass ``bias[None]``.

    Notes
    -----
    Attention with Linear Biases (Press et al. 2022, "Train Short, Test
    Long") adds no position to the embeddings; each head penalises a key
    in proportion to its distance from the query, so only distances
    matter, and a distance longer than any seen in training is just a
    larger penalty. The distance is ``|p - j|`` with ``p = i + (S - T)``
    the query's position: for a decoder, under :func:`causal_mask`, it is
    the paper's ``p - j``; for an encoder, which reads both ways, the
    same penalty is applied symmetrically.

    Examples
    --------
    >>> (alibi_bias(3, n_heads=1)[0] * -256).tolist()     # slope 2^-8
    [[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]]
    >>> (alibi_bias(1, 3, n_heads=2)[:, 0] * -16).tolist()   # 2 cached keys
    [[2.0, 1.0, 0.0], [0.125, 0.0625, 0.0]]
    """
    t = check_int("t", t)
    s = t if s is None else check_int("s", s)
    distance = np.abs(_query_positions(t, s) - np.arange(s)[None, :])   # (T, S)
    return -alibi_slopes(n_heads)[:, None, None] * distance            # (H, T, S)
