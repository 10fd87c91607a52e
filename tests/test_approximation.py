import numpy as np
import pytest

from attention_from_scratch import core
from attention_from_scratch.common.masks import causal_mask
from attention_from_scratch.measure.approximation import (
    INPUT_KINDS,
    METHODS,
    approximate,
    approximation_errors,
    approximation_runs,
    example_inputs,
    pooling_projection,
    random_features,
    relative_error,
)


def test_pooling_projection_averages_segments():
    p = pooling_projection(3, 7)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert np.all((p > 0).sum(axis=0) == 1)                  # every position in one segment
    assert np.all(np.diff(np.argmax(p > 0, axis=0)) >= 0)    # contiguous, in order
    np.testing.assert_array_equal(pooling_projection(4, 4), np.eye(4))
    with pytest.raises(ValueError, match="r must be at most s = 3, got 4"):
        pooling_projection(4, 3)


def test_random_features_shape_and_checks(rng):
    assert random_features(7, 3, rng=rng).shape == (7, 3)
    assert random_features(2, 5, rng=rng, orthogonal=False).shape == (2, 5)
    with pytest.raises(ValueError, match="m must be at least 1"):
        random_features(0, 3, rng=rng)


def test_relative_error():
    assert relative_error([3.0, 4.0], [3.0, 4.0]) == 0.0
    assert relative_error([0.0, 0.0], [3.0, 4.0]) == 1.0
    with pytest.raises(ValueError, match=r"approx must have the shape of exact \(2,\)"):
        relative_error([1.0], [1.0, 2.0])


def test_local_inputs_attend_to_neighbours(rng):
    q, k, v = example_inputs("local", 64, 8, rng=rng)
    assert q.shape == k.shape == v.shape == (64, 8)
    _, cache = core.attention.attention_forward(q, k, v, mask=causal_mask(64))
    offset = np.arange(64)[:, None] - np.arange(64)[None, :]
    assert (cache.weights * (offset < 8)).sum(axis=-1).mean() > 0.9
    with pytest.raises(ValueError, match="d must be even"):
        example_inputs("local", 8, 3, rng=rng)


def test_smooth_inputs_change_slowly_and_random_ones_do_not(rng):
    for kind, expected in (("smooth", True), ("random", False)):
        q, k, _ = example_inputs(kind, 128, 6, rng=rng)
        step = np.linalg.norm(np.diff(k, axis=0), axis=1).mean()
        assert (step < 0.2 * np.linalg.norm(k, axis=1).mean()) == expected
    with pytest.raises(ValueError, match="kind must be one of"):
        example_inputs("noisy", 8, 4, rng=rng)


def test_each_method_wins_where_its_assumption_holds():
    budgets = [16]
    local = approximation_errors("local", budgets, t=128, d=16)
    smooth = approximation_errors("smooth", budgets, t=128, d=16)
    assert local["sliding window"][0] < 0.1 < min(local["Linformer"][0], local["Performer"][0])
    assert smooth["Linformer"][0] < 0.2 < min(smooth["sliding window"][0],
                                               smooth["Performer"][0])


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_full_budget_is_exact_for_window_and_pooling(kind):
    errors = approximation_errors(kind, [64], t=64, d=8)
    assert errors["sliding window"][0] < 1e-12 and errors["Linformer"][0] < 1e-12
    assert errors["Performer"][0] > 1e-3                  # an estimate, never exact


def test_approximate_rejects_unknown_methods(rng):
    q = rng.normal(size=(4, 2))
    with pytest.raises(ValueError, match="method must be one of"):
        approximate("Reformer", q, q, q, 2, rng=rng)


def test_approximation_runs_run_forward_and_backward(rng):
    runs = approximation_runs(32, 4, rng=rng, budget=8)
    assert set(runs) == {"exact", *METHODS}
    for run in runs.values():
        assert run() is None
