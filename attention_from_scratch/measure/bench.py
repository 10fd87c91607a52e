"""``python -m attention_from_scratch bench``: attention speed, side by side.

Times ``core`` multi-head self-attention, forward and forward+backward,
float32 and float64, with and without a causal mask, next to the ``steps``
version and next to the machine's own matrix-multiply throughput (a large
square matmul split over the same worker threads as ``core``), all
measured in the same run; at a long causal size, ``core``'s flash
attention next to its dense attention. When PyTorch is installed, its
``nn.MultiheadAttention`` and ``scaled_dot_product_attention`` are timed
on the same inputs in the same rounds, after checking that their outputs
agree with ``core``'s; the verdicts compare the times.

FLOPs are counted explicitly, 2 per multiply-add, for the matrix products
only (``measure.flops.multi_head_matmul_flops``); the softmax, the mask, the
bias additions and the copies are real work but are not counted. A causal
mask does not change the count: the dense count is the yardstick, so a
path that skips the masked half shows a higher rate.

"Of matmul" is the achieved rate, counted FLOPs over the median time,
divided by the median rate of the square matmul of the same dtype, timed
in the same rounds.

The measurements are interleaved, one run of each in turn, the square
matmul included, so that a burst of other work on the machine slows the
reference as much as what is compared with it. Between a NumPy call and a
PyTorch call the bench sleeps briefly: each library's threads keep spinning
for a moment after a call and would slow the other's. The reference rates
of the sizes should agree; the output warns when they do not.
"""

import os
import sys
import time
from typing import NamedTuple

import numpy as np

from attention_from_scratch import core, steps
from attention_from_scratch.common import parallel
from attention_from_scratch.common.masks import causal_mask
from attention_from_scratch.common.params import init_multi_head_params
from attention_from_scratch.measure.flops import attention_matmul_flops, multi_head_matmul_flops

SIZES = ((8, 128, 256, 8), (4, 512, 512, 8))     # (B, T, D, H)
LONG = (1, 2048, 512, 8)                         # causal only, float32; flash attention too
STEPS_SIZES = ((8, 128, 256, 8),)                # steps builds one softmax Jacobian per row
DTYPES = (np.float32, np.float64)
# (numerator impl, denominator impl, size, mask, goal): median time ratio, forward+backward
TARGETS = (
    ("core", "PyTorch MHA", (4, 512, 512, 8), "none", 0.9),
    ("core", "PyTorch MHA", LONG, "causal", 0.9),
    ("core flash", "PyTorch SDPA", LONG, "causal", 1.5),
    ("core flash", "core attention", LONG, "causal", 1.0),
)
DISAGREE = 0.15   # matmul rates of two sizes further apart than this: other work ran
SETTLE = 0.05     # seconds between calls of different libraries
TORCH_VERSION = "2.13.0"


def _heads(y, part):
    return np.swapaxes(y[..., part, :, :], -2, -3)   # as core.multi_head._heads


def core_matmuls_only_forward(x, params, *, n_heads):
    """The matrix products of a multi-head self-attention forward, alone:
    the projections, then one head at a time (as ``core``'s chunks, when a
    head's ``T S`` scores fit one tile) ``q k^T`` and ``@ v``, batched
    over the sequences. No mask, no softmax. Like ``core``, it keeps each
    head's scores for the backward when ``core.multi_head._keeps_scores``."""
    *lead, t, d = x.shape
    w_qkv = np.concatenate([params["w_q"], params["w_k"], params["w_v"]], axis=1)
    y = (x.reshape(-1, d) @ w_qkv).reshape(*lead, t, 3, n_heads, d // n_heads)
    q, k, v = _heads(y, 0), _heads(y, 1), _heads(y, 2)
    concat = np.empty((*lead, t, n_heads, d // n_heads), dtype=x.dtype)
    heads = np.swapaxes(concat, -2, -3)
    keeps, kept = core.multi_head._keeps_scores(t, t), []
    for h in range(n_heads):
        scores = q[..., h, :, :] @ np.swapaxes(k[..., h, :, :], -1, -2)
        np.matmul(scores, v[..., h, :, :], out=heads[..., h, :, :])
        if keeps:
            kept.append(scores)
    out = concat.reshape(-1, d) @ params["w_o"]
    return out, (x, w_qkv, q, k, v, concat, params["w_o"], kept)


def core_matmuls_only_backward(dout, cache):
    """The matrix products of its backward, alone, a head at a time the
    same way: ``q k^T`` again included when the forward did not keep the
    scores, since ``core`` then recomputes them."""
    x, w_qkv, q, k, v, concat, w_o, kept = cache
    d = x.shape[-1]
    dout = dout.reshape(-1, d)
    concat.reshape(-1, d).T @ dout                                 # dw_o
    dconcat = (dout @ w_o.T).reshape(concat.shape)
    dweighted = np.swapaxes(dconcat, -2, -3)
    dy_q = np.empty(x.shape[:-1] + (1,) + q.shape[-3:-2] + q.shape[-1:], dtype=x.dtype)
    dy_kv = np.empty(x.shape[:-1] + (2,) + q.shape[-3:-2] + q.shape[-1:], dtype=x.dtype)
    dq, dk, dv = _heads(dy_q, 0), _heads(dy_kv, 0), _heads(dy_kv, 1)
    for h in range(q.shape[-3]):
        q_h, k_h, v_h, dw_h = (a[..., h, :, :] for a in (q, k, v, dweighted))
        scores = kept[h] if kept else q_h @ np.swapaxes(k_h, -1, -2)   # kept or recomputed
        np.matmul(np.swapaxes(scores, -1, -2), dw_h, out=dv[..., h, :, :])
        dscores = dw_h @ np.swapaxes(v_h, -1, -2)
        np.matmul(np.swapaxes(dscores, -1, -2), q_h, out=dk[..., h, :, :])
        np.matmul(dscores, k_h, out=dq[..., h, :, :])
    x_rows, dy_q, dy_kv = x.reshape(-1, d), dy_q.reshape(-1, d), dy_kv.reshape(-1, 2 * d)
    dx = dy_q @ w_qkv[:, :d].T + dy_kv @ w_qkv[:, d:].T
    return dx, (x_rows.T @ dy_q, x_rows.T @ dy_kv)


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
    torch: str = ""      # PyTorch's version and threads, "" when not installed
    agreement: tuple = ()   # (what, largest |difference| from core's output) per check


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
    """One thing to time: ``forward()``, then ``backward(dout, result[1])``
    unless None."""

    impl: str
    mask: str
    forward: object
    backward: object
    flops: tuple      # counted FLOPs of (forward, forward+backward); None: no row
    repeats: int
    library: str = "numpy"


def _import_torch():
    """PyTorch, given as many threads as ``core`` has workers (the command
    line's one-thread setting for BLAS would otherwise hold it to one)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(parallel.get_workers())
    return torch


def _torch_multi_head(torch, x, params, n_heads, causal):
    """``nn.MultiheadAttention`` holding ``params`` (PyTorch keeps weights
    as ``(D_out, D_in)``: transposed) and its forward and backward on ``x``."""
    t, d = x.shape[-2:]
    dtype = torch.float32 if x.dtype == np.float32 else torch.float64
    module = torch.nn.MultiheadAttention(d, n_heads, batch_first=True, dtype=dtype)
    with torch.no_grad():
        w_qkv = np.concatenate([params["w_q"], params["w_k"], params["w_v"]], axis=1)
        module.in_proj_weight.copy_(torch.from_numpy(np.ascontiguousarray(w_qkv.T)))
        module.in_proj_bias.copy_(torch.from_numpy(
            np.concatenate([params["b_q"], params["b_k"], params["b_v"]])))
        module.out_proj.weight.copy_(torch.from_numpy(np.ascontiguousarray(params["w_o"].T)))
        module.out_proj.bias.copy_(torch.from_numpy(params["b_o"]))
    x_t = torch.from_numpy(x).requires_grad_()
    # PyTorch's float mask: -inf where masked (the opposite polarity to ours, Chapter 3)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(t, dtype=dtype) if causal else None

    def forward():
        x_t.grad = None
        out, _ = module(x_t, x_t, x_t, need_weights=False, attn_mask=mask, is_causal=causal)
        return out, out

    def backward(dout, out):
        out.backward(torch.from_numpy(dout))

    return forward, backward


def _torch_sdpa(torch, q, k, v):
    """``scaled_dot_product_attention(..., is_causal=True)``, forward and
    backward, on ``(B, H, T, Dh)`` arrays."""
    q_t, k_t, v_t = (torch.from_numpy(a).requires_grad_() for a in (q, k, v))

    def forward():
        for a in (q_t, k_t, v_t):
            a.grad = None
        out = torch.nn.functional.scaled_dot_product_attention(q_t, k_t, v_t, is_causal=True)
        return out, out

    def backward(dout, out):
        out.backward(torch.from_numpy(dout))

    return forward, backward


def _pair(forward, backward, *args, **kwargs):
    """A ``core``/``steps`` pair as a job's ``forward()`` and ``backward``."""
    return (lambda: forward(*args, **kwargs)), backward


def _multi_head_jobs(size, dtype, rng, *, steps_sizes, repeats, steps_repeats, torch,
                     masks, agreement):
    """The multi-head jobs at one size and dtype, and the ``dout`` to use."""
    b, t, d, n_heads = size
    x = rng.standard_normal((b, t, d)).astype(dtype)
    params = {key: value.astype(dtype) for key, value in
              init_multi_head_params(d, rng=rng).items()}
    dout = rng.standard_normal((b, t, d)).astype(dtype)
    forward, backward = multi_head_matmul_flops(b, t, d, n_heads)
    both = (forward, forward + backward)
    jobs = []
    for mask_name in masks:
        mask = causal_mask(t) if mask_name == "causal" else None
        jobs.append(_Job("core", mask_name, *_pair(
            core.multi_head.self_multi_head_attention_forward,
            core.multi_head.self_multi_head_attention_backward, x, params, n_heads=n_heads,
            mask=mask), both, repeats))
        if torch is not None and dtype == np.float32:
            torch_forward, torch_backward = _torch_multi_head(torch, x, params, n_heads,
                                                              mask_name == "causal")
            difference = float(np.abs(torch_forward()[0].detach().numpy()
                                      - jobs[-1].forward()[0]).max())
            agreement.append((f"PyTorch MHA {size} mask={mask_name}", difference))
            if difference < 1e-3:
                jobs.append(_Job("PyTorch MHA", mask_name, torch_forward, torch_backward,
                                 both, repeats, "torch"))
    if size in steps_sizes and dtype == np.float64:   # steps computes in float64 only
        jobs.append(_Job("steps", "none", *_pair(
            steps.multi_head.self_multi_head_attention_forward,
            steps.multi_head.self_multi_head_attention_backward, x, params,
            n_heads=n_heads), both, steps_repeats))
    return jobs, dout


def _flash_jobs(size, rng, *, repeats, torch, agreement):
    """Causal attention on ``(B, H, T, Dh)`` heads: ``core``'s flash and
    dense attention, and PyTorch's ``scaled_dot_product_attention``."""
    b, t, d, n_heads = size
    q, k, v, dout = (rng.standard_normal((b, n_heads, t, d // n_heads)).astype(np.float32)
                     for _ in range(4))
    forward = b * n_heads * attention_matmul_flops(t, t, d // n_heads, d // n_heads)   # dense
    both = (forward, 3 * forward)
    jobs = [   # flash: causal by index, no (T, S) mask; dense: the mask, as the only way
        _Job("core flash", "causal", *_pair(core.flash_attention.flash_attention_forward,
                                            core.flash_attention.flash_attention_backward,
                                            q, k, v, causal=True), both, repeats),
        _Job("core attention", "causal", *_pair(core.attention.attention_forward,
                                                core.attention.attention_backward,
                                                q, k, v, mask=causal_mask(t)), both, repeats),
    ]
    if torch is not None:
        torch_forward, torch_backward = _torch_sdpa(torch, q, k, v)
        difference = float(np.abs(torch_forward()[0].detach().numpy()
                                  - jobs[0].forward()[0]).max())
        agreement.append((f"PyTorch SDPA {(b, n_heads, t, d // n_heads)} causal", difference))
        if difference < 1e-3:
            jobs.append(_Job("PyTorch SDPA", "causal", torch_forward, torch_backward, both,
                             repeats, "torch"))
    return jobs, dout


def _run(job, dout):
    """Seconds of one forward, and of forward+backward (if any)."""
    start = time.perf_counter()
    result = job.forward()
    middle = time.perf_counter()
    if job.backward is not None:
        job.backward(dout, result[1])
    return middle - start, time.perf_counter() - start


def _measure(jobs, dout):
    """Warm every job up (``steps`` is slow: not it), then time them in
    interleaved rounds; a list of ``(forward, total)`` pairs per job."""
    for job in jobs:
        if job.impl != "steps":
            _run(job, dout)
    times, library = [[] for _ in jobs], None
    for round_ in range(max(job.repeats for job in jobs)):
        for job, job_times in zip(jobs, times, strict=True):
            if round_ < job.repeats:
                if job.library != library:
                    time.sleep(SETTLE)    # let the other library's threads stop spinning
                    library = job.library
                job_times.append(_run(job, dout))
    return times


def run(sizes=SIZES, steps_sizes=STEPS_SIZES, dtypes=DTYPES, *, long=LONG, repeats=6,
        steps_repeats=2, matmul_size=2048, seed=0, use_torch=True, out=None):
    """Measure everything; return a :class:`BenchResult`.

    At each size and dtype every job is timed in rounds with a square
    matmul, one run of each per round (see the module docstring); ``long``
    (None: skipped) adds the long causal size in float32. ``use_torch``
    adds PyTorch's rows when it is installed. ``out``, if given, gets one
    progress line per size and dtype.
    """
    busy_before = cpu_busy()
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    torch = _import_torch() if use_torch else None
    rows, runs, samples, agreement = [], {}, {}, []
    squares = {dtype: rng.standard_normal((2, matmul_size, matmul_size)).astype(dtype)
               for dtype in dtypes}                       # two (n, n) factors
    plan = [(size, dtype, ("none", "causal")) for size in sizes for dtype in dtypes]
    if long is not None:
        plan.append((long, np.float32, ("causal",)))
    for size, dtype, masks in plan:
        name = np.dtype(dtype).name
        square = squares.get(dtype, squares[next(iter(squares))].astype(dtype))
        jobs, dout = _multi_head_jobs(size, dtype, rng, steps_sizes=steps_sizes,
                                      repeats=repeats, steps_repeats=steps_repeats,
                                      torch=torch, masks=masks, agreement=agreement)
        jobs.insert(0, _Job("np.matmul", "none", lambda a=square: (parallel.matmul(*a), None),
                            None, (None, 2 * matmul_size ** 3), repeats))
        groups = [(jobs, dout)]
        if size == long:
            groups.append(_flash_jobs(size, rng, repeats=repeats, torch=torch,
                                      agreement=agreement))
        reference = None
        for group_jobs, group_dout in groups:
            times = _measure(group_jobs, group_dout)
            if reference is None:                 # the first group holds the square matmul
                matmul_times = [total for _, total in times[0]]
                reference = jobs[0].flops[1] / float(np.median(matmul_times))
                runs.setdefault(name, {})[size] = reference
                samples.setdefault(name, []).extend(jobs[0].flops[1] / ts
                                                    for ts in matmul_times)
                group_jobs, times = group_jobs[1:], times[1:]
            for job, job_times in zip(group_jobs, times, strict=True):
                forward_times, total_times = zip(*job_times, strict=True)
                passes = (("forward", forward_times, job.flops[0]),
                          ("forward+backward", total_times, job.flops[1]))
                rows += [Row(job.impl, name, size, job.mask, pass_name, float(np.median(ts)),
                             float(min(ts)), flops, flops / float(np.median(ts)) / reference)
                         for pass_name, ts, flops in passes if flops is not None]
            if out is not None:
                print(f"  measured {name} {size}: " + ", ".join(
                    f"{job.impl} mask={job.mask}" for job in group_jobs), file=out, flush=True)
    rates = {name: float(np.median(rates)) for name, rates in samples.items()}
    torch_text = ("" if torch is None else
                  f"{torch.__version__}, {torch.get_num_threads()} threads")
    return BenchResult(matmul_size, rates, runs, rows, time.perf_counter() - start,
                       busy_before, torch_text, tuple(agreement))


def find_row(result, impl, size, mask, *, dtype="float32", pass_name="forward+backward"):
    """The row of ``impl`` at ``size`` and ``mask``, or ``None``."""
    for row in result.rows:
        if (row.impl, row.dtype, row.size, row.mask, row.pass_name) == (
                impl, dtype, size, mask, pass_name):
            return row
    return None


def verdicts(result):
    """``(text, met)`` per target of ``TARGETS`` whose rows were measured."""
    found = []
    for impl, other, size, mask, goal in TARGETS:
        mine, theirs = find_row(result, impl, size, mask), find_row(result, other, size, mask)
        if mine is None or theirs is None:
            continue
        ratio = mine.median / theirs.median
        met = ratio <= goal
        found.append((f"{impl} / {other}, forward+backward, float32, B, T, D, H = {size}, "
                      f"mask={mask}: {ratio:.2f} (target <= {goal}): "
                      f"{'met' if met else 'NOT met'}", met))
    return found


def rates_disagree(result):
    """Dtype names whose square-matmul rates at different sizes differ by
    more than ``DISAGREE``: other work competed for the CPUs."""
    return [name for name, by_size in result.matmul_runs.items()
            if max(by_size.values()) - min(by_size.values()) > DISAGREE * max(by_size.values())]


def format_result(result):
    """The result as text: a header, a Markdown table, the verdicts."""
    n = result.matmul_size
    lines = [
        "Multi-head self-attention: core, steps and PyTorch against a square matmul, "
        "measured in one run.",
        f"Square matmul ({n}, {n}) @ ({n}, {n}) on {parallel.get_workers()} worker "
        "thread(s), timed in the same rounds as the attention runs of each size; each row is "
        "compared with its own size's median:",
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
    if result.torch:
        lines.append(f"PyTorch {result.torch}; its outputs were checked against core's "
                     "first (largest |difference|, rows only where < 1e-3): " + "; ".join(
                         f"{what} {difference:.1e}" for what, difference in result.agreement))
    else:
        lines.append("PyTorch is not installed, so its rows are missing: "
                     f"`.venv/bin/pip install torch=={TORCH_VERSION}` adds them.")
    lines += [
        "FLOPs: matrix products only, 2 per multiply-add, dense (a causal mask does not "
        "change the count); multi-head forward = 8 B T D^2 + 4 B T^2 D, attention forward = "
        "4 B T^2 D; backward = 2 x forward. Softmax, mask, biases and copies are not counted.",
        "Times: median and best of repeated runs, interleaved. 'of matmul' = counted FLOPs / "
        "median time / square-matmul rate of the same dtype and size.",
        "steps runs in float64 at the small size only: it builds one softmax Jacobian per "
        "row. 'core flash' and 'core attention' run on (B, H, T, D/H) heads, no projections.",
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
    lines.append("")
    lines += [f"Target: {text}" for text, _ in verdicts(result)]
    busy = result.busy_before
    lines.append(f"Whole run: {result.seconds:.1f} s on {os.cpu_count()} CPUs, "
                 f"{busy:.0%} busy with other work just before"
                 + (": times are unreliable." if busy > 0.1 else "."))
    return "\n".join(lines)


def main(*, repeats=6, steps_repeats=2, out=sys.stdout):
    """Run the benchmark, print the table; return the exit status (0)."""
    print("Measuring (about 35 s on two idle cores) ...", file=out, flush=True)
    result = run(repeats=repeats, steps_repeats=steps_repeats, out=out)
    print(format_result(result), file=out, flush=True)
    return 0
