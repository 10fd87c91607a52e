import time
import tracemalloc

import numpy as np
import pytest

from attention_from_scratch.measure.complexity import (
    attention_peak_memory,
    best_times,
    loglog_slope,
    peak_memory,
    self_attention_runs,
)


def test_loglog_slope_reads_the_exponent():
    x = np.array([2.0, 4.0, 8.0, 16.0])
    assert loglog_slope(x, 5 * x ** 1.5) == pytest.approx(1.5)
    assert loglog_slope(x, np.full(4, 7.0)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="positive"):
        loglog_slope(x, -x)
    with pytest.raises(ValueError, match="same length"):
        loglog_slope(x, x[:3])


def test_peak_memory_counts_what_the_call_allocates():
    held = np.ones(100_000)                     # allocated before: not counted
    assert 8 * 1000 <= peak_memory(lambda: np.ones(1000)) < 8 * 1000 + 4096
    # a temporary freed before the end still counts at its peak
    assert peak_memory(lambda: np.ones(50_000).sum()) >= 8 * 50_000
    assert held.size == 100_000
    assert not tracemalloc.is_tracing()


def test_peak_memory_inside_an_outer_trace_leaves_it_running():
    tracemalloc.start()
    try:
        assert peak_memory(lambda: np.ones(2000)) >= 16_000
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


def test_self_attention_runs_measure_the_three_parts(rng):
    runs = self_attention_runs(512, 16, rng=rng, block_size=64)
    assert set(runs) == {"projections", "attention", "flash attention"}
    memory = {name: peak_memory(run) for name, run in runs.items()}
    # the (T, T) float32 weights alone are 1 MiB; flash holds a few (T, block) tiles
    assert memory["attention"] > 512 * 512 * 4 > 1.5 * memory["flash attention"]
    assert memory["projections"] < memory["flash attention"]


def busy(seconds):
    """Keep the processor busy (not asleep) for about ``seconds`` of CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_best_times_counts_cpu_time_not_sleep():
    times = best_times([lambda: time.sleep(0.01), lambda: busy(0.01)], repeat=2,
                       min_seconds=0.0)
    # asleep, the process uses almost no processor time; busy, it uses all of it
    assert times[0] < 0.002 < 0.008 < times[1]


def test_best_times_takes_the_best_round_and_runs_each_every_round():
    calls = {"a": 0, "b": 0}

    def a():
        calls["a"] += 1
        busy(0.02 if calls["a"] == 1 else 0.002)     # slow only in the first round

    def b():
        calls["b"] += 1
        busy(0.004)

    times = best_times([a, b], repeat=3, min_seconds=0.0)
    assert calls == {"a": 4, "b": 4}                  # one calibration call + 3 rounds
    assert times.shape == (2,) and times[0] < times[1] < 0.006
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        best_times([a], repeat=0)


def test_best_times_repeats_a_fast_call_to_fill_a_timing():
    calls = []
    times = best_times([lambda: calls.append(1)], repeat=2, min_seconds=0.005)
    assert len(calls) > 10                 # far more than 1 + 2: each timing repeats the call
    assert 0 < times[0] < 1e-4             # and reports the time of one call


def test_attention_peak_memory_quadratic_against_linear(rng):
    small = attention_peak_memory(512, 16, rng=rng, block_size=64)
    large = attention_peak_memory(1024, 16, rng=rng, block_size=64)
    assert set(small) == {"attention", "flash attention"}
    # doubling T: the (T, T) weights make standard attention grow ~4x, flash ~2x
    assert 3.5 < large["attention"] / small["attention"] < 4.5
    assert 1.7 < large["flash attention"] / small["flash attention"] < 2.3
    only = attention_peak_memory(256, 8, rng=rng, parts=("projections",))
    assert set(only) == {"projections"}


def test_best_times_counts_the_chunks_core_hands_to_worker_threads():
    from attention_from_scratch.common.parallel import run_chunks, set_workers

    def busy(_):
        start = time.thread_time()
        while time.thread_time() - start < 0.005:
            pass

    previous = set_workers(2)
    try:
        seconds = best_times([lambda: run_chunks(busy, range(4))], repeat=2, min_seconds=0)[0]
    finally:
        set_workers(previous)
    assert seconds >= 0.018        # four chunks of 5 ms, all counted
