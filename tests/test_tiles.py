"""Tiles of the scores, and their masks built from positions (Chapter 6)."""

import numpy as np
import pytest

from attention_from_scratch.common.masks import causal_mask, padding_mask
from attention_from_scratch.common.tiles import tile_mask, tiles


def assemble(t, s, block_size, **options):
    """The full (..., T, S) mask, put together from tile_mask's tiles."""
    rows_cols = [(rows, cols) for rows in tiles(t, block_size) for cols in tiles(s, block_size)]
    lead = np.shape(options["key_lengths"]) if "key_lengths" in options else ()
    full = np.empty((*lead, t, s), dtype=bool)
    for rows, cols in rows_cols:
        allowed = tile_mask(rows, cols, t, s, **options)
        full[..., rows, cols] = True if allowed is None else allowed
    return full


def bottom_right_causal(t, s):
    """j <= i + (S - T), from the package's causal_mask (which needs S >= T)."""
    return causal_mask(t, s) if s >= t else causal_mask(t)[:, t - s:]


@pytest.mark.parametrize("n", [1, 5, 6, 7])
@pytest.mark.parametrize("block_size", [1, 2, 3, 8])
def test_tiles_cover_the_range_once_in_order(n, block_size):
    covered = np.concatenate([np.arange(n)[part] for part in tiles(n, block_size)])
    np.testing.assert_array_equal(covered, np.arange(n))
    assert all(0 < part.stop - part.start <= block_size for part in tiles(n, block_size))


@pytest.mark.parametrize(("t", "s"), [(5, 7), (7, 5), (1, 4), (4, 1), (6, 6)])
@pytest.mark.parametrize("block_size", [1, 2, 3, 4])
def test_tiles_put_together_equal_the_full_masks(t, s, block_size):
    lengths = np.array([s, 0, s // 2, 1 if s > 1 else 0])
    causal = bottom_right_causal(t, s)
    padding = padding_mask(lengths, s)                                   # (4, 1, S)
    np.testing.assert_array_equal(assemble(t, s, block_size, causal=True), causal)
    np.testing.assert_array_equal(assemble(t, s, block_size, key_lengths=lengths),
                                  np.broadcast_to(padding, (4, t, s)))
    np.testing.assert_array_equal(assemble(t, s, block_size, causal=True, key_lengths=lengths),
                                  causal & padding)
    given = np.random.default_rng(t * s).random((4, t, s)) < 0.5
    np.testing.assert_array_equal(
        assemble(t, s, block_size, causal=True, key_lengths=lengths, mask=given),
        causal & padding & given)


def test_none_only_when_every_key_is_allowed():
    # causal: the tile below the diagonal is all allowed, the diagonal one is not
    assert tile_mask(slice(2, 4), slice(0, 2), 4, 4, causal=True) is None
    assert not tile_mask(slice(2, 4), slice(2, 4), 4, 4, causal=True).all()
    # key lengths: a tile inside every sequence needs no mask
    assert tile_mask(slice(0, 2), slice(0, 2), 2, 6, key_lengths=np.array([3, 2])) is None
    assert tile_mask(slice(0, 2), slice(0, 2), 2, 6, key_lengths=np.array([3, 1])) is not None
    assert tile_mask(slice(0, 2), slice(0, 2), 2, 6) is None
