import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct


def test_lookup_picks_rows(impl):
    w = np.arange(12.0).reshape(4, 3)
    x, _ = impl.embedding.embedding_forward(w, tokens=np.array([[3, 0], [1, 3]]))
    assert x.shape == (2, 2, 3)
    np.testing.assert_array_equal(x[0, 0], w[3])
    np.testing.assert_array_equal(x[1, 1], w[3])


def test_repeated_tokens_accumulate(impl, rng):
    """The bug this guards against: ``dw[tokens] += dout`` keeps one row."""
    w = rng.normal(size=(5, 3))
    tokens = np.array([2, 2, 2, 4])
    _, cache = impl.embedding.embedding_forward(w, tokens=tokens)
    dout = rng.normal(size=(4, 3))
    dw = impl.embedding.embedding_backward(dout, cache)
    np.testing.assert_allclose(dw[2], dout[:3].sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(dw[4], dout[3], rtol=1e-12)
    np.testing.assert_array_equal(dw[[0, 1, 3]], 0.0)
    wrong = np.zeros_like(w)
    wrong[tokens] += dout
    assert not np.allclose(wrong, dw)


@pytest.mark.parametrize("tokens_shape", [(4,), (2, 3), (1, 1)])
def test_embedding_finite_differences(impl, rng, tokens_shape):
    w = rng.normal(size=(4, 3))
    tokens = rng.integers(0, 4, size=tokens_shape)
    assert_gradients_correct(impl.embedding.embedding_forward, impl.embedding.embedding_backward,
                             (w,), kwargs={"tokens": tokens}, rng=rng)


@pytest.mark.parametrize("h_shape", [(3,), (2, 3), (2, 4, 3)])
def test_output_projection_finite_differences(impl, rng, h_shape):
    inputs = (rng.normal(size=h_shape), rng.normal(size=(5, 3)), rng.normal(size=5))
    assert_gradients_correct(impl.embedding.output_projection_forward,
                             impl.embedding.output_projection_backward, inputs, rng=rng)


def test_steps_equals_core(rng):
    w = rng.normal(size=(6, 4))
    tokens = rng.integers(0, 6, size=(3, 5))
    dout = rng.normal(size=(3, 5, 4))
    x_s, c_s = steps.embedding.embedding_forward(w, tokens=tokens)
    x_c, c_c = core.embedding.embedding_forward(w, tokens=tokens)
    np.testing.assert_array_equal(x_s, x_c)
    np.testing.assert_allclose(steps.embedding.embedding_backward(dout, c_s),
                               core.embedding.embedding_backward(dout, c_c), rtol=1e-12)
    h, b = rng.normal(size=(3, 5, 4)), rng.normal(size=6)
    dlogits = rng.normal(size=(3, 5, 6))
    l_s, c_s = steps.embedding.output_projection_forward(h, w, b)
    l_c, c_c = core.embedding.output_projection_forward(h, w, b)
    np.testing.assert_allclose(l_s, l_c, rtol=1e-12)
    for g_s, g_c in zip(steps.embedding.output_projection_backward(dlogits, c_s),
                        core.embedding.output_projection_backward(dlogits, c_c), strict=True):
        np.testing.assert_allclose(g_s, g_c, rtol=1e-12, atol=1e-13)


def test_core_keeps_float32(rng):
    w = rng.normal(size=(4, 3)).astype(np.float32)
    x, cache = core.embedding.embedding_forward(w, tokens=[1, 2])
    assert x.dtype == np.float32
    assert core.embedding.embedding_backward(x, cache).dtype == np.float32
    logits, _ = core.embedding.output_projection_forward(x, w, np.zeros(4, np.float32))
    assert logits.dtype == np.float32


def test_bad_tokens_are_refused(impl):
    w = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"tokens ids must lie in \[0, V - 1\] = \[0, 3\]"):
        impl.embedding.embedding_forward(w, tokens=[0, 4])
    with pytest.raises(TypeError, match="tokens must hold integer token ids"):
        impl.embedding.embedding_forward(w, tokens=[0.0, 1.0])
    with pytest.raises(ValueError, match=r"w must have shape \(V, D\)"):
        impl.embedding.embedding_forward(np.zeros(3), tokens=[0])
    with pytest.raises(ValueError, match=r"h must have shape \(\.\.\., D\) with D = 3"):
        impl.embedding.output_projection_forward(np.zeros((2, 4)), w, np.zeros(4))
