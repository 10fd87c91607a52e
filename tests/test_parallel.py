"""The worker threads that ``core`` hands independent chunks to."""

import os
import threading

import numpy as np
import pytest

from attention_from_scratch.common.parallel import get_workers, run_chunks, set_workers


@pytest.fixture
def two_workers():
    previous = set_workers(2)
    yield
    set_workers(previous)


def test_results_come_back_in_the_order_of_the_chunks(two_workers):
    assert run_chunks(lambda i: i * 10, range(9)) == [i * 10 for i in range(9)]


def test_two_workers_use_two_threads(two_workers):
    barrier = threading.Barrier(2, timeout=10)   # passes only if both chunks run at once
    names = run_chunks(lambda _: (barrier.wait(), threading.current_thread().name)[1], range(2))
    assert len(set(names)) == 2


def test_one_worker_runs_in_the_calling_thread():
    previous = set_workers(1)
    try:
        names = run_chunks(lambda _: threading.current_thread().name, range(3))
    finally:
        set_workers(previous)
    assert set(names) == {threading.current_thread().name}


def test_a_chunk_may_call_run_chunks_without_waiting_on_itself(two_workers):
    inner = run_chunks(lambda i: sum(run_chunks(lambda j: i * j, range(3))), range(4))
    assert inner == [3 * i for i in range(4)]


def test_set_workers_returns_the_previous_number(two_workers):
    assert set_workers(3) == 2
    assert get_workers() == 3


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_workers_refuses_what_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match="positive int"):
        set_workers(bad)


def test_one_worker_per_core_only_when_blas_is_pinned_to_one_thread():
    from attention_from_scratch.common.parallel import default_workers
    cores = os.cpu_count() or 1
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        assert default_workers({name: "1"}) == cores
    assert default_workers({}) == 1                              # BLAS threads by itself
    assert default_workers({"OPENBLAS_NUM_THREADS": "2"}) == 1


def test_the_default_follows_the_environment_numpy_was_started_with():
    from attention_from_scratch.common.parallel import default_workers
    assert get_workers() == default_workers(os.environ)          # conftest.py pins BLAS


@pytest.mark.parametrize("chosen", ["0", "-1", "two", ""])
def test_a_bad_worker_count_in_the_environment_is_refused(chosen):
    from attention_from_scratch.common.parallel import default_workers
    with pytest.raises(ValueError, match="ATTENTION_FROM_SCRATCH_WORKERS must be a positive"):
        default_workers({"ATTENTION_FROM_SCRATCH_WORKERS": chosen})


@pytest.mark.parametrize("m, k, n", [(7, 3, 4), (3, 5, 9), (1, 2, 1)])   # rows, columns, one
def test_matmul_split_over_the_workers_equals_one_product(two_workers, m, k, n):
    from attention_from_scratch.common.parallel import matmul
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(m, k)), rng.normal(size=(k, n))
    np.testing.assert_allclose(matmul(a, b), a @ b, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(matmul(b.T, a.T), (a @ b).T, rtol=1e-14, atol=1e-14)  # views
