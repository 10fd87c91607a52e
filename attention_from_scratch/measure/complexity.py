"""Count, then measure: what attention costs (Chapter 6).

Three small measuring tools (the counts they are compared with are in
``measure.flops``): the best CPU time
of a call, the peak memory a call allocates (with the standard library's
``tracemalloc``, which NumPy reports its array buffers to), and the slope
of a straight-line fit in log-log axes, which reads an exponent off a set
of measurements: time ~ T^slope.

Counts follow the usual convention: one multiply-add is 2 FLOPs, so
``(T, D) @ (D, D)`` costs ``2 T D^2``. Elementwise work (the softmax's
exponentials, the scaling) is ``O(T S)`` and is left out of the FLOPs.
"""

import math
import time
import tracemalloc

import numpy as np

from attention_from_scratch.common.parallel import set_workers
from attention_from_scratch.common.validate import check_int
from attention_from_scratch.core import attention, flash_attention, linear


def best_times(fns, *, repeat=5, min_seconds=0.01):
    """Best CPU time per call of each of ``fns``, timed in turn, in seconds.

    CPU time (``time.thread_time``) is the time the processor spent running
    this thread. Unlike wall-clock time it does not count the waits while
    other programs hold the processor, so a busy machine disturbs it far
    less (a little still: caches and memory bandwidth are shared). It is
    all the work of a call only when NumPy's BLAS runs in this one thread:
    set ``OPENBLAS_NUM_THREADS=1`` before NumPy is first imported; and
    ``core``'s chunks of work run in this thread too while it times
    (``common.parallel.set_workers(1)``, restored after). (The CPU time of
    the whole process would count helper threads too, but also the time
    they spend spinning while they wait for work.)

    Each timing repeats the call enough times to last ``min_seconds``, so
    no result rests on one sub-millisecond reading. Round-robin: every
    round times each function once, so a burst of load slows one timing of
    every function rather than all timings of one, and the minimum over the
    ``repeat`` rounds stays fair to each.

    Parameters
    ----------
    fns : sequence of callable
        Zero-argument functions.
    repeat : int, keyword-only
        Rounds; the best (smallest) is kept.
    min_seconds : float, keyword-only
        Least CPU time of one timing; a fast call is repeated to fill it.

    Returns
    -------
    seconds : (len(fns),) ndarray
        Best CPU time of one call of each function.

    Examples
    --------
    >>> times = best_times([lambda: sum(range(10)), lambda: sum(range(100_000))], repeat=2)
    >>> len(times) == 2 and bool(times[0] < times[1])
    True
    """
    fns = list(fns)
    repeat = check_int("repeat", repeat)
    previous = set_workers(1)
    try:
        return _best_times(fns, repeat, min_seconds)
    finally:
        set_workers(previous)


def _best_times(fns, repeat, min_seconds):
    calls = []
    for fn in fns:                                 # calibrate: how many calls fill one timing
        start = time.thread_time()
        fn()
        once = time.thread_time() - start
        calls.append(max(1, math.ceil(min_seconds / max(once, 1e-6))))
    best = np.full(len(fns), np.inf)
    for _ in range(repeat):
        for n, (fn, number) in enumerate(zip(fns, calls, strict=True)):
            start = time.thread_time()
            for _ in range(number):
                fn()
            best[n] = min(best[n], (time.thread_time() - start) / number)
    return best


def peak_memory(fn):
    """Peak bytes allocated while ``fn()`` runs, above what was already held.

    Inputs created before the call are not counted; everything the call
    allocates (outputs, caches, temporaries) is, at its highest point.
    ``core``'s chunks run one at a time while it measures
    (``common.parallel.set_workers(1)``, restored after): with several
    threads the peak would depend on how their temporaries overlap.

    Examples
    --------
    >>> peak_memory(lambda: np.ones(1000)) >= 8000
    True
    """
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    previous = set_workers(1)
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        set_workers(previous)
        if not tracing:
            tracemalloc.stop()


def loglog_slope(x, y):
    """Slope of the least-squares line through ``(log x, log y)``.

    If ``y = c x^p`` the slope is ``p``: 1 for linear growth, 2 for
    quadratic.

    Examples
    --------
    >>> x = np.array([1.0, 2.0, 4.0, 8.0])
    >>> bool(np.isclose(loglog_slope(x, 3 * x**2), 2.0))
    True
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"x and y must be 1-D of the same length >= 2, got shapes "
                         f"{x.shape} and {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be positive to take logarithms")
    slope, _ = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope)


def self_attention_runs(t, d, *, rng, block_size=256, dtype=np.float32):
    """Forward + backward of each part of a self-attention layer, ready to measure.

    Parameters
    ----------
    t, d : int
        Sequence length ``T`` and width ``D`` (one head of width ``D``).
    rng : numpy.random.Generator, keyword-only
        Draws the inputs, weights and upstream gradients once.
    block_size : int, keyword-only
        Tile size of the flash attention run.
    dtype : numpy dtype, keyword-only
        float32 by default, as in training.

    Returns
    -------
    runs : dict of callable
        Zero-argument functions, each a forward and a backward pass with
        ``core`` on the same inputs: ``"projections"`` (the four
        ``(T, D) @ (D, D)`` linears: queries, keys, values, output),
        ``"attention"`` (standard, storing the ``(T, T)`` weights) and
        ``"flash attention"`` (tiled, recomputing them).
    """
    x, q, k, v, dout = (rng.normal(size=(t, d)).astype(dtype) for _ in range(5))
    w = (rng.normal(size=(4, d, d)) / np.sqrt(d)).astype(dtype)
    b = np.zeros(d, dtype=dtype)

    def projections():
        for w_n in w:
            _, cache = linear.linear_forward(x, w_n, b)
            linear.linear_backward(dout, cache)

    def standard():
        _, cache = attention.attention_forward(q, k, v)
        attention.attention_backward(dout, cache)

    def flash():
        _, cache = flash_attention.flash_attention_forward(q, k, v, block_size=block_size)
        flash_attention.flash_attention_backward(dout, cache)

    return {"projections": projections, "attention": standard, "flash attention": flash}


def attention_peak_memory(t, d, *, rng, block_size=256,
                          parts=("attention", "flash attention")):
    """Peak bytes of a forward + backward pass, for parts of one layer.

    Parameters
    ----------
    t, d : int
        Sequence length ``T`` and width ``D``, as in
        :func:`self_attention_runs`.
    rng : numpy.random.Generator, keyword-only
    block_size : int, keyword-only
        Tile size of the flash attention run.
    parts : sequence of str, keyword-only
        Keys of :func:`self_attention_runs` to measure.

    Returns
    -------
    memory : dict of int
        Part -> peak bytes (:func:`peak_memory`) of its run.

    Examples
    --------
    >>> memory = attention_peak_memory(512, 16, rng=np.random.default_rng(0), block_size=64)
    >>> bool(memory["attention"] > 512 * 512 * 4 > memory["flash attention"])
    True
    """
    warm_up = self_attention_runs(8, d, rng=rng, block_size=block_size)
    for part in parts:
        peak_memory(warm_up[part])   # a first call allocates a few hundred bytes once
    runs = self_attention_runs(t, d, rng=rng, block_size=block_size)
    return {part: peak_memory(runs[part]) for part in parts}
