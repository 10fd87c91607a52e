import numpy as np
import pytest

from attention_from_scratch.measure.weight_stats import row_entropy


def test_row_entropy_by_hand():
    weights = np.array([[1.0, 0.0, 0.0, 0.0],           # all on one key: 0, with 0 ln 0 = 0
                        [0.25, 0.25, 0.25, 0.25],       # uniform over 4: ln 4
                        [0.5, 0.5, 0.0, 0.0]])          # uniform over 2: ln 2
    np.testing.assert_allclose(row_entropy(weights), [0.0, np.log(4), np.log(2)])


def test_row_entropy_keeps_leading_axes_and_is_bounded(rng):
    logits = rng.normal(size=(2, 3, 5))
    weights = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    entropy = row_entropy(weights)
    assert entropy.shape == (2, 3)
    assert np.all((entropy > 0) & (entropy < np.log(5)))
    sharper = np.exp(4 * logits) / np.exp(4 * logits).sum(axis=-1, keepdims=True)
    assert row_entropy(sharper).mean() < entropy.mean()
    assert not np.isnan(row_entropy(np.eye(3))).any()


@pytest.mark.parametrize("s", [1, 7, 64])
def test_uniform_rows_reach_log_s(s):
    assert row_entropy(np.full((2, s), 1 / s)) == pytest.approx(np.log(s))
