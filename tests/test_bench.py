"""``bench`` runs its whole code path; checked on tiny sizes, never on timings."""

import io
import subprocess
import sys

import numpy as np
import pytest

from attention_from_scratch import core
from attention_from_scratch.common.params import init_multi_head_params
from attention_from_scratch.measure import bench, flops

TINY = (2, 6, 12, 3)     # (B, T, D, H)
LONG_TINY = (1, 20, 8, 2)


@pytest.fixture(scope="module")
def result():
    return bench.run(sizes=(TINY,), steps_sizes=(TINY,), long=LONG_TINY, repeats=2,
                     steps_repeats=1, matmul_size=32, use_torch=False)


def test_every_measurement_is_there(result):
    keys = [(r.impl, r.dtype, r.size, r.mask, r.pass_name) for r in result.rows]
    assert len(keys) == len(set(keys))
    for dtype in ("float32", "float64"):
        for mask in ("none", "causal"):
            for pass_name in ("forward", "forward+backward"):
                assert ("core", dtype, TINY, mask, pass_name) in keys
    # steps computes in float64 only, without a mask
    assert {r.dtype for r in result.rows if r.impl == "steps"} == {"float64"}
    assert sum(r.impl == "steps" for r in result.rows) == 2
    # the long size: causal, float32, multi-head and the bare heads' flash and dense attention
    for impl in ("core", "core flash", "core attention"):
        for pass_name in ("forward", "forward+backward"):
            assert (impl, "float32", LONG_TINY, "causal", pass_name) in keys
    assert not any(r.impl.startswith("PyTorch") for r in result.rows)
    assert len(result.rows) == 2 * 4 + 2 + 3 * 2


def test_rows_are_consistent(result):
    assert set(result.matmul_rates) == set(result.matmul_runs) == {"float32", "float64"}
    assert list(result.matmul_runs["float64"]) == [TINY]
    assert list(result.matmul_runs["float32"]) == [TINY, LONG_TINY]
    for name, by_size in result.matmul_runs.items():
        assert result.matmul_rates[name] > 0 and all(rate > 0 for rate in by_size.values())
    for r in result.rows:
        assert 0 < r.best <= r.median
        b, t, d, h = r.size
        if r.impl in ("core flash", "core attention"):
            forward = 4 * b * t * t * d                           # q k^T and weights @ v
            assert r.flops == (forward if r.pass_name == "forward" else 3 * forward)
        else:
            forward, backward = flops.multi_head_matmul_flops(*r.size)
            assert r.flops == (forward if r.pass_name == "forward" else forward + backward)
        assert r.fraction == pytest.approx(r.rate / result.matmul_runs[r.dtype][r.size])
    assert result.seconds > 0


def test_table_has_a_row_per_measurement(result):
    text = bench.format_result(result)
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(result.rows)
    assert table[0].startswith("| impl | dtype | B | T | D | H | mask | pass | median ms")
    assert "GFLOP/s" in text and "of matmul" in text
    assert bench.verdicts(result) == []          # no PyTorch rows, sizes not the targets'
    assert "Target:" not in text
    assert f"pip install torch=={bench.TORCH_VERSION}" in text


def _with_rows(result, ratio):
    """The result with a core and a PyTorch row at the first target, ``ratio`` apart."""
    impl, other, size, mask, goal = bench.TARGETS[0]
    row = result.rows[1]._replace(impl=other, size=size, mask=mask, dtype="float32",
                                  pass_name="forward+backward", median=0.1)
    mine = row._replace(impl=impl, median=0.1 * ratio)
    return result._replace(rows=[*result.rows, mine, row]), goal


@pytest.mark.parametrize("ratio, verdict", [(0.5, "met"), (2.0, "NOT met")])
def test_a_verdict_compares_the_two_median_times(result, ratio, verdict):
    changed, goal = _with_rows(result, ratio)
    [(text, met)] = bench.verdicts(changed)
    assert met == (verdict == "met")
    assert text.endswith(f": {ratio:.2f} (target <= {goal}): {verdict}")
    assert f"Target: {text}" in bench.format_result(changed)


def test_pytorch_rows_when_it_is_installed():
    pytest.importorskip("torch")
    with_torch = bench.run(sizes=(TINY,), steps_sizes=(), dtypes=(np.float32,),
                           long=LONG_TINY, repeats=1, matmul_size=16)
    impls = {(r.impl, r.size, r.mask) for r in with_torch.rows}
    assert {("PyTorch MHA", TINY, "none"), ("PyTorch MHA", TINY, "causal"),
            ("PyTorch MHA", LONG_TINY, "causal"), ("PyTorch SDPA", LONG_TINY, "causal")} <= impls
    assert len(with_torch.agreement) == 4
    assert all(difference < 1e-4 for _, difference in with_torch.agreement)
    assert with_torch.torch and "checked against core's" in bench.format_result(with_torch)


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
    # not the attention (no softmax, no biases): ((q k^T) v) W_O and its true gradient
    x = rng.normal(size=(2, 5, 6))
    params = init_multi_head_params(6, rng=rng)
    out, cache = bench.core_matmuls_only_forward(x, params, n_heads=3)

    def products(x):
        q, k, v = ((x @ params[w]).reshape(2, 5, 3, 2).swapaxes(1, 2)   # (B, H, T, Dh)
                   for w in ("w_q", "w_k", "w_v"))
        return ((q @ k.swapaxes(-1, -2)) @ v).swapaxes(1, 2).reshape(10, 6) @ params["w_o"]

    np.testing.assert_allclose(out, products(x), rtol=1e-12)
    dout = rng.normal(size=(2, 5, 6))
    dx, (dw_q, dw_kv) = bench.core_matmuls_only_backward(dout, cache)
    assert dx.shape == (10, 6) and dw_q.shape == (6, 6) and dw_kv.shape == (6, 12)
    direction, eps = rng.normal(size=x.shape), 1e-6                   # a central difference
    slope = np.sum(dout.reshape(10, 6) * (products(x + eps * direction)
                                           - products(x - eps * direction))) / (2 * eps)
    assert np.isclose(np.sum(dx * direction.reshape(10, 6)), slope, rtol=1e-6)
    assert len(cache[-1]) == 3                                        # kept, as core does


def test_matmuls_only_recomputes_the_scores_when_core_does(rng, monkeypatch):
    monkeypatch.setattr(core.multi_head, "TILE_SIZE", 16)            # 5 x 5 no longer kept
    x = rng.normal(size=(2, 5, 6))
    params = init_multi_head_params(6, rng=rng)
    _, cache = bench.core_matmuls_only_forward(x, params, n_heads=3)
    assert cache[-1] == []
    dout = rng.normal(size=(2, 5, 6))
    monkeypatch.undo()                                                # the default TILE_SIZE
    _, kept_cache = bench.core_matmuls_only_forward(x, params, n_heads=3)
    assert len(kept_cache[-1]) == 3
    np.testing.assert_allclose(bench.core_matmuls_only_backward(dout, cache)[0],
                               bench.core_matmuls_only_backward(dout, kept_cache)[0],
                               rtol=1e-12)


def test_cli_help_and_progress():
    done = subprocess.run([sys.executable, "-m", "attention_from_scratch", "bench", "--help"],
                          capture_output=True, text=True, check=True)
    assert "np.matmul" in done.stdout and "--repeats" in done.stdout
    out = io.StringIO()
    bench.run(sizes=(TINY,), steps_sizes=(), dtypes=(np.float32,), long=None, repeats=1,
              matmul_size=16, use_torch=False, out=out)
    assert out.getvalue().count("measured float32 (2, 6, 12, 3)") == 1
    assert "core mask=causal" in out.getvalue()
