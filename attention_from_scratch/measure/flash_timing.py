"""Causal flash attention against PyTorch and against dense attention (issue 13).

``core`` flash attention with ``causal=True``, forward + backward, next to
``core``'s dense attention given a ``causal_mask`` and, when PyTorch is
importable, ``torch.nn.functional.scaled_dot_product_attention(...,
is_causal=True)``: the same float32 inputs, the outputs and gradients
checked equal before anything is timed, then medians of interleaved
rounds of wall-clock time (the chunks of ``core`` and PyTorch's threads
both run on every core). Run with ``OPENBLAS_NUM_THREADS=1``: the workers
of ``common.parallel`` give NumPy its parallelism.

    OPENBLAS_NUM_THREADS=1 python -m attention_from_scratch.measure.flash_timing
"""

import time

import numpy as np

from attention_from_scratch import core
from attention_from_scratch.common.masks import causal_mask
from attention_from_scratch.common.parallel import get_workers

SIZE = (1, 8, 2048, 64)       # (B, H, T, Dh)


def flash_jobs(size=SIZE, *, block_size=128, seed=0):
    """Zero-argument forward + backward runs on the same float32 inputs.

    Returns
    -------
    jobs : dict of callable
        ``"core flash, causal"``, ``"core dense, causal mask"`` and, with
        PyTorch, ``"torch SDPA, is_causal"``; each returns ``(out, dq, dk,
        dv)``, and all agree (checked here, to float32 round-off).
    """
    rng = np.random.default_rng(seed)
    q, k, v, dout = (rng.normal(size=size).astype(np.float32) for _ in range(4))
    mask = causal_mask(size[-2])

    def flash():
        out, cache = core.flash_attention.flash_attention_forward(
            q, k, v, causal=True, block_size=block_size)
        return (out, *core.flash_attention.flash_attention_backward(dout, cache))

    def dense():
        out, cache = core.attention.attention_forward(q, k, v, mask=mask)
        return (out, *core.attention.attention_backward(dout, cache))

    jobs = {"core flash, causal": flash, "core dense, causal mask": dense}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(get_workers())
        tq, tk, tv = (torch.from_numpy(a).requires_grad_() for a in (q, k, v))
        tdout = torch.from_numpy(dout)

        def sdpa():
            tq.grad = tk.grad = tv.grad = None
            out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
            out.backward(tdout)
            return (out.detach().numpy(), tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy())

        jobs["torch SDPA, is_causal"] = sdpa
    reference = dense()
    for name, job in jobs.items():
        for got, want in zip(job(), reference, strict=True):
            if not np.allclose(got, want, rtol=1e-3, atol=1e-4):
                raise AssertionError(f"{name} disagrees with core dense attention")
    return jobs


def interleaved_medians(jobs, *, rounds=7, settle=0.05):
    """Median wall-clock seconds of each job, one run of each per round.

    ``settle``: a pause before each run, so that the threads of the library
    that ran last (OpenBLAS and PyTorch threads spin after a call) are idle.
    """
    times = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            time.sleep(settle)
            start = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(seconds)) for name, seconds in times.items()}


def main():
    medians = interleaved_medians(flash_jobs())
    base = medians.get("torch SDPA, is_causal")
    for name, seconds in medians.items():
        ratio = f"   {seconds / base:.2f}x SDPA" if base else ""
        print(f"{name:24s} {1e3 * seconds:7.1f} ms{ratio}")


if __name__ == "__main__":
    main()
