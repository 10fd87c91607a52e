"""``python -m attention_from_scratch bench``: how fast is multi-head attention?

Times ``core`` multi-head self-attention, forward and forward+backward,
float32 and float64, with and without a causal mask, next to the ``steps``
version and next to the machine's own matrix-multiply throughput (a large
square ``np.matmul``), all measured in the same run.

FLOPs are counted explicitly, 2 per multiply-add, for the matrix products
only (:func:`attention_flops`); the softmax, the mask, the bias additions
and the copies are real work but are not counted. The causal mask does not
change the count: the masked scores are computed and then discarded.

"Of matmul" is the achieved rate, counted FLOPs over the median time,
divided by the square ``np.matmul`` rate of the same dtype (measured
before and after the attention runs; the higher of the two medians). A last row per
size and dtype, "core, matmuls only", runs exactly the matrix products of
``core``'s forward and backward (same shapes, same memory layouts) and
nothing else: no implementation built from these NumPy calls can beat it.
"""

import os
import sys
import time
from typing import NamedTuple

import numpy as np

from attention_from_scratch import core, steps
from attention_from_scratch.masks import causal_mask

SIZES = ((8, 128, 256, 8), (4, 512, 512, 8))     # (B, T, D, H)
STEPS_SIZES = ((8, 128, 256, 8),)                # steps builds one softmax Jacobian per row
DTYPES = (np.float32, np.float64)
TARGET = ((4, 512, 512, 8), "float32", 0.65)     # core forward+backward, fraction of matmul


def attention_flops(b, t, d, n_heads, *, s=None):
    """Matmul FLOPs of multi-head attention: ``(forward, backward)``.

    Forward: the projections ``x_q @ W_Q`` (``2 B T D^2``), ``x_kv @ W_K``
    and ``x_kv @ W_V`` (``2 B S D^2`` each), ``concat @ W_O``
    (``2 B T D^2``); per head, the scores ``q k^T`` and the weighted sum
    ``weights @ v`` (``2 B T S Dh`` each, ``H`` heads: ``2 B T S D``).
    Backward: every product ``a @ b`` has two gradient products,
    ``dout @ b^T`` and ``a^T @ dout``, of the same size: twice the forward.
    ``n_heads`` does not appear: ``H`` heads of width ``D / H`` cost what
    one head of width ``D`` costs.
    """
    s = t if s is None else s
    projections = 2 * b * t * d * d * 2 + 2 * b * s * d * d * 2   # Q and O; K and V
    attention = 2 * b * t * s * d * 2                             # scores, weighted sum
    forward = projections + attention
    return forward, 2 * forward


def matmul_rate(n, dtype, *, repeats):
    """FLOP/s of an ``(n, n) @ (n, n)`` ``np.matmul``: median of ``repeats``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    a @ b                                                          # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / float(np.median(times))


def time_pair(forward, backward, args, kwargs, dout, *, repeats, warmup=True):
    """Time ``forward`` and ``forward + backward``; return both lists of seconds."""
    if warmup:
        backward(dout, forward(*args, **kwargs)[1])
    forward_times, total_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        _, cache = forward(*args, **kwargs)
        middle = time.perf_counter()
        backward(dout, cache)
        end = time.perf_counter()
        forward_times.append(middle - start)
        total_times.append(end - start)
    return forward_times, total_times


def core_matmuls_only_forward(x, params, *, n_heads):
    """The matrix products of ``core``'s self-attention forward, alone."""
    *lead, t, d = x.shape
    w_qkv = np.concatenate([params["w_q"], params["w_k"], params["w_v"]], axis=1)
    y = (x.reshape(-1, d) @ w_qkv).reshape(*lead, t, 3, n_heads, d // n_heads)
    q, k, v = (np.swapaxes(y[..., i, :, :], -2, -3) for i in range(3))
    scores = q @ np.swapaxes(k, -1, -2)
    concat = np.empty((*lead, t, n_heads, d // n_heads), dtype=x.dtype)
    np.matmul(scores, v, out=np.swapaxes(concat, -2, -3))
    out = concat.reshape(-1, d) @ params["w_o"]
    return out, (x, w_qkv, q, k, v, scores, concat, params["w_o"])


def core_matmuls_only_backward(dout, cache):
    """The matrix products of ``core``'s self-attention backward, alone."""
    x, w_qkv, q, k, v, scores, concat, w_o = cache
    d = x.shape[-1]
    dout = dout.reshape(-1, d)
    concat.reshape(-1, d).T @ dout
    dheads = np.swapaxes((dout @ w_o.T).reshape(concat.shape), -2, -3)
    dy = np.empty(x.shape[:-1] + (3,) + q.shape[-3:-2] + q.shape[-1:], dtype=x.dtype)
    np.matmul(np.swapaxes(scores, -1, -2), dheads, out=np.swapaxes(dy[..., 2, :, :], -2, -3))
    dscores = dheads @ np.swapaxes(v, -1, -2)
    np.matmul(dscores, k, out=np.swapaxes(dy[..., 0, :, :], -2, -3))
    np.matmul(np.swapaxes(dscores, -1, -2), q, out=np.swapaxes(dy[..., 1, :, :], -2, -3))
    dy = dy.reshape(-1, 3 * d)
    return dy @ w_qkv.T, x.reshape(-1, d).T @ dy


class Row(NamedTuple):
    """One measurement: times in seconds, ``fraction`` of the matmul rate."""

    impl: str
    dtype: str
    size: tuple       # (B, T, D, H)
    mask: str         # "none" or "causal"
    pass_name: str    # "forward" or "forward+backward"
    median: float
    best: float
    flops: int
    fraction: float

    @property
    def rate(self):
        """Counted FLOPs per second at the median time."""
        return self.flops / self.median


class BenchResult(NamedTuple):
    matmul_size: int
    matmul_rates: dict   # dtype name -> FLOP/s, the reference: the higher of ...
    matmul_runs: dict    # dtype name -> (FLOP/s before, FLOP/s after) the attention runs
    rows: list
    seconds: float       # wall time of the whole run
    busy_before: float   # fraction of CPU time other work used just before, nan if unknown


def cpu_busy(seconds=0.5):
    """Fraction of all CPUs' time spent busy over ``seconds`` (Linux), else nan."""
    def sample():
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        return sum(values), values[3] + values[4]                 # total, idle + iowait
    try:
        total_0, idle_0 = sample()
        time.sleep(seconds)
        total_1, idle_1 = sample()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return 1.0 - (idle_1 - idle_0) / max(total_1 - total_0, 1)


def _inputs(size, dtype, rng):
    b, t, d, n_heads = size
    x = rng.standard_normal((b, t, d)).astype(dtype)
    params = {key: value.astype(dtype) for key, value in
              core.multi_head.init_multi_head_params(d, rng=rng).items()}
    dout = rng.standard_normal((b, t, d)).astype(dtype)
    return x, params, dout


def _rows(impl, name, size, mask_name, times, flops, pass_names):
    """Rows for one measurement; ``fraction`` is filled in by ``run``."""
    return [Row(impl, name, size, mask_name, pass_name, float(np.median(ts)), float(min(ts)),
                n, float("nan"))
            for pass_name, ts, n in zip(pass_names, times, flops, strict=True)]


def run(sizes=SIZES, steps_sizes=STEPS_SIZES, dtypes=DTYPES, *, repeats=7, steps_repeats=3,
        matmul_size=2048, seed=0, out=None):
    """Measure everything; return a :class:`BenchResult`.

    ``out``, if given, gets one progress line per measurement.
    """
    busy_before = cpu_busy()
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    before = {np.dtype(dt).name: matmul_rate(matmul_size, dt, repeats=repeats) for dt in dtypes}
    rows = []
    mh = {"core": core.multi_head, "steps": steps.multi_head}
    for size in sizes:
        b, t, d, n_heads = size
        forward_flops, backward_flops = attention_flops(b, t, d, n_heads)
        flops = (forward_flops, forward_flops + backward_flops)
        for dtype in dtypes:
            name = np.dtype(dtype).name
            x, params, dout = _inputs(size, dtype, rng)
            impls = ["core"] + (["steps"] if size in steps_sizes and dtype == np.float64
                                else [])
            for mask_name, mask in (("none", None), ("causal", causal_mask(t))):
                for impl in impls:
                    times = time_pair(mh[impl].self_multi_head_attention_forward,
                                      mh[impl].self_multi_head_attention_backward, (x, params),
                                      {"n_heads": n_heads, "mask": mask}, dout,
                                      repeats=repeats if impl == "core" else steps_repeats,
                                      warmup=impl == "core")
                    rows += _rows(impl, name, size, mask_name, times, flops,
                                  ("forward", "forward+backward"))
                    if out is not None:
                        print(f"  measured {impl} {name} {size} mask={mask_name}",
                              file=out, flush=True)
            _, times = time_pair(core_matmuls_only_forward, core_matmuls_only_backward,
                                 (x, params), {"n_heads": n_heads}, dout, repeats=repeats)
            rows += _rows("core, matmuls only", name, size, "none", (times,), flops[1:],
                          ("forward+backward",))
    # a square matmul before and after: a burst of other work during one of them
    # would otherwise inflate every fraction
    after = {np.dtype(dt).name: matmul_rate(matmul_size, dt, repeats=repeats) for dt in dtypes}
    rates = {name: max(before[name], after[name]) for name in before}
    rows = [row._replace(fraction=row.rate / rates[row.dtype]) for row in rows]
    runs = {name: (before[name], after[name]) for name in before}
    return BenchResult(matmul_size, rates, runs, rows, time.perf_counter() - start,
                       busy_before)


def target_row(result):
    """The row the performance target is about, or ``None`` if not measured."""
    size, dtype, _ = TARGET
    for row in result.rows:
        if (row.impl, row.dtype, row.size, row.mask, row.pass_name) == (
                "core", dtype, size, "none", "forward+backward"):
            return row
    return None


def format_result(result):
    """The result as text: a header, a Markdown table, the verdict."""
    n = result.matmul_size
    lines = [
        "Multi-head self-attention: core and steps against np.matmul, measured in one run.",
        f"Square matmul ({n}, {n}) @ ({n}, {n}), median, measured before and after the "
        "attention runs; the higher is the reference:",
        *(f"  {name}: {result.matmul_rates[name] / 1e9:.1f} GFLOP/s (before "
          f"{runs[0] / 1e9:.1f}, after {runs[1] / 1e9:.1f})"
          for name, runs in result.matmul_runs.items()),
        "FLOPs: matrix products only, 2 per multiply-add; forward = 8 B T D^2 + 4 B T^2 D, "
        "backward = 2 x forward. Softmax, mask, biases and copies are not counted.",
        "Times: median and best of repeated runs. 'of matmul' = counted FLOPs / median time "
        "/ square-matmul rate of the same dtype.",
        "steps runs in float64 at the small size only: it builds one softmax Jacobian per "
        "row, about 15 s per forward+backward at B=4, T=512.",
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
            + (f" (its matrix products alone reach {ceiling[0].fraction:.0%})." if ceiling
               else "."))
    busy = result.busy_before
    lines.append(f"Whole run: {result.seconds:.1f} s on {os.cpu_count()} CPUs, "
                 f"{busy:.0%} busy with other work just before"
                 + (": times are unreliable." if busy > 0.1 else "."))
    return "\n".join(lines)


def main(*, repeats=7, steps_repeats=3, out=sys.stdout):
    """Run the benchmark and print the table; return the exit status (0)."""
    print("Measuring (about half a minute) ...", file=out, flush=True)
    result = run(repeats=repeats, steps_repeats=steps_repeats, out=out)
    print(format_result(result), file=out, flush=True)
    return 0
