import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct


def test_hand_checkable_case(impl):
    pe = impl.positional_encoding.sinusoidal_encoding(2, 4)
    # D = 4: frequencies 1 and 1 / 10000 ** (2 / 4) = 1 / 100
    np.testing.assert_allclose(pe, [[0.0, 1.0, 0.0, 1.0],
                                    [np.sin(1.0), np.cos(1.0), np.sin(0.01), np.cos(0.01)]],
                               rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize(("t", "d", "offset"), [(7, 6, 0), (1, 2, 0), (5, 10, 3), (0, 4, 2)])
def test_steps_equals_core(t, d, offset):
    np.testing.assert_allclose(steps.positional_encoding.sinusoidal_encoding(t, d, offset=offset),
                               core.positional_encoding.sinusoidal_encoding(t, d, offset=offset),
                               rtol=1e-12, atol=1e-12)


def test_offset_continues_the_sequence(impl):
    full = impl.positional_encoding.sinusoidal_encoding(9, 6)
    np.testing.assert_allclose(impl.positional_encoding.sinusoidal_encoding(4, 6, offset=5),
                               full[5:], rtol=1e-12, atol=1e-14)


def test_each_pair_has_unit_length_and_values_are_bounded(impl):
    pe = impl.positional_encoding.sinusoidal_encoding(50, 8)
    pairs = pe.reshape(50, 4, 2)
    np.testing.assert_allclose((pairs ** 2).sum(axis=-1), 1.0)
    assert np.all(np.abs(pe) <= 1.0)


def test_dot_product_depends_only_on_distance(impl):
    pe = impl.positional_encoding.sinusoidal_encoding(40, 16)
    for k in (1, 3, 7):
        dots = np.einsum("pd,pd->p", pe[:-k], pe[k:])        # PE[p] . PE[p + k] for all p
        np.testing.assert_allclose(dots, dots[0], rtol=1e-10)
    # and nearer positions are more alike than far ones, at least at first
    assert pe[0] @ pe[1] > pe[0] @ pe[5] > pe[0] @ pe[10]


def test_every_position_is_different(impl):
    pe = impl.positional_encoding.sinusoidal_encoding(200, 8)
    distances = np.linalg.norm(pe[:, None] - pe[None, :], axis=-1)
    assert distances[~np.eye(200, dtype=bool)].min() > 1e-3


def test_forward_adds_the_same_encoding_to_every_sequence(impl, rng):
    x = rng.normal(size=(2, 3, 5, 4))
    out, cache = impl.positional_encoding.positional_encoding_forward(x, offset=2)
    pe = impl.positional_encoding.sinusoidal_encoding(5, 4, offset=2)
    np.testing.assert_allclose(out - x, np.broadcast_to(pe, x.shape), atol=1e-15)
    dout = rng.normal(size=x.shape)
    np.testing.assert_array_equal(impl.positional_encoding.positional_encoding_backward(dout,
                                                                                        cache),
                                  dout)


def test_finite_differences(impl, rng):
    assert_gradients_correct(impl.positional_encoding.positional_encoding_forward,
                             impl.positional_encoding.positional_encoding_backward,
                             (rng.normal(size=(2, 3, 4)),), kwargs={"offset": 1}, rng=rng)


def test_core_keeps_float32():
    out, _ = core.positional_encoding.positional_encoding_forward(np.zeros((3, 4), np.float32))
    assert out.dtype == np.float32


@pytest.mark.parametrize(("t", "d", "kwargs", "match"), [
    (3, 5, {}, r"d must be even.*got d = 5"),
    (3, 0, {}, r"d must be at least 2, got 0"),
    (-1, 4, {}, r"t must be at least 0, got -1"),
    (3, 4, {"offset": -2}, r"offset must be at least 0, got -2"),
    (3, 4, {"base": 0.5}, r"base must be a number > 1"),
])
def test_bad_arguments_rejected(impl, t, d, kwargs, match):
    with pytest.raises(ValueError, match=match):
        impl.positional_encoding.sinusoidal_encoding(t, d, **kwargs)


def test_a_float_length_is_a_type_error(impl):
    with pytest.raises(TypeError, match=r"t must be an int, got float 2.5"):
        impl.positional_encoding.sinusoidal_encoding(2.5, 4)


def test_bad_inputs_rejected(impl):
    with pytest.raises(ValueError, match=r"d must be even.*got d = 3"):
        impl.positional_encoding.positional_encoding_forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., T, D\), got shape \(4,\)"):
        impl.positional_encoding.positional_encoding_forward(np.ones(4))
    _, cache = impl.positional_encoding.positional_encoding_forward(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"dout must have shape .*\(3, 4\), got shape \(4, 3\)"):
        impl.positional_encoding.positional_encoding_backward(np.ones((4, 3)), cache)
