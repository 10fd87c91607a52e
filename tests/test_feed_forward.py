import math

import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct
from attention_from_scratch.common.params import init_feed_forward_params


def random_params(rng, d, f):
    return {"w_1": rng.normal(size=(d, f)), "b_1": rng.normal(size=f),
            "w_2": rng.normal(size=(f, d)), "b_2": rng.normal(size=d)}


def test_hand_checkable_case(impl):
    params = {"w_1": np.array([[1.0, -1.0]]), "b_1": np.zeros(2),
              "w_2": np.array([[2.0], [3.0]]), "b_2": np.array([0.5])}
    x = np.array([[2.0], [-1.0]])                       # (T=2, D=1), F = 2
    out, cache = impl.feed_forward.feed_forward_forward(x, params)
    # hidden [2, -2] -> relu [2, 0] -> 4 + 0.5;  hidden [-1, 1] -> [0, 1] -> 3 + 0.5
    np.testing.assert_array_equal(out, [[4.5], [3.5]])
    dx, dparams = impl.feed_forward.feed_forward_backward(np.array([[1.0], [0.0]]), cache)
    np.testing.assert_array_equal(dx, [[2.0], [0.0]])    # only unit 0 was on: w_1[0,0] w_2[0]
    np.testing.assert_array_equal(dparams["w_2"], [[2.0], [0.0]])
    np.testing.assert_array_equal(dparams["w_1"], [[4.0, 0.0]])   # x * dhidden = 2 * [2, 0]
    np.testing.assert_array_equal(dparams["b_2"], [1.0])


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("x_shape", [(4,), (3, 4), (2, 3, 4)])
def test_finite_differences(impl, rng, activation, x_shape):
    inputs = (rng.normal(size=x_shape), random_params(rng, 4, 7))
    assert_gradients_correct(impl.feed_forward.feed_forward_forward,
                             impl.feed_forward.feed_forward_backward, inputs,
                             kwargs={"activation": activation}, rng=rng)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_steps_equals_core(rng, activation):
    x, params = rng.normal(size=(2, 3, 5)), random_params(rng, 5, 6)
    dout = rng.normal(size=x.shape)
    out_s, cache_s = steps.feed_forward.feed_forward_forward(x, params, activation=activation)
    out_c, cache_c = core.feed_forward.feed_forward_forward(x, params, activation=activation)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-13)
    dx_s, dp_s = steps.feed_forward.feed_forward_backward(dout, cache_s)
    dx_c, dp_c = core.feed_forward.feed_forward_backward(dout, cache_c)
    np.testing.assert_allclose(dx_s, dx_c, rtol=1e-10, atol=1e-12)
    assert set(dp_s) == set(dp_c) == set(params)
    for key in params:
        np.testing.assert_allclose(dp_s[key], dp_c[key], rtol=1e-10, atol=1e-12)


def test_position_wise(impl, rng):
    x, params = rng.normal(size=(5, 4)), random_params(rng, 4, 3)
    out, _ = impl.feed_forward.feed_forward_forward(x, params)
    x2 = x.copy()
    x2[2] += 1.0
    out2, _ = impl.feed_forward.feed_forward_forward(x2, params)
    changed = np.any(out2 != out, axis=-1)
    assert changed.tolist() == [False, False, True, False, False]


def test_gelu_is_close_to_x_times_normal_cdf(impl):
    x = np.linspace(-5, 5, 101)
    exact = np.array([t * 0.5 * (1 + math.erf(t / math.sqrt(2))) for t in x])
    out, _ = impl.feed_forward.gelu_forward(x)
    np.testing.assert_allclose(out, exact, atol=1e-3)
    assert not np.allclose(out, exact, atol=1e-9)      # an approximation, as documented


def test_init_has_the_right_shapes_and_scale(impl):
    params = init_feed_forward_params(64, 256, rng=np.random.default_rng(0))
    assert {k: v.shape for k, v in params.items()} == {
        "w_1": (64, 256), "b_1": (256,), "w_2": (256, 64), "b_2": (64,)}
    assert 0.9 < params["w_1"].std() * np.sqrt(64) < 1.1
    assert np.all(params["b_1"] == 0)


def test_core_keeps_float32(rng):
    params = random_params(rng, 4, 3)
    out, cache = core.feed_forward.feed_forward_forward(rng.normal(size=(2, 4)).astype(np.float32),
                                                        params)
    dx, dparams = core.feed_forward.feed_forward_backward(np.ones((2, 4), np.float32), cache)
    assert out.dtype == dx.dtype == dparams["w_1"].dtype == np.float32


def test_bad_params_rejected(impl, rng):
    x, params = rng.normal(size=(3, 4)), random_params(rng, 4, 6)
    missing = {k: v for k, v in params.items() if k != "b_2"}
    with pytest.raises(ValueError, match="params is missing key 'b_2'"):
        impl.feed_forward.feed_forward_forward(x, missing)
    with pytest.raises(ValueError, match="params has unexpected key 'w_3'"):
        impl.feed_forward.feed_forward_forward(x, {**params, "w_3": np.ones(2)})
    with pytest.raises(ValueError, match=r"params\['b_1'\] must have shape \(F,\) = \(6,\), "
                                         r"got shape \(5,\)"):
        impl.feed_forward.feed_forward_forward(x, {**params, "b_1": np.ones(5)})
    with pytest.raises(ValueError, match=r"params\['w_1'\] must have shape \(D, F\) = \(4, 6\)"):
        impl.feed_forward.feed_forward_forward(x, {**params, "w_1": np.ones((5, 6))})
    with pytest.raises(TypeError, match="params must be a dict"):
        impl.feed_forward.feed_forward_forward(x, list(params.values()))
    with pytest.raises(ValueError, match="activation must be one of"):
        impl.feed_forward.feed_forward_forward(x, params, activation="tanh")
