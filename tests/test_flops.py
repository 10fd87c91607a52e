"""Every count of ``measure.flops``, by hand and by its growth."""

import numpy as np
import pytest

from attention_from_scratch.measure.complexity import loglog_slope
from attention_from_scratch.measure.flops import (
    attention_matmul_flops,
    attention_weights_bytes,
    layer_flops,
    multi_head_matmul_flops,
    multiply_adds_per_token,
    self_attention_flops,
)


def test_attention_flops_by_hand():
    # T=3, S=4, Dk=2: 3*4 scores of 2 multiply-adds each = 24 multiply-adds = 48 FLOPs;
    # Dv=5: 3*5 outputs of 4 multiply-adds each = 60 multiply-adds = 120 FLOPs
    assert attention_matmul_flops(3, 4, 2, 5) == 48 + 120


def test_self_attention_flops_parts_and_crossover():
    flops = self_attention_flops(3, 2)
    assert flops == {"projections": 4 * 2 * 3 * 2 * 2, "attention": 2 * 2 * 3 * 3 * 2}
    # 8 T D^2 = 4 T^2 D exactly when T = 2 D
    d = 64
    at_crossover = self_attention_flops(2 * d, d)
    assert at_crossover["attention"] == at_crossover["projections"]
    assert self_attention_flops(4 * d, d)["attention"] > self_attention_flops(4 * d, d)[
        "projections"]


def test_attention_flops_grow_quadratically_and_projections_linearly():
    lengths = [128, 256, 512]
    parts = [self_attention_flops(t, 32) for t in lengths]
    assert loglog_slope(lengths, [p["attention"] for p in parts]) == pytest.approx(2.0)
    assert loglog_slope(lengths, [p["projections"] for p in parts]) == pytest.approx(1.0)


def test_attention_weights_bytes():
    assert attention_weights_bytes(3, 4, n_heads=2, itemsize=8) == 2 * 3 * 4 * 8
    with pytest.raises(ValueError, match="n_heads must be at least 1"):
        attention_weights_bytes(3, 4, n_heads=0)


def test_counts_refuse_bad_sizes():
    with pytest.raises(ValueError, match="t must be at least 1, got 0"):
        attention_matmul_flops(0, 4, 2, 5)
    with pytest.raises(TypeError, match="d must be an int"):
        self_attention_flops(3, 2.0)


def test_flop_count_by_hand():
    # B = 1, T = 2, S = 3, D = 4, H = 2, Dh = 2: Q and O projections 2*2*4*4 each, K and V
    # 2*3*4*4 each; per head, scores and weighted sum 2*2*3*2 each
    forward, backward = multi_head_matmul_flops(1, 2, 4, 2, s=3)
    assert forward == 64 + 64 + 96 + 96 + 2 * (24 + 24)
    assert backward == 2 * forward
    # H heads of width D / H cost what one head of width D costs
    assert multi_head_matmul_flops(4, 512, 512, 8) == multi_head_matmul_flops(4, 512, 512, 1)
    b, t, d = 4, 512, 512
    assert multi_head_matmul_flops(b, t, d, 8)[0] == 8 * b * t * d ** 2 + 4 * b * t ** 2 * d
    with pytest.raises(ValueError, match="n_heads = 3 must divide D = 8"):
        multi_head_matmul_flops(1, 2, 8, 3)


def test_layer_flops():
    assert layer_flops("self-attention", 10, 4) == 4 * 100 * 4
    assert layer_flops("recurrent", 10, 4) == 4 * 10 * 16
    assert layer_flops("convolution", 10, 4, width=3) == 2 * 3 * 10 * 16
    assert layer_flops("restricted self-attention", 10, 4, width=3) == 4 * 10 * 3 * 4
    with pytest.raises(ValueError, match="kind must be one of"):
        layer_flops("transformer", 10, 4)


def test_multiply_adds_by_hand():
    # D = 2, F = 4, position 3: projections 4 D^2 = 16, FFN 2 D F = 16,
    # attention 2 n D = 12 with the cache; without it, 3 positions of 32 and
    # 2 n^2 D = 36 for the full score matrix and weighted sum
    kwargs = {"d_model": 2, "d_ff": 4, "n_layers": 1}
    assert multiply_adds_per_token(3, cached=True, **kwargs) == 44
    assert multiply_adds_per_token(3, cached=False, **kwargs) == 3 * 32 + 36
    assert multiply_adds_per_token(3, cached=True, **{**kwargs, "n_layers": 4}) == 176


def test_cached_cost_is_linear_uncached_quadratic():
    kwargs = {"d_model": 16, "d_ff": 64, "n_layers": 2}
    n = np.arange(1, 30)
    cached = np.array([multiply_adds_per_token(i, cached=True, **kwargs) for i in n])
    full = np.array([multiply_adds_per_token(i, cached=False, **kwargs) for i in n])
    assert np.all(np.diff(cached, 2) == 0) and np.all(np.diff(cached) > 0)
    assert np.all(np.diff(full, 2) == 2 * 2 * 2 * 16)     # second difference of 2 L n^2 D
    assert np.all(full >= cached) and full[0] == cached[0]
