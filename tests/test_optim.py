import math

import numpy as np
import pytest

from attention_from_scratch.training.optim import (
    adam_init,
    adam_step,
    clip_by_global_norm,
    global_norm,
    learning_rate,
)


def test_adam_two_steps_by_hand():
    p = {"w": np.array([1.0, -2.0])}
    g1, g2 = {"w": np.array([0.5, 0.0])}, {"w": np.array([-1.0, 2.0])}
    b1, b2, lr = 0.9, 0.98, 0.1
    p1, s1 = adam_step(p, g1, adam_init(p), lr=lr, beta1=b1, beta2=b2, eps=0.0 + 1e-12)
    p2, s2 = adam_step(p1, g2, s1, lr=lr, beta1=b1, beta2=b2, eps=1e-12)
    m = (1 - b1) * 0.5 * b1 + (1 - b1) * -1.0
    v = (1 - b2) * 0.25 * b2 + (1 - b2) * 1.0
    expected = p1["w"][0] - lr * (m / (1 - b1 ** 2)) / math.sqrt(v / (1 - b2 ** 2))
    assert s2.step == 2
    np.testing.assert_allclose(p2["w"][0], expected, rtol=1e-9)
    np.testing.assert_allclose(p1["w"], [1.0 - lr, -2.0], rtol=1e-9)   # 0 gradient: no move
    np.testing.assert_array_equal(p["w"], [1.0, -2.0])                 # inputs untouched


def test_adam_without_bias_correction_would_start_too_slowly():
    p = {"w": np.zeros(1)}
    p1, _ = adam_step(p, {"w": np.array([3.0])}, adam_init(p), lr=1e-2)
    uncorrected = 1e-2 * (0.1 * 3.0) / math.sqrt(0.02 * 9.0)
    assert abs(p1["w"][0]) == pytest.approx(1e-2) and uncorrected < 0.75e-2


def test_adam_keeps_float32_and_refuses_other_keys():
    p = {"w": np.ones(3, np.float32)}
    p1, _ = adam_step(p, {"w": np.ones(3, np.float32)}, adam_init(p), lr=0.1)
    assert p1["w"].dtype == np.float32
    with pytest.raises(ValueError, match="grads must have the keys of params"):
        adam_step(p, {"v": np.ones(3)}, adam_init(p), lr=0.1)


def test_clipping_scales_all_arrays_by_one_factor(rng):
    grads = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=4)}
    norm = global_norm(grads)
    clipped, before = clip_by_global_norm(grads, norm / 4)
    assert before == pytest.approx(norm)
    assert global_norm(clipped) == pytest.approx(norm / 4)
    np.testing.assert_allclose(clipped["a"] * 4, grads["a"])
    same, _ = clip_by_global_norm(grads, norm * 2)
    np.testing.assert_array_equal(same["b"], grads["b"])


def test_schedule_warms_up_peaks_and_decays():
    rates = [learning_rate(s, peak=2.0, warmup=10, total=100, final=0.1) for s in range(101)]
    assert np.all(np.diff(rates[:10]) > 0)
    assert max(rates) == pytest.approx(2.0)
    assert np.all(np.diff(rates[10:]) <= 1e-12)
    assert rates[-1] == pytest.approx(0.1)
