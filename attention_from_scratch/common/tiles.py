"""Tiles of the ``(T, S)`` scores, and their masks built from positions (Chapter 6).

Flash attention never holds the ``(T, S)`` scores, so it cannot hold a
``(T, S)`` mask either: a causal or padding mask passed as an array is
itself quadratic in memory. Both rules are simple comparisons of
positions, so each tile builds its own piece of them from two
``np.arange`` ranges, and a tile that no query may see is known before
any score of it is computed -- and skipped.
"""

import numpy as np


def tiles(n, block_size):
    """Slices ``[0:b], [b:2b], ...`` covering ``range(n)``; the last may be short."""
    return [slice(start, min(start + block_size, n)) for start in range(0, n, block_size)]


def tile_mask(rows, cols, t, s, *, causal=False, key_lengths=None, mask=None):
    """Which keys of one tile of scores each query may see, or ``None`` for all.

    Parameters
    ----------
    rows, cols : slice
        The tile: queries ``rows`` of ``T`` by keys ``cols`` of ``S``
        (from :func:`tiles`).
    t, s : int
        Number of queries ``T`` and of keys ``S``.
    causal : bool, keyword-only
        Query ``i`` sees key ``j`` iff ``j <= i + (S - T)``: the queries
        are the last ``T`` of the ``S`` positions, as in ``causal_mask``
        (when ``T > S`` the first ``T - S`` queries see nothing).
    key_lengths : (...) int array, keyword-only, optional
        Valid keys per sequence, the rest padding on the right, as in
        ``padding_mask``; one entry per leading index of the scores (a
        broadcast view is fine), or one number.
    mask : (..., T, S) bool array, keyword-only, optional
        The caller's mask (a broadcast view); its tile is ANDed in.

    Returns
    -------
    allowed : (..., Tb, Sb) bool ndarray or None
        May broadcast (e.g. ``(..., 1, Sb)`` for padding alone). ``None``
        when every query of the tile may see every key: no masking
        needed. All ``False``: nothing to see, skip the tile.

    Notes
    -----
    Equals ``causal_mask(t, s)[rows, cols] & padding_mask(key_lengths,
    s)[..., cols] & mask[..., rows, cols]``, but only ``Tb * Sb``
    booleans are ever built.

    Examples
    --------
    >>> tile_mask(slice(0, 2), slice(2, 4), 4, 4, causal=True).any()  # the future
    np.False_
    >>> tile_mask(slice(2, 4), slice(0, 2), 4, 4, causal=True) is None  # the past
    True
    >>> tile_mask(slice(0, 2), slice(2, 4), 2, 4, key_lengths=3).astype(int).tolist()
    [[1, 0]]
    """
    queries = np.arange(rows.start, rows.stop)[:, None] + (s - t)   # (Tb, 1) positions
    keys = np.arange(cols.start, cols.stop)                          # (Sb,)
    allowed = None
    if causal and keys[-1] > queries[0, 0]:        # some key lies after the first query
        allowed = keys <= queries                                    # (Tb, Sb)
    if key_lengths is not None and keys[-1] >= np.min(key_lengths):  # a sequence ends inside
        padding = keys < np.asarray(key_lengths)[..., None, None]    # (..., 1, Sb)
        allowed = padding if allowed is None else allowed & padding
    if mask is not None:
        given = mask[..., rows, cols]                                # (..., Tb, Sb)
        allowed = given if allowed is None else allowed & given
    return allowed
