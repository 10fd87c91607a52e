"""``bench`` runs its whole code path; checked on tiny sizes, never on timings."""

import io
import subprocess
import sys

import numpy as np
import pytest

from attention_from_scratch.common.params import init_multi_head_params
from attention_from_scratch.measure import bench, flops

TINY = (2, 6, 12, 3)     # (B, T, D, H)


@pytest.fixture(scope="module")
def result():
    return bench.run(sizes=(TINY,), steps_sizes=(TINY,), repeats=2, steps_repeats=1,
                     matmul_size=32)


def test_every_measurement_is_there(result):
    keys = [(r.impl, r.dtype, r.mask, r.pass_name) for r in result.rows]
    assert len(keys) == len(set(keys))
    for dtype in ("float32", "float64"):
        for mask in ("none", "causal"):
            for pass_name in ("forward", "forward+backward"):
                assert ("core", dtype, mask, pass_name) in keys
        for impl in ("core, matmuls only", "head products, views", "head products, copies"):
            assert (impl, dtype, "none", "forward+backward") in keys
    # steps computes in float64 only, without a mask
    assert {r.dtype for r in result.rows if r.impl == "steps"} == {"float64"}
    assert sum(r.impl == "steps" for r in result.rows) == 2
    assert len(result.rows) == 2 * (4 + 3) + 2


def test_rows_are_consistent(result):
    assert set(result.matmul_rates) == set(result.matmul_runs) == {"float32", "float64"}
    for name, by_size in result.matmul_runs.items():
        assert list(by_size) == [TINY]
        assert result.matmul_rates[name] > 0 and by_size[TINY] > 0
    forward, backward = flops.multi_head_matmul_flops(*TINY)
    for r in result.rows:
        assert r.size == TINY
        assert 0 < r.best <= r.median
        if r.impl.startswith("head products"):
            assert r.flops == flops.head_product_flops(*TINY[:3])
        else:
            assert r.flops == (forward if r.pass_name == "forward" else forward + backward)
        assert r.fraction == pytest.approx(r.rate / result.matmul_runs[r.dtype][r.size])
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


def test_disagreeing_matmul_rates_are_flagged(result):
    small, large = bench.SIZES

    def runs(float32_rates):
        return {"float32": dict(zip(bench.SIZES, float32_rates, strict=True)),
                "float64": {small: 50e9, large: 50e9}}

    steady = result._replace(matmul_runs=runs((100e9, 90e9)))
    assert bench.rates_disagree(steady) == []
    assert "WARNING" not in bench.format_result(steady)
    busy = result._replace(matmul_runs=runs((100e9, 80e9)))
    assert bench.rates_disagree(busy) == ["float32"]
    assert "WARNING: the float32 matmul rates of different sizes differ by more than 15%" in (
        bench.format_result(busy))


def test_matmuls_only_computes_the_same_products(rng):
    # not the attention (no softmax), but the same shapes as core's forward and backward
    x = rng.normal(size=(2, 5, 6))
    params = init_multi_head_params(6, rng=rng)
    out, cache = bench.core_matmuls_only_forward(x, params, n_heads=3)
    assert out.shape == (10, 6)
    dx, (dw_q, dw_kv) = bench.core_matmuls_only_backward(rng.normal(size=(2, 5, 6)), cache)
    assert dx.shape == (10, 6) and dw_q.shape == (6, 6) and dw_kv.shape == (6, 12)


def test_head_products_on_views_and_copies_agree(rng):
    b, t, h, d_head = 2, 5, 3, 4
    y = rng.normal(size=(b, t, 3, h, d_head))
    dheads = rng.normal(size=(b, h, t, d_head))
    concat, dy = bench.head_products(y, dheads, contiguous=False)
    concat_copies, dy_copies = bench.head_products(y, dheads, contiguous=True)
    np.testing.assert_allclose(concat_copies, concat, rtol=1e-12)
    np.testing.assert_allclose(dy_copies, dy, rtol=1e-12)
    # by hand, head 1 of sequence 0
    q, k, v = (y[0, :, i, 1] for i in range(3))
    scores = q @ k.T
    np.testing.assert_allclose(concat[0, :, 1], scores @ v, rtol=1e-12)
    np.testing.assert_allclose(dy[0, :, 2, 1], scores.T @ dheads[0, 1], rtol=1e-12)   # dv
    dscores = dheads[0, 1] @ v.T
    np.testing.assert_allclose(dy[0, :, 0, 1], dscores @ k, rtol=1e-12)               # dq
    np.testing.assert_allclose(dy[0, :, 1, 1], dscores.T @ q, rtol=1e-12)             # dk


def test_cli_help_and_progress():
    done = subprocess.run([sys.executable, "-m", "attention_from_scratch", "bench", "--help"],
                          capture_output=True, text=True, check=True)
    assert "np.matmul" in done.stdout and "--repeats" in done.stdout
    out = io.StringIO()
    bench.run(sizes=(TINY,), steps_sizes=(), dtypes=(np.float32,), repeats=1,
              matmul_size=16, out=out)
    assert out.getvalue().count("measured float32 (2, 6, 12, 3)") == 1
    assert "core mask=causal" in out.getvalue()
