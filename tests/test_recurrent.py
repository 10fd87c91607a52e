import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct

SHAPES = [  # (lead, T, D_in, Dh): all different
    ((), 5, 3, 2),
    ((2,), 4, 2, 3),
    ((2, 3), 3, 4, 5),
    ((1,), 1, 2, 3),
]


def make_inputs(rng, lead, t, d_in, d_h):
    return (rng.normal(size=(*lead, t, d_in)), rng.normal(size=(d_in, d_h)),
            0.5 * rng.normal(size=(d_h, d_h)), rng.normal(size=d_h))


def test_hand_checkable_case(impl):
    x = np.array([[1.0], [0.0]])                     # (T, 1)
    h, _ = impl.recurrent.recurrent_forward(x, [[1.0]], [[0.5]], [0.0])
    np.testing.assert_allclose(h[:, 0], [np.tanh(1.0), np.tanh(0.5 * np.tanh(1.0))])


@pytest.mark.parametrize("shape", SHAPES)
def test_finite_differences(impl, rng, shape):
    assert_gradients_correct(impl.recurrent.recurrent_forward,
                             impl.recurrent.recurrent_backward,
                             make_inputs(rng, *shape), rng=rng)


@pytest.mark.parametrize("shape", SHAPES)
def test_steps_equals_core(rng, shape):
    inputs = make_inputs(rng, *shape)
    h_s, cache_s = steps.recurrent.recurrent_forward(*inputs)
    h_c, cache_c = core.recurrent.recurrent_forward(*inputs)
    np.testing.assert_allclose(h_s, h_c, rtol=1e-12, atol=1e-14)
    dh = rng.normal(size=h_s.shape)
    for g_s, g_c in zip(steps.recurrent.recurrent_backward(dh, cache_s),
                        core.recurrent.recurrent_backward(dh, cache_c), strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-10, atol=1e-13)


def test_the_future_never_changes_the_past(impl, rng):
    x, w_x, w_h, b = make_inputs(rng, (2,), 6, 3, 4)
    h, cache = impl.recurrent.recurrent_forward(x, w_x, w_h, b)
    x_changed = x.copy()
    x_changed[:, 4:] += 10.0
    h_changed, _ = impl.recurrent.recurrent_forward(x_changed, w_x, w_h, b)
    np.testing.assert_array_equal(h_changed[:, :4], h[:, :4])
    dh = np.zeros_like(h)
    dh[:, 2] = rng.normal(size=(2, 4))                # only output 2 matters
    dx = impl.recurrent.recurrent_backward(dh, cache)[0]
    assert np.all(dx[:, 3:] == 0) and np.all(dx[:, :3] != 0)


def test_gradient_crosses_one_recurrence_per_position(impl):
    # at x = 0, b = 0 every tanh' is 1, so dh_{T-1}/dx_j = W_x W_h^(T-1-j) = a^(T-1-j)
    t, a = 7, 0.5
    h, cache = impl.recurrent.recurrent_forward(np.zeros((t, 2)), np.eye(2), a * np.eye(2),
                                                np.zeros(2))
    dh = np.zeros_like(h)
    dh[-1, 0] = 1.0
    dx = impl.recurrent.recurrent_backward(dh, cache)[0]
    np.testing.assert_allclose(dx[:, 0], a ** np.arange(t - 1, -1, -1.0), rtol=1e-14)


def test_core_float32_matches_float64(rng):
    inputs = make_inputs(rng, (2, 3), 6, 4, 5)
    h64, cache64 = core.recurrent.recurrent_forward(*inputs)
    h32, cache32 = core.recurrent.recurrent_forward(*(a.astype(np.float32) for a in inputs))
    assert h32.dtype == np.float32
    np.testing.assert_allclose(h32, h64, rtol=1e-4, atol=1e-5)
    dh = rng.normal(size=h64.shape)
    for g32, g64 in zip(core.recurrent.recurrent_backward(dh.astype(np.float32), cache32),
                        core.recurrent.recurrent_backward(dh, cache64), strict=True):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)


def test_bad_shapes_rejected(impl):
    x, w_x, w_h, b = np.ones((4, 3)), np.ones((3, 2)), np.ones((2, 2)), np.ones(2)
    forward = impl.recurrent.recurrent_forward
    with pytest.raises(ValueError,
                       match=r"x must have shape \(\.\.\., T, D_in\), got shape \(3,\)"):
        forward(np.ones(3), w_x, w_h, b)
    with pytest.raises(ValueError,
                       match=r"w_h must have shape \(Dh, Dh\) = \(2, 2\), got shape \(3, 3\)"):
        forward(x, w_x, np.ones((3, 3)), b)
    with pytest.raises(ValueError, match=r"D_in = 3"):
        forward(np.ones((4, 2)), w_x, w_h, b)
    h, cache = forward(x, w_x, w_h, b)
    with pytest.raises(ValueError, match=r"dh must have shape .*got shape \(4, 3\)"):
        impl.recurrent.recurrent_backward(np.ones((4, 3)), cache)
