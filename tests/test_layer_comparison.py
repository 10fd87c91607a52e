import numpy as np
import pytest

from attention_from_scratch.measure.layer_comparison import (
    LAYER_KINDS,
    layers_to_connect_ends,
    make_layer,
    predicted_layers_to_connect,
    reach,
    recurrent_steps,
    sequential_rounds,
)


@pytest.mark.parametrize("kind", LAYER_KINDS)
def test_every_layer_is_causal_and_maps_t_by_d_to_t_by_d(kind, rng):
    forward, backward = make_layer(kind, 3, rng=rng, width=2)
    x = rng.normal(size=(6, 3))
    out, cache = forward(x)
    assert out.shape == (6, 3) and backward(rng.normal(size=(6, 3)), cache).shape == (6, 3)
    reached = reach(kind, 6, width=2)
    assert not np.any(np.triu(reached, k=1))          # nothing from the future
    assert np.all(np.diag(reached))                   # every output hears its own input


def test_one_layer_reach_matches_table_1():
    t = 8
    lower = np.tril(np.ones((t, t), dtype=bool))
    np.testing.assert_array_equal(reach("self-attention", t), lower)
    np.testing.assert_array_equal(reach("recurrent", t), lower)
    band = lower & ~np.tril(lower, k=-3)              # itself and 2 before
    np.testing.assert_array_equal(reach("convolution", t, width=3), band)
    np.testing.assert_array_equal(reach("restricted self-attention", t, width=3), band)


@pytest.mark.parametrize("kind", LAYER_KINDS)
@pytest.mark.parametrize("t", [2, 7, 10, 28])
def test_measured_layers_match_the_prediction(kind, t):
    assert layers_to_connect_ends(kind, t, width=3) == predicted_layers_to_connect(kind, t,
                                                                                   width=3)


def test_predictions_by_hand():
    assert predicted_layers_to_connect("convolution", 9, width=3) == 4     # 1+2+2+2+2 = 9
    assert predicted_layers_to_connect("dilated convolution", 9, width=3) == 2   # 3^2
    assert predicted_layers_to_connect("dilated convolution", 10, width=3) == 3
    assert predicted_layers_to_connect("restricted self-attention", 64, width=8) == 9
    with pytest.raises(ValueError, match="width 1 never connects"):
        predicted_layers_to_connect("convolution", 5, width=1)


def test_layers_to_connect_gives_up_with_a_clear_message():
    with pytest.raises(ValueError, match="does not connect 20 positions within 3 layers"):
        layers_to_connect_ends("convolution", 20, width=2, max_layers=3)


def test_recurrent_steps_count_the_recurrence():
    np.testing.assert_array_equal(recurrent_steps(12), np.arange(11, -1, -1))
    np.testing.assert_array_equal(recurrent_steps(6, decay=0.8), [5, 4, 3, 2, 1, 0])
    with pytest.raises(ValueError, match="decay must lie in"):
        recurrent_steps(4, decay=1.5)


@pytest.mark.parametrize("t", [1, 5, 12])
def test_sequential_rounds_match_table_1(t):
    for kind in LAYER_KINDS:
        rounds, _ = sequential_rounds(kind, t, width=3)
        # one round per position for the recurrence: h_0 already needs one
        assert rounds == (t if kind == "recurrent" else 1), kind


@pytest.mark.parametrize("kind", LAYER_KINDS)
def test_sequential_rounds_compute_what_the_layer_computes(kind):
    rounds, outputs = sequential_rounds(kind, 7, width=2, d=3, seed=4)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(7, 3))                    # the same draws, in the same order
    forward, _ = make_layer(kind, 3, rng=rng, width=2)
    np.testing.assert_allclose(outputs, forward(x)[0], rtol=1e-12, atol=1e-12)
    assert not np.isnan(outputs).any() and rounds >= 1


def test_unknown_kind_rejected(rng):
    with pytest.raises(ValueError, match="kind must be one of"):
        make_layer("lstm", 3, rng=rng)
