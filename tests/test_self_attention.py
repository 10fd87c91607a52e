import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct, gradient_check
from attention_from_scratch.common.params import init_self_attention_params

SHAPES = [  # (lead, T, D, Dk, Dv): all different, Dk != Dv
    ((), 3, 4, 2, 5),
    ((2,), 4, 3, 5, 2),
    ((1,), 1, 2, 3, 4),          # B = 1, T = 1
    ((2, 3), 3, 5, 4, 2),        # two leading axes
]


def random_params(rng, d, d_k, d_v):
    """Random, non-zero weights and biases (an init with zero biases hides bugs).

    Scale 0.5: b_k's true gradient is exactly 0, so its finite-difference
    check measures round-off, which grows with the size of the outputs.
    """
    shapes = {"w_q": (d, d_k), "b_q": (d_k,), "w_k": (d, d_k), "b_k": (d_k,),
              "w_v": (d, d_v), "b_v": (d_v,)}
    return {key: 0.5 * rng.normal(size=shape) for key, shape in shapes.items()}


def make_inputs(rng, lead, t, d, d_k, d_v):
    return rng.normal(size=(*lead, t, d)), random_params(rng, d, d_k, d_v)


def test_hand_checkable_case(impl):
    # w_q = 0 makes every score 0: each query averages all values equally
    x = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]])            # (T, D) = (3, 2)
    params = {"w_q": np.zeros((2, 1)), "b_q": np.zeros(1),
              "w_k": np.ones((2, 1)), "b_k": np.zeros(1),
              "w_v": np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]), "b_v": np.array([0, 0, 1.0])}
    out, cache = impl.self_attention.self_attention_forward(x, params)
    np.testing.assert_allclose(cache.weights, np.full((3, 3), 1 / 3))
    # v = [[1, 0, 3], [0, 2, 1], [3, 1, 7]], mean over rows
    np.testing.assert_allclose(out, np.tile([4 / 3, 1.0, 11 / 3], (3, 1)))


def test_identity_projections_give_plain_attention(impl, rng):
    x = rng.normal(size=(2, 4, 3))
    eye, zero = np.eye(3), np.zeros(3)
    params = {"w_q": eye, "b_q": zero, "w_k": eye, "b_k": zero, "w_v": eye, "b_v": zero}
    out, _ = impl.self_attention.self_attention_forward(x, params)
    expected, _ = impl.attention.attention_forward(x, x, x)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masked", [False, True], ids=["no mask", "causal mask"])
def test_finite_differences(impl, rng, shape, masked):
    x, params = make_inputs(rng, *shape)
    t = shape[1]
    kwargs = {"mask": np.tri(t, dtype=bool)} if masked else {}
    assert_gradients_correct(impl.self_attention.self_attention_forward,
                             impl.self_attention.self_attention_backward, (x, params),
                             kwargs=kwargs, rng=rng)


def test_finite_differences_with_a_fully_masked_row(impl, rng):
    x, params = make_inputs(rng, (2,), 4, 3, 2, 5)
    mask = rng.random((2, 4, 4)) < 0.6
    mask[:, 1] = False                       # query 1 has nothing to attend to
    out, cache = impl.self_attention.self_attention_forward(x, params, mask=mask)
    np.testing.assert_array_equal(out[:, 1], 0.0)
    assert_gradients_correct(impl.self_attention.self_attention_forward,
                             impl.self_attention.self_attention_backward, (x, params),
                             kwargs={"mask": mask}, rng=rng)


@pytest.mark.parametrize("shape", SHAPES)
def test_steps_equals_core(rng, shape):
    x, params = make_inputs(rng, *shape)
    mask = np.tri(shape[1], dtype=bool)
    out_s, cache_s = steps.self_attention.self_attention_forward(x, params, mask=mask)
    out_c, cache_c = core.self_attention.self_attention_forward(x, params, mask=mask)
    np.testing.assert_allclose(out_s, out_c, rtol=1e-12, atol=1e-14)
    dout = rng.normal(size=out_s.shape)
    dx_s, dparams_s = steps.self_attention.self_attention_backward(dout, cache_s)
    dx_c, dparams_c = core.self_attention.self_attention_backward(dout, cache_c)
    np.testing.assert_allclose(dx_s, dx_c, rtol=1e-10, atol=1e-13)
    assert set(dparams_s) == set(dparams_c) == set(params)
    for key in params:
        np.testing.assert_allclose(dparams_s[key], dparams_c[key], rtol=1e-10, atol=1e-13)


def test_core_float32_matches_float64(rng):
    x, params = make_inputs(rng, (2, 3), 6, 8, 5, 7)
    out64, cache64 = core.self_attention.self_attention_forward(x, params)
    out32, cache32 = core.self_attention.self_attention_forward(x.astype(np.float32), params)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-4)
    dout = rng.normal(size=out64.shape)
    dx64, dparams64 = core.self_attention.self_attention_backward(dout, cache64)
    dx32, dparams32 = core.self_attention.self_attention_backward(dout.astype(np.float32),
                                                                  cache32)
    for g32, g64 in zip([dx32, *dparams32.values()], [dx64, *dparams64.values()], strict=True):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-3)


def test_steps_computes_in_float64(rng):
    x, params = make_inputs(rng, (), 3, 4, 2, 5)
    out, cache = steps.self_attention.self_attention_forward(x.astype(np.float32), params)
    dx, dparams = steps.self_attention.self_attention_backward(rng.normal(size=out.shape), cache)
    assert out.dtype == dx.dtype == dparams["w_q"].dtype == np.float64


def test_dparams_have_the_keys_and_shapes_of_params(impl, rng):
    x, params = make_inputs(rng, (2,), 4, 3, 5, 2)
    out, cache = impl.self_attention.self_attention_forward(x, params)
    dx, dparams = impl.self_attention.self_attention_backward(rng.normal(size=out.shape), cache)
    assert dx.shape == x.shape
    assert list(dparams) == list(params)
    assert all(dparams[key].shape == params[key].shape for key in params)


def three_paths(impl, x, params, dout):
    """dx of each path separately: the attention backward, then each projection's."""
    q = x @ params["w_q"] + params["b_q"]
    k = x @ params["w_k"] + params["b_k"]
    v = x @ params["w_v"] + params["b_v"]
    _, cache = impl.attention.attention_forward(q, k, v)
    dq, dk, dv = impl.attention.attention_backward(dout, cache)
    return dq @ params["w_q"].T, dk @ params["w_k"].T, dv @ params["w_v"].T


def test_dx_is_the_sum_of_the_three_paths(impl, rng):
    x, params = make_inputs(rng, (2,), 4, 3, 5, 2)
    out, cache = impl.self_attention.self_attention_forward(x, params)
    dout = rng.normal(size=out.shape)
    dx, _ = impl.self_attention.self_attention_backward(dout, cache)
    dx_q, dx_k, dx_v = three_paths(impl, x, params, dout)
    np.testing.assert_allclose(dx, dx_q + dx_k + dx_v, rtol=1e-10, atol=1e-12)
    # each path matters: none is negligible on random inputs
    for path in (dx_q, dx_k, dx_v):
        assert np.abs(path).max() > 1e-3 * np.abs(dx).max()


@pytest.mark.parametrize("dropped", [0, 1, 2], ids=["no query path", "no key path",
                                                     "no value path"])
def test_dropping_one_path_fails_the_gradient_check(impl, rng, dropped):
    x, params = make_inputs(rng, (2,), 4, 3, 5, 2)

    def backward_missing_a_path(dout, cache):
        dx, dparams = impl.self_attention.self_attention_backward(dout, cache)
        return dx - three_paths(impl, x, params, dout)[dropped], dparams

    report = gradient_check(impl.self_attention.self_attention_forward,
                            backward_missing_a_path, (x, params), rng=rng)
    assert not report.passed
    failing = [row.name for row in report.rows if row.relative_error > report.tolerance]
    assert failing == ["x"]          # the parameters' gradients are untouched


def test_key_bias_gets_zero_gradient(impl, rng):
    # b_k adds q . b_k to every score of a row; the softmax ignores a shift
    x, params = make_inputs(rng, (2,), 4, 3, 5, 2)
    out, cache = impl.self_attention.self_attention_forward(x, params)
    _, dparams = impl.self_attention.self_attention_backward(rng.normal(size=out.shape), cache)
    np.testing.assert_allclose(dparams["b_k"], 0.0, atol=1e-12)
    assert np.abs(dparams["b_q"]).max() > 1e-3


def test_permuting_tokens_permutes_outputs(impl, rng):
    # without a mask self-attention has no notion of order
    x, params = make_inputs(rng, (), 5, 4, 3, 2)
    perm = rng.permutation(5)
    out, _ = impl.self_attention.self_attention_forward(x, params)
    out_perm, _ = impl.self_attention.self_attention_forward(x[perm], params)
    np.testing.assert_allclose(out_perm, out[perm], rtol=1e-12)


def test_causal_mask_hides_later_tokens(impl, rng):
    x, params = make_inputs(rng, (), 5, 4, 3, 2)
    mask = np.tri(5, dtype=bool)
    out, _ = impl.self_attention.self_attention_forward(x, params, mask=mask)
    x_changed = x.copy()
    x_changed[3:] = rng.normal(size=(2, 4))
    out_changed, _ = impl.self_attention.self_attention_forward(x_changed, params, mask=mask)
    np.testing.assert_array_equal(out_changed[:3], out[:3])
    assert not np.allclose(out_changed[3:], out[3:])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_inputs_do_not_overflow(impl, rng, dtype):
    x, params = make_inputs(rng, (2,), 4, 3, 5, 2)
    out, cache = impl.self_attention.self_attention_forward((x * 1e4).astype(dtype), params)
    dx, dparams = impl.self_attention.self_attention_backward(
        rng.normal(size=out.shape).astype(dtype), cache)
    assert np.isfinite(out).all() and np.isfinite(dx).all()
    assert all(np.isfinite(g).all() for g in dparams.values())


def test_init_params(impl):
    params = init_self_attention_params(
        64, 48, 32, rng=np.random.default_rng(0))
    assert {key: value.shape for key, value in params.items()} == {
        "w_q": (64, 48), "b_q": (48,), "w_k": (64, 48), "b_k": (48,),
        "w_v": (64, 32), "b_v": (32,)}
    assert all(value.dtype == np.float64 for value in params.values())
    assert all(np.all(params[key] == 0) for key in ("b_q", "b_k", "b_v"))
    # N(0, 1/D): 64 * 48 draws, so the sample std is within a few percent of 1/8
    assert abs(params["w_q"].std() - 1 / 8) < 0.01
    assert not np.allclose(params["w_q"], params["w_k"])
    again = init_self_attention_params(
        64, 48, 32, rng=np.random.default_rng(0))
    assert all(np.array_equal(params[key], again[key]) for key in params)


def test_init_params_rejects_bad_arguments(impl):
    init = init_self_attention_params
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        init(4, 2, 3, rng=0)
    with pytest.raises(ValueError, match="d_k must be a positive int, got 0"):
        init(4, 0, 3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="d_model must be a positive int"):
        init(4.0, 2, 3, rng=np.random.default_rng(0))


def test_bad_params_rejected_naming_the_key(impl, rng):
    forward = impl.self_attention.self_attention_forward
    x, params = make_inputs(rng, (2,), 4, 3, 5, 2)
    with pytest.raises(ValueError, match=r"params is missing key 'w_v'"):
        forward(x, {key: value for key, value in params.items() if key != "w_v"})
    with pytest.raises(ValueError, match=r"params has unexpected key 'w_o'"):
        forward(x, {**params, "w_o": np.ones((2, 3))})
    with pytest.raises(ValueError, match=r"params\['w_k'\] must have shape \(D, Dk\) = "
                                         r"\(3, 5\), got shape \(3, 4\)"):
        forward(x, {**params, "w_k": np.ones((3, 4))})
    with pytest.raises(ValueError, match=r"params\['b_v'\] must have shape \(Dv,\) = "
                                         r"\(2,\), got shape \(1, 2\)"):
        forward(x, {**params, "b_v": np.ones((1, 2))})     # no silent broadcast
    with pytest.raises(ValueError, match=r"params\['w_q'\] must have shape \(D, Dk\) = "
                                         r"\(4, 5\), got shape \(3, 5\)"):
        forward(rng.normal(size=(4, 4)), params)            # x has D = 4
    with pytest.raises(TypeError, match=r"params\['b_q'\] must be a real numeric array"):
        forward(x, {**params, "b_q": np.ones(5, dtype=bool)})
    with pytest.raises(TypeError, match="params must be a dict"):
        forward(x, list(params.values()))


def test_bad_x_and_mask_rejected(impl, rng):
    forward = impl.self_attention.self_attention_forward
    _, params = make_inputs(rng, (), 4, 3, 5, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., T, D\), got shape \(3,\)"):
        forward(np.ones(3), params)
    with pytest.raises(ValueError, match=r"mask must broadcast .* \(4, 4\), got shape \(4, 3\)"):
        forward(np.ones((4, 3)), params, mask=np.ones((4, 3), bool))
    out, cache = forward(np.ones((4, 3)), params)
    with pytest.raises(ValueError, match=r"dout must have shape .*got shape \(4, 5\)"):
        impl.self_attention.self_attention_backward(np.ones((4, 5)), cache)


def test_inputs_are_not_modified(impl, rng):
    x, params = make_inputs(rng, (2,), 4, 3, 5, 2)
    x_before = x.copy()
    params_before = {key: value.copy() for key, value in params.items()}
    out, cache = impl.self_attention.self_attention_forward(x, params)
    impl.self_attention.self_attention_backward(rng.normal(size=out.shape), cache)
    np.testing.assert_array_equal(x, x_before)
    assert all(np.array_equal(params[key], params_before[key]) for key in params)
