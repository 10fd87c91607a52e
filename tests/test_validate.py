"""The input checks of ``common.validate`` that every entry point shares.

A ragged nested list (rows of different lengths) cannot become an array;
NumPy says so in words about "inhomogeneous shapes". The package's
entry points say which argument it was, that it is ragged, and what
shape they expected, in both mirrors.
"""

import re

import numpy as np
import pytest

from attention_from_scratch.common.masks import causal_mask
from attention_from_scratch.common.params import init_multi_head_params
from attention_from_scratch.common.validate import as_array, as_float_array
from attention_from_scratch.exercises import check_exercise

RAGGED = [[1.0, 2.0], [3.0]]                     # rows of lengths 2 and 1


def _ragged_message(name, layout, lengths="2, 1", axis=1):
    return re.escape(f"{name} must be an array of shape {layout}, got a ragged nested "
                     f"sequence: along axis {axis} its rows have different lengths "
                     f"({lengths}), so it is not an array")


def test_numpy_itself_gives_no_name_and_no_shape():
    # what the package's message replaces
    with pytest.raises(ValueError, match="inhomogeneous") as caught:
        np.asarray(RAGGED)
    assert "ragged" not in str(caught.value)


@pytest.mark.parametrize("which", ["q", "k", "v"])
def test_attention_names_the_ragged_argument(impl, rng, which):
    layouts = {"q": "(..., T, Dk)", "k": "(..., S, Dk)", "v": "(..., S, Dv)"}
    args = {"q": rng.normal(size=(2, 2)), "k": rng.normal(size=(2, 2)),
            "v": rng.normal(size=(2, 2))}
    args[which] = RAGGED
    with pytest.raises(ValueError, match=_ragged_message(which, layouts[which])):
        impl.attention.attention_forward(args["q"], args["k"], args["v"])


def test_attention_names_a_ragged_mask(impl, rng):
    q, k, v = rng.normal(size=(2, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 5))
    ragged_mask = [[True, True, False, False], [True, True]]
    with pytest.raises(ValueError, match=_ragged_message("mask", "(..., T, S)", "4, 2")):
        impl.attention.attention_forward(q, k, v, mask=ragged_mask)


@pytest.mark.parametrize("which", ["x_q", "x_kv"])
def test_multi_head_names_the_ragged_argument(impl, rng, which):
    params = init_multi_head_params(4, rng=rng)
    ragged = [[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], [[1.0, 2.0, 3.0, 4.0]]]
    x = {"x_q": rng.normal(size=(2, 2, 4)), "x_kv": rng.normal(size=(2, 3, 4))}
    x[which] = ragged
    layout = "(..., T, D)" if which == "x_q" else "(..., S, D)"
    with pytest.raises(ValueError, match=_ragged_message(which, layout, "2, 1")):
        impl.multi_head.multi_head_attention_forward(x["x_q"], x["x_kv"], params, n_heads=2)


def test_multi_head_names_a_ragged_mask(impl, rng):
    x = rng.normal(size=(3, 4))
    ragged_mask = causal_mask(3).tolist()
    ragged_mask[1] = ragged_mask[1][:2]
    with pytest.raises(ValueError, match=_ragged_message(
            "mask", "(T, S), (..., T, S) or (..., H, T, S)", "3, 2")):
        impl.multi_head.self_multi_head_attention_forward(
            x, init_multi_head_params(4, rng=rng), n_heads=2, mask=ragged_mask)


def test_position_wise_layers_name_the_ragged_argument(impl, rng):
    with pytest.raises(ValueError, match=_ragged_message("x", "(..., D_in)")):
        impl.linear.linear_forward(RAGGED, rng.normal(size=(2, 3)), rng.normal(size=3))
    with pytest.raises(ValueError, match=_ragged_message("gamma", "(D,)", "1, 2")):
        impl.layer_norm.layer_norm_forward(rng.normal(size=(2, 2)), [[1.0], [1.0, 2.0]],
                                           np.zeros(2))
    with pytest.raises(ValueError, match=r"x must be an array, got a ragged nested sequence"):
        impl.softmax.softmax_forward(RAGGED)


def test_a_ragged_upstream_gradient_is_named(impl, rng):
    out, cache = impl.linear.linear_forward(rng.normal(size=(2, 2)), rng.normal(size=(2, 3)),
                                            rng.normal(size=3))
    with pytest.raises(ValueError, match=r"dout must be an array of shape .*, got a ragged"):
        impl.linear.linear_backward([[1.0, 2.0, 3.0], [4.0]], cache)


def test_ragged_token_ids_are_named(impl, rng):
    with pytest.raises(ValueError, match=_ragged_message("tokens", "(...,)", "3, 1")):
        impl.embedding.embedding_forward(rng.normal(size=(5, 4)), tokens=[[1, 2, 3], [4]])
    with pytest.raises(ValueError, match=r"targets must be an array of shape \(\.\.\.,\), "
                                         r"got a ragged"):
        impl.cross_entropy.cross_entropy_forward(rng.normal(size=(2, 3, 5)),
                                                 targets=[[1, 2, 3], [4]])


def test_the_axis_named_is_the_first_that_differs():
    deep = [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0]]]         # (2, 2, ragged)
    with pytest.raises(ValueError, match=_ragged_message("x", "(T, D)", "2, 1", axis=2)):
        as_float_array("x", deep, layout="(T, D)")
    arrays = [np.zeros((2, 3)), np.zeros((4, 3))]                # arrays of two lengths
    with pytest.raises(ValueError, match=_ragged_message("x", "(T, D)", "2, 4", axis=1)):
        as_array("x", arrays, layout="(T, D)")


def test_a_number_among_rows_is_named():
    with pytest.raises(ValueError, match="x must be an array, got a ragged nested sequence: "
                                         "along axis 1 it mixes numbers and sequences"):
        as_array("x", [1.0, [2.0, 3.0]])


def test_a_forward_pair_passed_whole_is_named(impl, rng):
    pair = impl.softmax.softmax_forward(rng.normal(size=(2, 3)))
    with pytest.raises(ValueError, match=r"q must be an array of shape \(\.\.\., T, Dk\), "
                                         r"got a pair \(out, cache\), as a forward returns: "
                                         r"unpack it"):
        impl.attention.attention_forward(pair, rng.normal(size=(3, 3)), rng.normal(size=(3, 2)))
    with pytest.raises(ValueError, match=r"got a SoftmaxCache, a forward's cache"):
        as_array("q", pair[1])


def test_a_forward_pair_passed_to_the_package_in_an_exercise_gets_the_unpack_hint(impl):
    def attempt(x):
        pair = impl.softmax.softmax_forward(x)
        return impl.linear.linear_forward(pair, np.eye(3), np.zeros(3))[0]

    def reference(x):
        return impl.softmax.softmax_forward(x)[0]

    with pytest.raises(AssertionError, match="a tuple or list was used where an array belongs"
                                             r".*out, cache"):
        check_exercise("softmax", attempt, reference, [(np.ones((2, 3)),)])


def test_rectangular_lists_still_convert(impl):
    out, _ = impl.attention.attention_forward([[1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]],
                                              [[1.0], [2.0]])
    assert out.shape == (1, 1) and 1.0 < out.item() < 2.0


def test_a_ragged_token_batch_names_its_shape():
    from attention_from_scratch.common.validate import check_token_batch

    with pytest.raises(ValueError, match=_ragged_message("src", "(B, length)", "3, 2")):
        check_token_batch("src", [[1, 2, 3], [4, 5]], 7)


def test_ragged_lengths_prompt_and_source_are_named(rng):
    from attention_from_scratch.common.masks import padding_mask
    from attention_from_scratch.common.params import init_encoder_params
    from attention_from_scratch.inference.decoding import generate
    from attention_from_scratch.inference.encoder_decoder import greedy_encoder_decoder

    with pytest.raises(ValueError, match=_ragged_message("lengths", "(B,)", "2, 1")):
        padding_mask([[1, 2], [3]], 4)
    embeddings = rng.normal(size=(5, 4))
    layers = [init_encoder_params(4, 8, rng=rng)]
    with pytest.raises(ValueError, match=_ragged_message("prompt", "(B, T0)", "2, 1")):
        generate([[1, 2], [3]], embeddings, layers, 1, n_heads=2)
    with pytest.raises(ValueError, match=_ragged_message("src", "(B, S)", "2, 1")):
        greedy_encoder_decoder({}, [[1, 2], [3]], n_heads=2, max_new=1, bos=1, eos=2)
