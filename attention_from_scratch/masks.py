"""Boolean attention masks: ``True`` = this query may attend to this key (Chapter 3).

The same polarity as PyTorch's ``scaled_dot_product_attention``; note that
``nn.MultiheadAttention``'s ``key_padding_mask`` is the opposite (``True``
= ignore). Masks broadcast against scores of shape ``(..., T, S)``.
"""

import numpy as np


def _check_count(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


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

    Examples
    --------
    >>> causal_mask(2, 3).astype(int).tolist()
    [[1, 1, 0], [1, 1, 1]]
    """
    t = _check_count("t", t)
    s = t if s is None else _check_count("s", s)
    if s < t:
        raise ValueError(f"s must be at least t = {t} (queries are the last positions), "
                         f"got {s}")
    return np.arange(s)[None, :] <= np.arange(s - t, s)[:, None]     # (T, S)


def padding_mask(lengths, s, *, side="right"):
    """Mask out padding keys from per-sequence lengths.

    Parameters
    ----------
    lengths : (B,) array_like of int
        Real tokens per sequence, each in ``[0, S]``.
    s : int
        Padded length ``S``.
    side : {"right", "left"}, keyword-only
        Where the padding sits.

    Returns
    -------
    mask : (B, 1, S) ndarray of bool
        Broadcasts over the query axis ``T``; add an axis for heads with
        ``mask[:, None]``.

    Examples
    --------
    >>> padding_mask([2, 3], 3, side="left")[:, 0].astype(int).tolist()
    [[0, 1, 1], [1, 1, 1]]
    """
    s = _check_count("s", s)
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
        raise ValueError(f"lengths must be a 1-D integer array of shape (B,), got "
                         f"shape {lengths.shape} and dtype {lengths.dtype}")
    if np.any(lengths < 0) or np.any(lengths > s):
        raise ValueError(f"lengths must lie in [0, {s}], got {lengths.tolist()}")
    positions = np.arange(s)                                          # (S,)
    if side == "right":
        mask = positions[None, :] < lengths[:, None]                  # (B, S)
    elif side == "left":
        mask = positions[None, :] >= s - lengths[:, None]             # (B, S)
    else:
        raise ValueError(f'side must be "right" or "left", got {side!r}')
    return mask[:, None, :]                                           # (B, 1, S)


def sliding_window_mask(t, window, s=None):
    """Causal local attention: each query sees itself and ``window - 1`` keys before.

    Parameters
    ----------
    t : int
        Number of queries ``T``.
    window : int
        Keys each query may see, itself included.
    s : int, optional
        Number of keys (default ``T``); queries are the last positions.

    Returns
    -------
    mask : (T, S) ndarray of bool

    Examples
    --------
    >>> sliding_window_mask(4, 2).astype(int).tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    window = _check_count("window", window)
    mask = causal_mask(t, s)
    s = mask.shape[1]
    query_positions = np.arange(s - t, s)[:, None]                    # (T, 1)
    return mask & (np.arange(s)[None, :] > query_positions - window)  # (T, S)
