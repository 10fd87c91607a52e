"""``python -m attention_from_scratch verify``: every pair, checked twice.

For each forward/backward pair of the package, on small random float64
inputs of all-different sizes:

1. finite differences against the backward of ``steps`` and of ``core``
   (largest relative error, :mod:`attention_from_scratch.checking.gradcheck`);
2. ``steps`` against ``core``: the forward output and every gradient for
   the same random upstream gradient (largest absolute difference).

``CASES`` lists the pairs; the test suite runs the same list.
"""

import importlib
import sys
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from attention_from_scratch.checking.gradcheck import flat_arrays, gradient_check
from attention_from_scratch.common.masks import causal_mask, padding_mask
from attention_from_scratch.common.params import DECODER_LAYOUTS, ENCODER_LAYOUTS

FD_TOLERANCE = 1e-6        # central differences in float64, eps = 1e-5
MIRROR_TOLERANCE = 1e-10   # steps vs core, relative to the values' size


class Case(NamedTuple):
    """One forward/backward pair and how to make inputs for it."""

    label: str
    module: str           # the same module name in steps/ and core/
    forward: str
    backward: str
    make_inputs: Callable  # rng -> (inputs tuple, keyword arguments dict)


def pair(impl, case):
    """Return ``(forward, backward)`` of ``case`` from ``"steps"`` or ``"core"``."""
    module = importlib.import_module(f"attention_from_scratch.{impl}.{case.module}")
    return getattr(module, case.forward), getattr(module, case.backward)


def _normal(rng, *shape):
    return rng.normal(size=shape)


def _random_mask(rng, *shape):
    mask = rng.random(shape) < 0.6
    mask[..., 0, :] = False     # one query with nothing to attend to
    return mask


def _self_attention_params(rng, d, d_k, d_v):
    # b_k's true gradient is exactly 0 (the softmax ignores a shift), so its check
    # measures round-off; weights of scale 0.5 keep that far below the tolerance
    return {"w_q": 0.5 * _normal(rng, d, d_k), "b_q": 0.5 * _normal(rng, d_k),
            "w_k": 0.5 * _normal(rng, d, d_k), "b_k": 0.5 * _normal(rng, d_k),
            "w_v": 0.5 * _normal(rng, d, d_v), "b_v": 0.5 * _normal(rng, d_v)}


def _ffn_params(rng, d, f):
    return {"w_1": _normal(rng, d, f), "b_1": _normal(rng, f),
            "w_2": _normal(rng, f, d), "b_2": _normal(rng, d)}


def _multi_head_params(rng, d):
    # scale 0.5 for the same reason as _self_attention_params (b_k's gradient is 0)
    return {key: 0.5 * _normal(rng, *((d, d) if key[0] == "w" else (d,)))
            for key in ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")}


def _block_params(rng, layouts, d, f):
    # random and non-zero; layer-norm gains around 1. Scale 0.5 keeps the
    # round-off of b_k's exactly-zero gradients well below the tolerance.
    sizes = {"D": d, "F": f}
    return {key: 0.5 * _normal(rng, *(sizes[letter] for letter in dims))
            + (key.endswith("gamma")) for key, dims in layouts.items()}


CASES = [
    Case("linear", "linear", "linear_forward", "linear_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 4, 5), _normal(rng, 5)), {})),
    Case("softmax (axis=-1)", "softmax", "softmax_forward", "softmax_backward",
         lambda rng: ((_normal(rng, 2, 3, 4),), {"axis": -1})),
    Case("softmax (axis=1)", "softmax", "softmax_forward", "softmax_backward",
         lambda rng: ((_normal(rng, 2, 3, 4),), {"axis": 1})),
    Case("attention scores", "attention", "scores_forward", "scores_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 2, 5, 4)), {})),
    Case("attention weighted sum", "attention", "weighted_sum_forward",
         "weighted_sum_backward",
         lambda rng: ((rng.random((2, 3, 5)), _normal(rng, 2, 5, 4)), {})),
    Case("attention", "attention", "attention_forward", "attention_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 2, 5, 4),
                       _normal(rng, 2, 5, 6)), {})),
    Case("attention, random mask", "attention", "attention_forward",
         "attention_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 2, 5, 4),
                       _normal(rng, 2, 5, 6)), {"mask": _random_mask(rng, 2, 3, 5)})),
    Case("attention, causal T<S", "attention", "attention_forward",
         "attention_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 2, 5, 4),
                       _normal(rng, 2, 5, 6)), {"mask": causal_mask(3, 5)})),
    Case("attention, padding (B,H)", "attention", "attention_forward",
         "attention_backward",
         lambda rng: ((_normal(rng, 2, 3, 4, 5), _normal(rng, 2, 3, 6, 5),
                       _normal(rng, 2, 3, 6, 1)), {"mask": padding_mask([4, 6], 6)[:, None]})),
    Case("attention, causal & padding", "attention", "attention_forward",
         "attention_backward",
         lambda rng: ((_normal(rng, 3, 4, 2), _normal(rng, 3, 4, 2), _normal(rng, 3, 4, 5)),
                      {"mask": causal_mask(4) & padding_mask([1, 3, 4], 4, side="left")})),
    Case("self-attention", "self_attention", "self_attention_forward",
         "self_attention_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _self_attention_params(rng, 4, 5, 2)), {})),
    Case("self-attention, causal mask", "self_attention", "self_attention_forward",
         "self_attention_backward",
         lambda rng: ((_normal(rng, 2, 4, 3), _self_attention_params(rng, 3, 5, 2)),
                      {"mask": np.tri(4, dtype=bool)})),
    Case("split heads", "multi_head", "split_heads_forward", "split_heads_backward",
         lambda rng: ((_normal(rng, 2, 3, 6),), {"n_heads": 3})),
    Case("merge heads", "multi_head", "merge_heads_forward", "merge_heads_backward",
         lambda rng: ((_normal(rng, 2, 3, 4, 2),), {})),
    Case("multi-head attention", "multi_head", "multi_head_attention_forward",
         "multi_head_attention_backward",
         lambda rng: ((_normal(rng, 2, 3, 6), _normal(rng, 2, 4, 6), _multi_head_params(rng, 6)),
                      {"n_heads": 3})),
    Case("multi-head, per-head mask", "multi_head", "multi_head_attention_forward",
         "multi_head_attention_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 2, 5, 4), _multi_head_params(rng, 4)),
                      {"n_heads": 2, "mask": _random_mask(rng, 2, 2, 3, 5)})),
    Case("multi-head self, causal", "multi_head", "self_multi_head_attention_forward",
         "self_multi_head_attention_backward",
         lambda rng: ((_normal(rng, 2, 4, 6), _multi_head_params(rng, 6)),
                      {"n_heads": 2, "mask": causal_mask(4)})),
    Case("positional encoding", "positional_encoding", "positional_encoding_forward",
         "positional_encoding_backward",
         lambda rng: ((_normal(rng, 2, 3, 4),), {"offset": 2})),
    Case("layer norm", "layer_norm", "layer_norm_forward", "layer_norm_backward",
         lambda rng: ((_normal(rng, 2, 3, 5), _normal(rng, 5), _normal(rng, 5)), {})),
    Case("feed-forward (ReLU)", "feed_forward", "feed_forward_forward",
         "feed_forward_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _ffn_params(rng, 4, 6)), {})),
    Case("feed-forward (GELU)", "feed_forward", "feed_forward_forward",
         "feed_forward_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _ffn_params(rng, 4, 6)),
                      {"activation": "gelu"})),
    Case("flash attention, block 3", "flash_attention", "flash_attention_forward",
         "flash_attention_backward",
         lambda rng: ((_normal(rng, 2, 5, 4), _normal(rng, 2, 7, 4), _normal(rng, 2, 7, 3)),
                      {"block_size": 3})),
    Case("flash attention, mask", "flash_attention", "flash_attention_forward",
         "flash_attention_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 2, 5, 4), _normal(rng, 2, 5, 6)),
                      {"block_size": 2, "mask": _random_mask(rng, 2, 3, 5)})),
    Case("encoder block (post-norm)", "encoder", "encoder_block_forward",
         "encoder_block_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _block_params(rng, ENCODER_LAYOUTS, 4, 6)),
                      {"n_heads": 2, "mask": padding_mask([2, 3], 3)[:, None]})),
    Case("encoder block (pre-norm)", "encoder", "encoder_block_forward",
         "encoder_block_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _block_params(rng, ENCODER_LAYOUTS, 4, 6)),
                      {"n_heads": 2, "mask": padding_mask([3, 2], 3)[:, None], "norm": "pre"})),
    Case("decoder block (post-norm)", "decoder", "decoder_block_forward",
         "decoder_block_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 2, 5, 4),
                       _block_params(rng, DECODER_LAYOUTS, 4, 6)),
                      {"n_heads": 2, "self_mask": padding_mask([2, 3], 3)[:, None],
                       "memory_mask": padding_mask([5, 4], 5)[:, None]})),
    Case("decoder block (pre-norm)", "decoder", "decoder_block_forward",
         "decoder_block_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 2, 5, 4),
                       _block_params(rng, DECODER_LAYOUTS, 4, 6)),
                      {"n_heads": 2, "memory_mask": padding_mask([4, 5], 5)[:, None],
                       "norm": "pre"})),
    Case("recurrent layer", "recurrent", "recurrent_forward", "recurrent_backward",
         lambda rng: ((_normal(rng, 2, 5, 3), _normal(rng, 3, 4), 0.5 * _normal(rng, 4, 4),
                       _normal(rng, 4)), {})),
    Case("convolution, dilation 2", "convolution", "convolution_forward",
         "convolution_backward",
         lambda rng: ((_normal(rng, 2, 6, 3), _normal(rng, 3, 3, 4), _normal(rng, 4)),
                      {"dilation": 2})),
    Case("local attention, window 3", "local_attention", "local_attention_forward",
         "local_attention_backward",
         lambda rng: ((_normal(rng, 2, 4, 3), _normal(rng, 2, 7, 3), _normal(rng, 2, 7, 5)),
                      {"window": 3})),
    Case("Linformer attention", "linformer", "linformer_attention_forward",
         "linformer_attention_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 2, 6, 4), _normal(rng, 2, 6, 5),
                       _normal(rng, 2, 6), _normal(rng, 2, 6)), {})),
    Case("Performer attention", "performer", "performer_attention_forward",
         "performer_attention_backward",
         lambda rng: ((_normal(rng, 2, 3, 4), _normal(rng, 2, 5, 4), _normal(rng, 2, 5, 6)),
                      {"features": _normal(rng, 7, 4)})),
]


class CaseResult(NamedTuple):
    label: str
    fd_steps: float
    fd_core: float
    mirror_forward: float
    mirror_backward: float
    passed: bool


def _mirror_difference(a, b):
    """Largest ``|a - b|`` relative to ``1 + |a|``, over flattened arrays."""
    return max(
        (float(np.max(np.abs(x - y) / (1.0 + np.abs(x)), initial=0.0))
         for x, y in zip(flat_arrays(a), flat_arrays(b), strict=True)),
        default=0.0,
    )


def run_case(case, *, seed=0):
    """Check one case; return a :class:`CaseResult`."""
    rng = np.random.default_rng(seed)
    inputs, kwargs = case.make_inputs(rng)
    fd = {}
    for impl in ("steps", "core"):
        forward, backward = pair(impl, case)
        report = gradient_check(forward, backward, inputs, kwargs=kwargs, rng=rng,
                                tolerance=FD_TOLERANCE)
        fd[impl] = report.max_relative_error   # inf when a gradient is malformed
    steps_fwd, steps_bwd = pair("steps", case)
    core_fwd, core_bwd = pair("core", case)
    out_s, cache_s = steps_fwd(*inputs, **kwargs)
    out_c, cache_c = core_fwd(*inputs, **kwargs)
    dout = rng.normal(size=np.shape(out_s))
    mirror_fwd = _mirror_difference(out_s, out_c)
    mirror_bwd = _mirror_difference(steps_bwd(dout, cache_s), core_bwd(dout, cache_c))
    passed = (max(fd.values()) <= FD_TOLERANCE
              and max(mirror_fwd, mirror_bwd) <= MIRROR_TOLERANCE)
    return CaseResult(case.label, fd["steps"], fd["core"], mirror_fwd, mirror_bwd, passed)


def main(out=sys.stdout):
    """Print the verification table as it goes; return the exit status."""
    header = (f"{'pair':<28} {'FD steps':>9} {'FD core':>9} "
              f"{'fwd s-c':>9} {'bwd s-c':>9}  result")
    print(f"Checking {len(CASES)} forward/backward pairs: finite differences "
          f"(tolerance {FD_TOLERANCE:.0e}) and steps vs core "
          f"(tolerance {MIRROR_TOLERANCE:.0e}).", file=out)
    print(header, file=out)
    print("-" * len(header), file=out, flush=True)
    failures = 0
    for case in CASES:
        r = run_case(case)
        failures += not r.passed
        print(f"{r.label:<28} {r.fd_steps:>9.1e} {r.fd_core:>9.1e} "
              f"{r.mirror_forward:>9.1e} {r.mirror_backward:>9.1e}  "
              f"{'pass' if r.passed else 'FAIL'}", file=out, flush=True)
    print(f"{len(CASES) - failures} passed, {failures} failed", file=out)
    return 1 if failures else 0
