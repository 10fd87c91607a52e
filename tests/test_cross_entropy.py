import numpy as np
import pytest

from attention_from_scratch import core, steps
from attention_from_scratch.checking.gradcheck import assert_gradients_correct


def test_hand_checkable_case(impl):
    logits = np.log(np.array([[1.0, 2.0, 1.0], [3.0, 0.5, 0.5]]))   # probs [.25 .5 .25], [.75 ..]
    loss, _ = impl.cross_entropy.cross_entropy_forward(logits, targets=np.array([1, 0]))
    np.testing.assert_allclose(loss, -(np.log(0.5) + np.log(0.75)) / 2)


def test_padding_is_left_out_of_sum_and_count(impl, rng):
    logits = rng.normal(size=(2, 4, 5))
    targets = np.array([[3, 1, 0, 0], [2, 4, 1, 0]])
    loss, cache = impl.cross_entropy.cross_entropy_forward(logits, targets=targets, ignore_id=0)
    real = targets != 0
    alone, _ = impl.cross_entropy.cross_entropy_forward(logits[real], targets=targets[real])
    np.testing.assert_allclose(loss, alone, rtol=1e-6)
    dlogits = impl.cross_entropy.cross_entropy_backward(np.array(1.0), cache)
    np.testing.assert_array_equal(dlogits[~real], 0.0)


def test_stable_for_huge_logits(impl):
    logits = np.array([[1000.0, 0.0, -1000.0]])
    loss, cache = impl.cross_entropy.cross_entropy_forward(logits, targets=np.array([1]))
    np.testing.assert_allclose(loss, 1000.0)
    assert np.isfinite(impl.cross_entropy.cross_entropy_backward(np.array(2.0), cache)).all()


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5), (1, 2)])
def test_finite_differences(impl, rng, shape):
    logits = rng.normal(size=shape)
    targets = rng.integers(0, shape[-1], size=shape[:-1])
    targets.flat[0] = 1   # at least one ignored, at least one real below
    targets.flat[-1] = 0 if targets.size > 1 else 1
    assert_gradients_correct(impl.cross_entropy.cross_entropy_forward,
                             impl.cross_entropy.cross_entropy_backward, (logits,),
                             kwargs={"targets": targets, "ignore_id": 0}, rng=rng)


def test_steps_equals_core(rng):
    logits = rng.normal(size=(3, 4, 6))
    targets = rng.integers(0, 6, size=(3, 4))
    targets[0, 0] = 2
    loss_s, c_s = steps.cross_entropy.cross_entropy_forward(logits, targets=targets, ignore_id=2)
    loss_c, c_c = core.cross_entropy.cross_entropy_forward(logits, targets=targets, ignore_id=2)
    np.testing.assert_allclose(loss_s, loss_c, rtol=1e-12)
    dloss = np.array(rng.normal())
    np.testing.assert_allclose(steps.cross_entropy.cross_entropy_backward(dloss, c_s),
                               core.cross_entropy.cross_entropy_backward(dloss, c_c),
                               rtol=1e-12, atol=1e-15)


def test_gradient_rows_sum_to_zero(impl, rng):
    """softmax - onehot sums to 0 over the vocabulary: shifting every logit
    of a row by the same amount leaves the loss unchanged."""
    logits = rng.normal(size=(4, 7))
    _, cache = impl.cross_entropy.cross_entropy_forward(logits, targets=rng.integers(0, 7, 4))
    dlogits = impl.cross_entropy.cross_entropy_backward(np.array(1.0), cache)
    np.testing.assert_allclose(dlogits.sum(axis=-1), 0.0, atol=1e-12)


def test_bad_inputs(impl):
    with pytest.raises(ValueError, match=r"targets must have shape \(\.\.\.,\) = \(2,\)"):
        impl.cross_entropy.cross_entropy_forward(np.zeros((2, 3)), targets=[0, 1, 2])
    with pytest.raises(ValueError, match="no real position"):
        impl.cross_entropy.cross_entropy_forward(np.zeros((2, 3)), targets=[0, 0], ignore_id=0)
    with pytest.raises(ValueError, match=r"targets ids must lie in \[0, V - 1\] = \[0, 2\]"):
        impl.cross_entropy.cross_entropy_forward(np.zeros((2, 3)), targets=[0, 3])
