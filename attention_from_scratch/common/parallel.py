"""Independent chunks of ``core`` work on every CPU core (Chapters 4 and 6).

NumPy's matrix products and ufuncs release Python's global interpreter
lock while they run, so plain threads can compute on several cores at
once. ``core`` cuts attention into chunks that do not write to the same
memory -- a group of heads, a block of queries -- and hands them to
:func:`run_chunks`. A chunk small enough to stay in the CPU's cache also
runs faster than the same work done as one pass over a ``(B, H, T, S)``
array that does not fit (``python -m attention_from_scratch bench``).

The results do not depend on the number of workers: each chunk is
computed the same way whichever thread runs it. One worker runs the
chunks in order, in the calling thread.

Pair the workers with one BLAS thread each (``OPENBLAS_NUM_THREADS=1``
before NumPy is imported, as the command line, the tests and the
chapters do): two libraries each starting a thread per core would
oversubscribe the CPUs, and measured slower than either alone. So the
default is one worker per core only when the environment pins BLAS to one
thread, and one worker otherwise (BLAS then threads its own products).
``ATTENTION_FROM_SCRATCH_WORKERS=n`` in the environment, or
:func:`set_workers`, overrides it (the test suite runs its processes with
one worker, and tests the threads where it says so).
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_PREFIX = "attention-chunk"
_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def default_workers(environ=os.environ):
    """One worker per CPU core if ``environ`` pins BLAS to one thread, else
    1; ``ATTENTION_FROM_SCRATCH_WORKERS``, if set, decides.

    Examples
    --------
    >>> default_workers({"OPENBLAS_NUM_THREADS": "1"}) == (os.cpu_count() or 1)
    True
    >>> default_workers({})
    1
    >>> default_workers({"OPENBLAS_NUM_THREADS": "1", "ATTENTION_FROM_SCRATCH_WORKERS": "3"})
    3
    """
    if "ATTENTION_FROM_SCRATCH_WORKERS" in environ:
        chosen = environ["ATTENTION_FROM_SCRATCH_WORKERS"]
        if not chosen.isdigit() or int(chosen) < 1:
            raise ValueError("ATTENTION_FROM_SCRATCH_WORKERS must be a positive integer, "
                             f"got {chosen!r}")
        return int(chosen)
    pinned = any(environ.get(name) == "1" for name in _BLAS_THREADS)
    return (os.cpu_count() or 1) if pinned else 1


_state = {"workers": default_workers(), "pool": None}


def get_workers():
    """The number of threads :func:`run_chunks` uses."""
    return _state["workers"]


def set_workers(n):
    """Use ``n`` threads from now on; return the previous number.

    Examples
    --------
    >>> previous = set_workers(1)
    >>> run_chunks(lambda i: i * i, range(4))
    [0, 1, 4, 9]
    >>> set_workers(previous) == 1
    True
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    previous = _state["workers"]
    if n != previous:
        pool = _state["pool"]
        _state["workers"], _state["pool"] = n, None
        if pool is not None:
            pool.shutdown(wait=True)
    return previous


def run_chunks(function, chunks):
    """``[function(chunk) for chunk in chunks]``, on up to ``get_workers()``
    threads; results in the order of ``chunks``.

    The chunks must not write to the same memory. Called from inside a
    chunk, it runs in that chunk's thread (no pool waits on itself).
    """
    chunks = list(chunks)
    workers = min(_state["workers"], len(chunks))
    nested = threading.current_thread().name.startswith(_PREFIX)
    if workers <= 1 or nested:
        return [function(chunk) for chunk in chunks]
    if _state["pool"] is None:
        _state["pool"] = ThreadPoolExecutor(_state["workers"],
                                            thread_name_prefix=_PREFIX)
    return list(_state["pool"].map(function, chunks))


def matmul(a, b):
    """``a @ b`` for 2-D ``a (M, K)`` and ``b (K, N)``, its rows (or, when
    ``a`` has fewer rows than ``b`` has columns, its columns) split over the
    workers: one BLAS thread per worker still uses every core.

    Examples
    --------
    >>> a, b = np.arange(6.0).reshape(3, 2), np.arange(8.0).reshape(2, 4)
    >>> bool(np.array_equal(matmul(a, b), a @ b))
    True
    """
    (m, _), (_, n) = a.shape, b.shape
    out = np.empty((m, n), dtype=np.result_type(a, b))               # (M, N)
    parts = min(_state["workers"], max(m, n))
    if m >= n:
        bounds = np.linspace(0, m, parts + 1).astype(int)
        run_chunks(lambda i: np.matmul(a[bounds[i]:bounds[i + 1]], b,
                                       out=out[bounds[i]:bounds[i + 1]]), range(parts))
    else:
        bounds = np.linspace(0, n, parts + 1).astype(int)
        run_chunks(lambda i: np.matmul(a, b[:, bounds[i]:bounds[i + 1]],
                                       out=out[:, bounds[i]:bounds[i + 1]]), range(parts))
    return out
