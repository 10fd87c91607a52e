"""``python -m attention_from_scratch bench``: multi-head attention speed.

Times ``core`` multi-head self-attention, forward and forward+backward,
float32 and float64, with and without a causal mask, next to the ``steps``
version and next to the machine's own matrix-multiply throughput (a large
square ``np.matmul``), all measured in the same run.

FLOPs are counted explicitly, 2 per multiply-add, for the matrix products
only (``measure.flops.multi_head_matmul_flops``); the softmax, the mask, the bias additions
and the copies are real work but are not counted. The causal mask does not
change the count: the masked scores are computed and then discarded.

"Of matmul" is the achieved rate, counted FLOPs over the median time,
divided by the median rate of a square ``np.matmul`` of the same dtype,
timed in the same rounds. Per size and dtype three more rows run matrix
products alone:

- "core, matmuls only": exactly the products of ``core``'s forward and
  backward, in ``core``'s memory layouts, and nothing else. It bounds
  ``core`` as written; another layout could run its products faster;
- "head products, views" and "head products, copies": the six per-head
  products (scores, ``weights @ v`` and their four gradient products) on
  strided head views of the fused projection, as ``core`` does, and on
  contiguous per-head copies, the copies in and out included. Side by
  side they show what contiguous heads would buy.

The measurements are interleaved, one run of each in turn, the square
matmul included, so that a burst of other work on the machine slows the
reference as much as what is compared with it. The reference rates of
the two sizes should agree; the output warns when they do not.
"""

import os
import sys
import time
from typing import NamedTuple

import numpy as np

from attention_from_scratch import core, steps
from attention_from_scratch.common.masks import causal_mask
from attention_from_scratch.common.params import init_multi_head_params
from attention_from_scratch.measure.flops import head_product_flops, multi_head_matmul_flops

SIZES = ((8, 128, 256, 8), (4, 512, 512, 8))     # (B, T, D, H)
STEPS_SIZES = ((8, 128, 256, 8),)                # steps builds one softmax Jacobian per row
DTYPES = (np.float32, np.float64)
TARGET = ((4, 512, 512, 8), "float32", 0.65)     # core forward+backward, fraction of matmul
DISAGREE = 0.15   # matmul rates of two sizes further apart than this: other work ran


def _heads(y, part):
    return np.swapaxes(y[..., part, :, :], -2, -3)   # as core.multi_head._heads


def core_matmuls_only_forward(x, params, *, n_heads):
    """The matrix products of ``core``'s self-attention forward, alone."""
    *lead, t, d = x.shape
    w_qkv = np.concatenate([params["w_q"], params["w_k"], params["w_v"]], axis=1)
    y = (x.reshape(-1, d) @ w_qkv).reshape(*lead, t, 3, n_heads, d // n_heads)
    q, k, v = _heads(y, 0), _heads(y, 1), _heads(y, 2)
    exp_scores = q @ np.swapaxes(k, -1, -2)
    concat = np.empty((*lead, t, n_heads, d // n_heads), dtype=x.dtype)
    np.matmul(exp_scores, v, out=np.swapaxes(concat, -2, -3))
    out = concat.reshape(-1, d) @ params["w_o"]
    return out, (x, w_qkv, q, k, v, exp_scores, concat, params["w_o"])


def core_matmuls_only_backward(dout, cache):
    """The matrix products of ``core``'s self-attention backward, alone."""
    x, w_qkv, q, k, v, exp_scores, concat, w_o = cache
    d = x.shape[-1]
    dout = dout.reshape(-1, d)
    concat.reshape(-1, d).T @ dout                                 # dw_o
    dconcat = (dout @ w_o.T).reshape(concat.shape)
    dweighted = np.ascontiguousarray(np.swapaxes(dconcat, -2, -3))   # core: dheads / total
    dy_q = np.empty(x.shape[:-1] + (1,) + q.shape[-3:-2] + q.shape[-1:], dtype=x.dtype)
    dy_kv = np.empty(x.shape[:-1] + (2,) + q.shape[-3:-2] + q.shape[-1:], dtype=x.dtype)
    np.matmul(np.swapaxes(exp_scores, -1, -2), dweighted, out=_heads(dy_kv, 1))
    dscores = dweighted @ np.swapaxes(v, -1, -2)
    np.matmul(dscores, k, out=_heads(dy_q, 0))
    np.matmul(np.swapaxes(dscores, -1, -2), q, out=_heads(dy_kv, 0))
    x_rows, dy_q, dy_kv = x.reshape(-1, d), dy_q.reshape(-1, d), dy_kv.reshape(-1, 2 * d)
    dx = dy_q @ w_qkv[:, :d].T + dy_kv @ w_qkv[:, d:].T
    return dx, (x_rows.T @ dy_q, x_rows.T @ dy_kv)


def head_products(y, dheads, *, contiguous):
    """The six per-head products of attention's forward and backward.

    ``y (..., T, 3, H, Dh)`` is a fused projection, ``dheads
    (..., H, T, Dh)`` an upstream gradient. With ``contiguous=False`` the
    products read strided head views of ``y`` and write into the merged
    layouts, as ``core`` does; with ``contiguous=True`` they run on
    contiguous per-head copies, and the copies in and out are part of the
    work.
    """
    q, k, v = _heads(y, 0), _heads(y, 1), _heads(y, 2)
    concat, dy = np.empty(y.shape[:-3] + y.shape[-2:], dtype=y.dtype), np.empty_like(y)
    outs = (np.swapaxes(concat, -2, -3), _heads(dy, 0), _heads(dy, 1), _heads(dy, 2))
    if contiguous:
        q, k, v = np.ascontiguousarray(q), np.ascontiguousarray(k), np.ascontiguousarray(v)
        results = [np.empty_like(q) for _ in outs]
    else:
        results = outs
    heads, dq, dk, dv = results
    scores = q @ np.swapaxes(k, -1, -2)                            # (..., H, T, S)
    np.matmul(scores, v, out=heads)
    np.matmul(np.swapaxes(scores, -1, -2), dheads, out=dv)
    dscores = dheads @ np.swapaxes(v, -1, -2)
    np.matmul(dscores, k, out=dq)
    np.matmul(np.swapaxes(dscores, -1, -2), q, out=dk)
    if contiguous:
        for out, result in zip(outs, results, strict=True):
            out[...] = result
    return concat, dy


class Row(NamedTuple):
    """One measurement: times in seconds, ``fraction`` of matmul's rate."""

    impl: str
    dtype: str
    size: tuple       # (B, T, D, H)
    mask: str         # "none" or "causal"
    pass_name: str    # "forward" or "forward+backward"
    median: float
    best: float
    flops: int
    fraction: float   # rate / the square matmul's rate, timed in the same rounds

    @property
    def rate(self):
        """Counted FLOPs per second at the median time."""
        return self.flops / self.median


class BenchResult(NamedTuple):
    matmul_size: int
    matmul_rates: dict   # dtype name -> FLOP/s: median of every square-matmul run
    matmul_runs: dict    # dtype name -> {size: FLOP/s, median of that size's rounds}
    rows: list
    seconds: float       # wall time of the whole run
    busy_before: float   # fraction of CPU time other work used just before, nan if unknown


def cpu_busy(seconds=0.5):
    """Fraction of CPU time busy over ``seconds`` (Linux), else nan."""
    def sample():
        with open("/proc/stat", encoding="utf-8") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        return sum(values), values[3] + values[4]                 # total, idle + iowait
    try:
        total_0, idle_0 = sample()
        time.sleep(seconds)
        total_1, idle_1 = sample()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return 1.0 - (idle_1 - idle_0) / max(total_1 - total_0, 1)


class _Job(NamedTuple):
    """One thing to time: ``forward``, then ``backward`` unless None."""

    impl: str
    mask: str
    forward: object
    backward: object
    args: tuple
    kwargs: dict
    flops: tuple      # counted FLOPs of (forward, forward+backward); None: no row
    repeats: int


def _jobs(size, dtype, steps_sizes, rng, *, repeats, steps_repeats, square):
    """Everything timed at one size and dtype, and the ``dout`` to use."""
    b, t, d, n_heads = size
    x = rng.standard_normal((b, t, d)).astype(dtype)
    params = {key: value.astype(dtype) for key, value in
              init_multi_head_params(d, rng=rng).items()}
    dout = rng.standard_normal((b, t, d)).astype(dtype)
    forward, backward = multi_head_matmul_flops(b, t, d, n_heads)
    both = (forward, forward + backward)
    jobs = [_Job("np.matmul", "none", np.matmul, None, tuple(square), {},
                 (None, 2 * square.shape[-1] ** 3), repeats)]
    for mask_name, mask in (("none", None), ("causal", causal_mask(t))):
        jobs.append(_Job("core", mask_name, core.multi_head.self_multi_head_attention_forward,
                         core.multi_head.self_multi_head_attention_backward, (x, params),
                         {"n_heads": n_heads, "mask": mask}, both, repeats))
    if size in steps_sizes and dtype == np.float64:   # steps computes in float64 only
        jobs.append(_Job("steps", "none", steps.multi_head.self_multi_head_attention_forward,
                         steps.multi_head.self_multi_head_attention_backward, (x, params),
                         {"n_heads": n_heads}, both, steps_repeats))
    jobs.append(_Job("core, matmuls only", "none", core_matmuls_only_forward,
                     core_matmuls_only_backward, (x, params), {"n_heads": n_heads},
                     (None, both[1]), repeats))
    y = rng.standard_normal((b, t, 3, n_heads, d // n_heads)).astype(dtype)
    dheads = rng.standard_normal((b, n_heads, t, d // n_heads)).astype(dtype)
    for name, contiguous in (("head products, views", False), ("head products, copies", True)):
        jobs.append(_Job(name, "none", head_products, None, (y, dheads),
                         {"contiguous": contiguous}, (None, head_product_flops(b, t, d)),
                         repeats))
    return jobs, dout


def _run(job, dout):
    """Seconds of one forward, and of forward+backward (if any)."""
    start = time.perf_counter()
    result = job.forward(*job.args, **job.kwargs)
    middle = time.perf_counter()
    if job.backward is not None:
        job.backward(dout, result[1])
    return middle - start, time.perf_counter() - start


def run(sizes=SIZES, steps_sizes=STEPS_SIZES, dtypes=DTYPES, *, repeats=4, steps_repeats=2,
        matmul_size=2048, seed=0, out=None):
    """Measure everything; return a :class:`BenchResult`.

    At each size and dtype every job, the square ``np.matmul`` included,
    is warmed up once (``steps`` is not: it is slow) and then timed in
    rounds, one run of each job per round, so that other work on the
    machine slows the reference as much as the attention. ``out``, if
    given, gets one progress line per size and dtype.
    """
    busy_before = cpu_busy()
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    rows, runs, samples = [], {}, {}
    squares = {dtype: rng.standard_normal((2, matmul_size, matmul_size)).astype(dtype)
               for dtype in dtypes}                       # two (n, n) factors
    for size in sizes:
        for dtype in dtypes:
            name = np.dtype(dtype).name
            jobs, dout = _jobs(size, dtype, steps_sizes, rng, repeats=repeats,
                               steps_repeats=steps_repeats, square=squares[dtype])
            for job in jobs:
                if job.impl != "steps":
                    _run(job, dout)
            times = [[] for _ in jobs]
            for round_ in range(max(job.repeats for job in jobs)):
                for job, job_times in zip(jobs, times, strict=True):
                    if round_ < job.repeats:
                        job_times.append(_run(job, dout))
            matmul_times = [total for _, total in times[0]]
            reference = jobs[0].flops[1] / float(np.median(matmul_times))
            runs.setdefault(name, {})[size] = reference
            samples.setdefault(name, []).extend(jobs[0].flops[1] / ts for ts in matmul_times)
            for job, job_times in zip(jobs[1:], times[1:], strict=True):
                forward_times, total_times = zip(*job_times, strict=True)
                passes = (("forward", forward_times, job.flops[0]),
                          ("forward+backward", total_times, job.flops[1]))
                rows += [Row(job.impl, name, size, job.mask, pass_name, float(np.median(ts)),
                             float(min(ts)), flops, flops / float(np.median(ts)) / reference)
                         for pass_name, ts, flops in passes if flops is not None]
            if out is not None:
                print(f"  measured {name} {size}: " + ", ".join(
                    f"{job.impl} mask={job.mask}" for job in jobs), file=out, flush=True)
    rates = {name: float(np.median(rates)) for name, rates in samples.items()}
    return BenchResult(matmul_size, rates, runs, rows, time.perf_counter() - start,
                       busy_before)


def target_row(result):
    """The row the performance target is about, or ``None``."""
    size, dtype, _ = TARGET
    for row in result.rows:
        if (row.impl, row.dtype, row.size, row.mask, row.pass_name) == (
                "core", dtype, size, "none", "forward+backward"):
            return row
    return None


def rates_disagree(result):
    """Dtype names whose square-matmul rates at different sizes differ by
    more than ``DISAGREE``: other work competed for the CPUs."""
    return [name for name, by_size in result.matmul_runs.items()
            if max(by_size.values()) - min(by_size.values()) > DISAGREE * max(by_size.values())]


def format_result(result):
    """The result as text: a header, a Markdown table, the verdict."""
    n = result.matmul_size
    lines = [
        "Multi-head self-attention: core and steps against np.matmul, measured in one run.",
        f"Square matmul ({n}, {n}) @ ({n}, {n}), timed in the same rounds as the attention "
        "runs of each size; each row is compared with its own size's median:",
        *(f"  {name}: {result.matmul_rates[name] / 1e9:.1f} GFLOP/s (by size: " + ", ".join(
            f"{size} {rate / 1e9:.1f}" for size, rate in by_size.items())
          + ")" for name, by_size in result.matmul_runs.items()),
    ]
    disagree = rates_disagree(result)
    if disagree:
        lines.append(f"WARNING: the {' and '.join(disagree)} matmul rates of different sizes "
                     f"differ by more than {DISAGREE:.0%}: other work competed for the CPUs "
                     "during the run, so the times are unreliable. Run again on a quiet "
                     "machine.")
    lines += [
        "FLOPs: matrix products only, 2 per multiply-add; forward = 8 B T D^2 + 4 B T^2 D, "
        "backward = 2 x forward. Softmax, mask, biases and copies are not counted.",
        "Times: median and best of repeated runs, interleaved. 'of matmul' = counted FLOPs / "
        "median time / square-matmul rate of the same dtype and size.",
        "'core, matmuls only': core's matrix products in core's layouts, nothing else. "
        "'head products': the six per-head products (12 B T^2 D FLOPs) on strided head "
        "views, as core does, and on contiguous per-head copies, copies included.",
        "steps runs in float64 at the small size only: it builds one softmax Jacobian per "
        "row.",
        "",
        "| impl | dtype | B | T | D | H | mask | pass | median ms | best ms | GFLOP "
        "| GFLOP/s | of matmul |",
        "|---|---|--:|--:|--:|--:|---|---|--:|--:|--:|--:|--:|",
    ]
    for r in result.rows:
        b, t, d, h = r.size
        lines.append(f"| {r.impl} | {r.dtype} | {b} | {t} | {d} | {h} | {r.mask} | "
                     f"{r.pass_name} | {r.median * 1e3:.1f} | {r.best * 1e3:.1f} | "
                     f"{r.flops / 1e9:.2f} | {r.rate / 1e9:.1f} | {r.fraction:.0%} |")
    row = target_row(result)
    lines.append("")
    if row is not None:
        size, dtype, goal = TARGET
        verdict = "met" if row.fraction >= goal else "NOT met"
        ceiling = [r for r in result.rows if r.impl == "core, matmuls only"
                   and r.size == size and r.dtype == dtype]
        lines.append(
            f"Target: core forward+backward at B, T, D, H = {size}, {dtype}, >= {goal:.0%} "
            f"of matmul: {row.fraction:.0%}, {verdict}"
            + (f" (its matrix products alone, in its layouts, reach "
               f"{ceiling[0].fraction:.0%})." if ceiling else "."))
    busy = result.busy_before
    lines.append(f"Whole run: {result.seconds:.1f} s on {os.cpu_count()} CPUs, "
                 f"{busy:.0%} busy with other work just before"
                 + (": times are unreliable." if busy > 0.1 else "."))
    return "\n".join(lines)


def main(*, repeats=4, steps_repeats=2, out=sys.stdout):
    """Run the benchmark, print the table; return the exit status (0)."""
    print("Measuring (about 15 s on two idle cores) ...", file=out, flush=True)
    result = run(repeats=repeats, steps_repeats=steps_repeats, out=out)
    print(format_result(result), file=out, flush=True)
    return 0
