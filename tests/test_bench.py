"""``bench`` runs its whole code path; checked on tiny sizes, never on timings."""

import io
import subprocess
import sys

import numpy as np
import pytest

from attention_from_scratch import bench, core

TINY = (2, 6, 12, 3)     # (B, T, D, H)


@pytest.fixture(scope="module")
def result():
    return bench.run(sizes=(TINY,), steps_sizes=(TINY,), repeats=2, steps_repeats=1,
                     matmul_size=32)


def test_flop_count_by_hand():
    # B = 1, T = 2, S = 3, D = 4: Q and O projections 2*2*4*4 each, K and V 2*3*4*4 each,
    # scores and weighted sum 2*2*3*4 each (summed over heads)
    forward, backward = bench.attention_flops(1, 2, 4, 2, s=3)
    assert forward == 64 + 64 + 96 + 96 + 48 + 48
    assert backward == 2 * forward
    assert bench.attention_flops(4, 512, 512, 8) == bench.attention_flops(4, 512, 512, 1)
    b, t, d = 4, 512, 512
    assert bench.attention_flops(b, t, d, 8)[0] == 8 * b * t * d ** 2 + 4 * b * t ** 2 * d


def test_every_measurement_is_there(result):
    keys = [(r.impl, r.dtype, r.mask, r.pass_name) for r in result.rows]
    assert len(keys) == len(set(keys))
    for dtype in ("float32", "float64"):
        for mask in ("none", "causal"):
            for pass_name in ("forward", "forward+backward"):
                assert ("core", dtype, mask, pass_name) in keys
        assert ("core, matmuls only", dtype, "none", "forward+backward") in keys
    # steps computes in float64 only
    assert {r.dtype for r in result.rows if r.impl == "steps"} == {"float64"}
    assert sum(r.impl == "steps" for r in result.rows) == 4
    assert len(result.rows) == 4 + 1 + 4 + 4 + 1


def test_rows_are_consistent(result):
    assert set(result.matmul_rates) == set(result.matmul_runs) == {"float32", "float64"}
    for name, (before, after) in result.matmul_runs.items():
        assert result.matmul_rates[name] == max(before, after)
    assert all(rate > 0 for rate in result.matmul_rates.values())
    forward, backward = bench.attention_flops(*TINY[:3], TINY[3])
    for r in result.rows:
        assert r.size == TINY
        assert 0 < r.best <= r.median
        assert r.flops == (forward if r.pass_name == "forward" else forward + backward)
        assert r.fraction == pytest.approx(r.rate / result.matmul_rates[r.dtype])
    assert result.seconds > 0


def test_table_has_a_row_per_measurement(result):
    text = bench.format_result(result)
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(result.rows)
    assert table[0].startswith("| impl | dtype | B | T | D | H | mask | pass | median ms")
    assert "GFLOP/s" in text and "of matmul" in text
    assert bench.target_row(result) is None          # the target size was not measured
    assert "Target:" not in text


def test_verdict_line_names_the_target(result):
    size, dtype, goal = bench.TARGET
    row = result.rows[1]._replace(size=size, dtype=dtype, fraction=goal / 2)
    text = bench.format_result(result._replace(rows=[*result.rows, row]))
    assert bench.target_row(result._replace(rows=[row])) == row
    assert f"Target: core forward+backward at B, T, D, H = {size}" in text
    assert "NOT met" in text


def test_matmuls_only_computes_the_same_products(rng):
    # not the attention (no softmax), but the same shapes as core's forward and backward
    x = rng.normal(size=(2, 5, 6))
    params = core.multi_head.init_multi_head_params(6, rng=rng)
    out, cache = bench.core_matmuls_only_forward(x, params, n_heads=3)
    assert out.shape == (10, 6)
    dx, dw = bench.core_matmuls_only_backward(rng.normal(size=(2, 5, 6)), cache)
    assert dx.shape == (10, 6) and dw.shape == (6, 18)


def test_cli_help_and_progress():
    done = subprocess.run([sys.executable, "-m", "attention_from_scratch", "bench", "--help"],
                          capture_output=True, text=True, check=True)
    assert "np.matmul" in done.stdout and "--repeats" in done.stdout
    out = io.StringIO()
    bench.run(sizes=(TINY,), steps_sizes=(), dtypes=(np.float32,), repeats=1,
              matmul_size=16, out=out)
    assert out.getvalue().count("measured core float32") == 2
