"""The measurements behind Chapter 2's figures say what the chapter claims."""

import numpy as np
import pytest

from attention_from_scratch import core
from attention_from_scratch.book.example import SPANISH
from attention_from_scratch.figures import chapter02 as fig


def test_row_entropy_limits():
    weights = np.array([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]])
    np.testing.assert_allclose(fig.row_entropy(weights), [0.0, np.log(4), np.log(2)])


def test_without_the_scale_the_softmax_saturates(rng):
    stats = fig.measure_scaling([1, 256], rng=rng, n_seqs=8, t=5, s=6, d_v=3)
    without, with_scale = stats["without scale"], stats["with scale"]
    # variance of a sum of Dk unit-variance products is Dk; the scale brings it back to 1
    np.testing.assert_allclose(without.variance / [1, 256], 1.0, rtol=0.25)
    np.testing.assert_allclose(with_scale.variance, 1.0, rtol=0.25)
    median = 1
    assert without.max_weight[1, median] > 0.99 > with_scale.max_weight[1, median]
    assert without.entropy[1, median] < 0.05 < 0.5 < with_scale.entropy[1, median]
    assert without.dscores_norm[1, median] < 1e-2 * without.dscores_norm[0, median]
    ratio = with_scale.dscores_norm[1, median] / with_scale.dscores_norm[0, median]
    assert 0.5 < ratio < 2.0
    # quartiles are ordered
    for field in ("max_weight", "entropy", "dscores_norm"):
        values = getattr(without, field)
        assert np.all(np.diff(values, axis=-1) >= 0)


def test_sentence_attention_rows_are_distributions(rng):
    scaled, unscaled = fig.sentence_attention(8, rng=rng)
    assert scaled.shape == unscaled.shape == (len(SPANISH), len(SPANISH))
    np.testing.assert_allclose(scaled.sum(axis=-1), 1.0)
    np.testing.assert_allclose(unscaled.sum(axis=-1), 1.0)
    # without the scale every row is sharper (its largest weight at least as large)
    assert np.all(unscaled.max(axis=-1) >= scaled.max(axis=-1))


@pytest.mark.parametrize("d_k", [1, 4])
def test_multiplying_q_by_sqrt_dk_cancels_the_scale(rng, d_k):
    q, k, v = rng.normal(size=(3, d_k)), rng.normal(size=(5, d_k)), rng.normal(size=(5, 2))
    _, cache = core.attention.attention_forward(q * np.sqrt(d_k), k, v)
    raw = q @ k.T
    expected = np.exp(raw - raw.max(-1, keepdims=True))
    np.testing.assert_allclose(cache.weights, expected / expected.sum(-1, keepdims=True))
