"""``python -m attention_from_scratch verify``: every pair, checked twice.

For each forward/backward pair of the package, on small random float64
inputs:

1. finite differences against the backward of ``steps`` and of ``core``
   (largest relative error, :mod:`attention_from_scratch.checking.gradcheck`);
2. ``steps`` against ``core``: the forward output and every gradient for
   the same random upstream gradient (largest absolute difference).

Each pair runs at several sizes. First all different: a transpose that
changes a shape cannot hide. Then each of the coincidences real models
have (square weights, ``T == S``, ``T == Dv``, ``Dk == Dv``, ``D == F``,
``T == D``): a transpose that keeps the shape, like ``dw = dout^T x`` for
a square ``w``, runs without error only there, and must be caught there.
``CASES`` gives every pair its all-different sizes by letter and a
function that builds its inputs from any sizes; :func:`size_variants`
derives the coincidences. The test suite runs the same list.
"""

import importlib
import sys
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from attention_from_scratch.checking.gradcheck import (
    DEFAULT_TOLERANCE,
    flat_arrays,
    gradient_check,
)
from attention_from_scratch.common.masks import alibi_bias, causal_mask, padding_mask
from attention_from_scratch.common.params import DECODER_LAYOUTS, ENCODER_LAYOUTS

FD_TOLERANCE = DEFAULT_TOLERANCE   # central differences in float64, the checker's own
MIRROR_TOLERANCE = 1e-10   # steps vs core, relative to the values' size

# Equal sizes that real models have. Each coincidence is a list of
# equalities (a, b), meaning "set size b to size a"; a pair gets the
# variant when its sizes use both letters of at least one equality.
COINCIDENCES = {
    "T == S": (("T", "S"),),                   # self-attention
    "T == Dv": (("T", "Dv"), ("T", "Dh")),     # Dh: the per-head Dk and Dv
    "Dk == Dv": (("Dk", "Dv"),),
    "D == F": (("D", "F"),),
    "square weights": (("D", "F"), ("D", "Dk"), ("D", "Dv")),
    "T == D": (("D", "T"),),                   # T set to D: D stays divisible by H
}


class Case(NamedTuple):
    """One forward/backward pair and how to make inputs for it."""

    label: str
    module: str           # the same module name in steps/ and core/
    forward: str
    backward: str
    sizes: dict           # all-different sizes, by the letters of the shape alphabet
    make_inputs: Callable  # (rng, sizes) -> (inputs tuple, keyword arguments dict)


def size_variants(sizes):
    """The all-different ``sizes``, then one variant per coincidence.

    Returns a list of ``(name, sizes)``; a coincidence whose letters the
    pair does not use, or that repeats an earlier variant, is left out.

    Examples
    --------
    >>> [name for name, _ in size_variants({"B": 2, "T": 3, "D": 4, "F": 5})]
    ['all different', 'D == F', 'T == D']
    >>> size_variants({"T": 3, "S": 5})[1]
    ('T == S', {'T': 3, 'S': 3})
    """
    variants = [("all different", dict(sizes))]
    for name, equalities in COINCIDENCES.items():
        variant = dict(sizes)
        for a, b in equalities:
            if a in variant and b in variant:
                variant[b] = variant[a]
        if all(variant != seen for _, seen in variants):
            variants.append((name, variant))
    return variants


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


def _block_params(rng, layouts, sizes):
    # random and non-zero; layer-norm gains around 1. Scale 0.5 keeps the
    # round-off of b_k's exactly-zero gradients well below the tolerance.
    return {key: 0.5 * _normal(rng, *(sizes[letter] for letter in dims))
            + (key.endswith("gamma")) for key, dims in layouts.items()}


def _qkv(rng, z, *lead):
    """Queries, keys and values of shapes (..., T, Dk), (..., S, Dk), (..., S, Dv)."""
    return (_normal(rng, *lead, z["T"], z["Dk"]), _normal(rng, *lead, z["S"], z["Dk"]),
            _normal(rng, *lead, z["S"], z["Dv"]))


def _heads(z):
    """Model width and head count of a multi-head case: D = H * Dh."""
    return z["H"] * z["Dh"], z["H"]


def _linear(rng, z):
    return (_normal(rng, z["B"], z["T"], z["D"]), _normal(rng, z["D"], z["F"]),
            _normal(rng, z["F"])), {}


def _scores(rng, z):
    return (_normal(rng, z["B"], z["T"], z["Dk"]), _normal(rng, z["B"], z["S"], z["Dk"])), {}


def _weighted_sum(rng, z):
    return (rng.random((z["B"], z["T"], z["S"])), _normal(rng, z["B"], z["S"], z["Dv"])), {}


def _multi_head(rng, z, mask=None):
    d, h = _heads(z)
    kwargs = {"n_heads": h} if mask is None else {"n_heads": h, "mask": mask}
    return (_normal(rng, z["B"], z["T"], d), _normal(rng, z["B"], z["S"], d),
            _multi_head_params(rng, d)), kwargs


def _encoder(rng, z, **options):
    d, h = z["D"], z["H"]
    sizes = {"D": d, "F": z["F"]}
    lengths = [z["T"] - 1, z["T"]] if options.get("norm") != "pre" else [z["T"], z["T"] - 1]
    return ((_normal(rng, z["B"], z["T"], d), _block_params(rng, ENCODER_LAYOUTS, sizes)),
            {"n_heads": h, "mask": padding_mask(lengths, z["T"])[:, None], **options})


def _decoder(rng, z, **options):
    d, h = z["D"], z["H"]
    sizes = {"D": d, "F": z["F"]}
    memory_mask = padding_mask([z["S"], z["S"] - 1], z["S"])[:, None]     # (B, 1, 1, S)
    return ((_normal(rng, z["B"], z["T"], d), _normal(rng, z["B"], z["S"], d),
             _block_params(rng, DECODER_LAYOUTS, sizes)),
            {"n_heads": h, "memory_mask": memory_mask, **options})



def _embedding(rng, z):
    """Token ids with a repeat in every row: their rows of dW must add up."""
    tokens = rng.integers(0, z["V"], size=(z["B"], z["T"]))
    tokens[:, 1] = tokens[:, 0]
    return (_normal(rng, z["V"], z["D"]),), {"tokens": tokens}


def _cross_entropy(rng, z):
    """Targets with padding (id 0) at the end of every row but one real id."""
    targets = rng.integers(1, z["V"], size=(z["B"], z["T"]))
    targets[:, -1] = 0
    return (_normal(rng, z["B"], z["T"], z["V"]),), {"targets": targets, "ignore_id": 0}


ATTENTION = {"B": 2, "T": 3, "S": 5, "Dk": 4, "Dv": 6}
# multi-head: D = H * Dh. Blocks name D itself, to meet F (H = 2: D stays even)
HEADS = {"B": 2, "T": 4, "S": 5, "H": 2, "Dh": 3}
BLOCK = {"B": 2, "T": 3, "S": 5, "H": 2, "D": 4, "F": 6}

CASES = [
    Case("linear", "linear", "linear_forward", "linear_backward",
         {"B": 2, "T": 3, "D": 4, "F": 5}, _linear),
    Case("softmax (axis=-1)", "softmax", "softmax_forward", "softmax_backward",
         {"B": 2, "T": 3, "S": 4},
         lambda rng, z: ((_normal(rng, z["B"], z["T"], z["S"]),), {"axis": -1})),
    Case("softmax (axis=1)", "softmax", "softmax_forward", "softmax_backward",
         {"B": 2, "T": 3, "S": 4},
         lambda rng, z: ((_normal(rng, z["B"], z["T"], z["S"]),), {"axis": 1})),
    Case("attention scores", "attention", "scores_forward", "scores_backward",
         {"B": 2, "T": 3, "S": 5, "Dk": 4}, _scores),
    Case("attention weighted sum", "attention", "weighted_sum_forward",
         "weighted_sum_backward", {"B": 2, "T": 3, "S": 5, "Dv": 4}, _weighted_sum),
    Case("attention", "attention", "attention_forward", "attention_backward",
         ATTENTION, lambda rng, z: (_qkv(rng, z, z["B"]), {})),
    Case("attention, random mask", "attention", "attention_forward",
         "attention_backward", ATTENTION,
         lambda rng, z: (_qkv(rng, z, z["B"]),
                         {"mask": _random_mask(rng, z["B"], z["T"], z["S"])})),
    Case("attention, causal T<S", "attention", "attention_forward",
         "attention_backward", ATTENTION,
         lambda rng, z: (_qkv(rng, z, z["B"]), {"mask": causal_mask(z["T"], z["S"])})),
    Case("attention, padding (B,H)", "attention", "attention_forward",
         "attention_backward", {"B": 2, "H": 3, "T": 4, "S": 6, "Dk": 5, "Dv": 1},
         lambda rng, z: (_qkv(rng, z, z["B"], z["H"]),
                         {"mask": padding_mask([z["S"] - 2, z["S"]], z["S"])[:, None]})),
    Case("attention, causal & padding", "attention", "attention_forward",
         "attention_backward", {"B": 3, "T": 4, "Dk": 2, "Dv": 5},
         lambda rng, z: (_qkv(rng, {**z, "S": z["T"]}, z["B"]),
                         {"mask": causal_mask(z["T"])
                          & padding_mask([1, z["T"] - 1, z["T"]], z["T"], side="left")})),
    Case("self-attention", "self_attention", "self_attention_forward",
         "self_attention_backward", {"B": 2, "T": 3, "D": 4, "Dk": 5, "Dv": 6},
         lambda rng, z: ((_normal(rng, z["B"], z["T"], z["D"]),
                          _self_attention_params(rng, z["D"], z["Dk"], z["Dv"])), {})),
    Case("self-attention, causal mask", "self_attention", "self_attention_forward",
         "self_attention_backward", {"B": 2, "T": 4, "D": 3, "Dk": 5, "Dv": 6},
         lambda rng, z: ((_normal(rng, z["B"], z["T"], z["D"]),
                          _self_attention_params(rng, z["D"], z["Dk"], z["Dv"])),
                         {"mask": np.tri(z["T"], dtype=bool)})),
    Case("split heads", "multi_head", "split_heads_forward", "split_heads_backward",
         {"B": 2, "T": 5, "H": 3, "Dh": 4},
         lambda rng, z: ((_normal(rng, z["B"], z["T"], _heads(z)[0]),), {"n_heads": z["H"]})),
    Case("merge heads", "multi_head", "merge_heads_forward", "merge_heads_backward",
         {"B": 2, "H": 3, "T": 5, "Dh": 4},
         lambda rng, z: ((_normal(rng, z["B"], z["H"], z["T"], z["Dh"]),), {})),
    Case("multi-head attention", "multi_head", "multi_head_attention_forward",
         "multi_head_attention_backward", HEADS, _multi_head),
    Case("multi-head, per-head mask", "multi_head", "multi_head_attention_forward",
         "multi_head_attention_backward", HEADS,
         lambda rng, z: _multi_head(
             rng, z, _random_mask(rng, z["B"], z["H"], z["T"], z["S"]))),
    Case("attention, bias & causal", "attention", "attention_forward",
         "attention_backward", ATTENTION,
         lambda rng, z: (_qkv(rng, z, z["B"]), {"mask": causal_mask(z["T"], z["S"]),
                                                "bias": _normal(rng, z["B"], z["T"], z["S"])})),
    Case("multi-head self, ALiBi", "multi_head", "self_multi_head_attention_forward",
         "self_multi_head_attention_backward", {"B": 2, "T": 4, "H": 2, "Dh": 3},
         lambda rng, z: ((_normal(rng, z["B"], z["T"], _heads(z)[0]),
                          _multi_head_params(rng, _heads(z)[0])),
                         {"n_heads": z["H"], "mask": causal_mask(z["T"]),
                          "bias": alibi_bias(z["T"], n_heads=z["H"])[None]})),
    Case("multi-head self, causal", "multi_head", "self_multi_head_attention_forward",
         "self_multi_head_attention_backward", {"B": 2, "T": 4, "H": 2, "Dh": 3},
         lambda rng, z: ((_normal(rng, z["B"], z["T"], _heads(z)[0]),
                          _multi_head_params(rng, _heads(z)[0])),
                         {"n_heads": z["H"], "mask": causal_mask(z["T"])})),
    Case("positional encoding", "positional_encoding", "positional_encoding_forward",
         "positional_encoding_backward", {"B": 2, "T": 4, "D": 6},   # D even, also T == D
         lambda rng, z: ((_normal(rng, z["B"], z["T"], z["D"]),), {"offset": 2})),
    Case("layer norm", "layer_norm", "layer_norm_forward", "layer_norm_backward",
         {"B": 2, "T": 3, "D": 5},
         lambda rng, z: ((_normal(rng, z["B"], z["T"], z["D"]), _normal(rng, z["D"]),
                          _normal(rng, z["D"])), {})),
    Case("feed-forward (ReLU)", "feed_forward", "feed_forward_forward",
         "feed_forward_backward", {"B": 2, "T": 3, "D": 4, "F": 6},
         lambda rng, z: ((_normal(rng, z["B"], z["T"], z["D"]),
                          _ffn_params(rng, z["D"], z["F"])), {})),
    Case("feed-forward (GELU)", "feed_forward", "feed_forward_forward",
         "feed_forward_backward", {"B": 2, "T": 3, "D": 4, "F": 6},
         lambda rng, z: ((_normal(rng, z["B"], z["T"], z["D"]),
                          _ffn_params(rng, z["D"], z["F"])), {"activation": "gelu"})),
    Case("flash attention, block 3", "flash_attention", "flash_attention_forward",
         "flash_attention_backward", {"B": 2, "T": 5, "S": 7, "Dk": 4, "Dv": 6},
         lambda rng, z: (_qkv(rng, z, z["B"]), {"block_size": 3})),
    Case("flash attention, mask", "flash_attention", "flash_attention_forward",
         "flash_attention_backward", ATTENTION,
         lambda rng, z: (_qkv(rng, z, z["B"]),
                         {"block_size": 2, "mask": _random_mask(rng, z["B"], z["T"], z["S"])})),
    Case("flash attention, causal T<S", "flash_attention", "flash_attention_forward",
         "flash_attention_backward", {"B": 2, "T": 5, "S": 7, "Dk": 4, "Dv": 6},
         lambda rng, z: (_qkv(rng, z, z["B"]), {"block_size": 3, "causal": True})),
    Case("flash attention, causal T>S", "flash_attention", "flash_attention_forward",
         "flash_attention_backward", {"B": 2, "T": 7, "S": 4, "Dk": 3, "Dv": 5},
         lambda rng, z: (_qkv(rng, z, z["B"]), {"block_size": 3, "causal": True})),
    Case("flash attention, key lengths, causal & mask", "flash_attention",
         "flash_attention_forward", "flash_attention_backward",
         {"B": 2, "H": 3, "T": 4, "S": 6, "Dk": 5, "Dv": 7},
         lambda rng, z: (_qkv(rng, z, z["B"], z["H"]),
                         {"block_size": 3, "causal": True,
                          "key_lengths": np.array([z["S"] - 1, 2]),   # one per batch row
                          "mask": _random_mask(rng, z["B"], z["H"], z["T"], z["S"])})),
    Case("encoder block (post-norm)", "encoder", "encoder_block_forward",
         "encoder_block_backward", {k: v for k, v in BLOCK.items() if k != "S"}, _encoder),
    Case("encoder block (pre-norm)", "encoder", "encoder_block_forward",
         "encoder_block_backward", {k: v for k, v in BLOCK.items() if k != "S"},
         lambda rng, z: _encoder(rng, z, norm="pre")),
    Case("decoder block (post-norm)", "decoder", "decoder_block_forward",
         "decoder_block_backward", BLOCK,
         lambda rng, z: _decoder(
             rng, z, self_mask=padding_mask([z["T"] - 1, z["T"]], z["T"])[:, None])),
    Case("decoder block (pre-norm)", "decoder", "decoder_block_forward",
         "decoder_block_backward", BLOCK,
         lambda rng, z: _decoder(rng, z, norm="pre")),
    Case("recurrent layer", "recurrent", "recurrent_forward", "recurrent_backward",
         {"B": 2, "T": 5, "D": 3, "F": 4},
         lambda rng, z: ((_normal(rng, z["B"], z["T"], z["D"]), _normal(rng, z["D"], z["F"]),
                          0.5 * _normal(rng, z["F"], z["F"]), _normal(rng, z["F"])), {})),
    Case("convolution, dilation 2", "convolution", "convolution_forward",
         "convolution_backward", {"B": 2, "T": 6, "D": 4, "F": 5},
         lambda rng, z: ((_normal(rng, z["B"], z["T"], z["D"]), _normal(rng, 3, z["D"], z["F"]),
                          _normal(rng, z["F"])), {"dilation": 2})),
    Case("local attention, window 3", "local_attention", "local_attention_forward",
         "local_attention_backward", {"B": 2, "T": 4, "S": 7, "Dk": 5, "Dv": 6},
         lambda rng, z: (_qkv(rng, z, z["B"]), {"window": 3})),
    Case("Linformer attention", "linformer", "linformer_attention_forward",
         "linformer_attention_backward", {"B": 2, "T": 3, "S": 6, "Dk": 4, "Dv": 5},
         lambda rng, z: (_qkv(rng, z, z["B"]) + (_normal(rng, 2, z["S"]),
                                                  _normal(rng, 2, z["S"])), {})),
    Case("Performer attention", "performer", "performer_attention_forward",
         "performer_attention_backward", ATTENTION,
         lambda rng, z: (_qkv(rng, z, z["B"]), {"features": _normal(rng, 7, z["Dk"])})),
    Case("embedding, repeated tokens", "embedding", "embedding_forward", "embedding_backward",
         {"B": 2, "T": 3, "V": 5, "D": 4}, _embedding),
    Case("output projection", "embedding", "output_projection_forward",
         "output_projection_backward", {"B": 2, "T": 3, "D": 4, "V": 6},
         lambda rng, z: ((_normal(rng, z["B"], z["T"], z["D"]), _normal(rng, z["V"], z["D"]),
                          _normal(rng, z["V"])), {})),
    Case("cross-entropy, padding", "cross_entropy", "cross_entropy_forward",
         "cross_entropy_backward", {"B": 2, "T": 4, "V": 5}, _cross_entropy),
]


class CaseResult(NamedTuple):
    label: str
    fd_steps: float
    fd_core: float
    mirror_forward: float
    mirror_backward: float
    passed: bool
    reason: str = ""      # why a pair that raised failed: "ValueError: ..."


def _mirror_difference(a, b):
    """Largest ``|a - b|`` relative to ``1 + |a|``, over flattened arrays."""
    return max(
        (float(np.max(np.abs(x - y) / (1.0 + np.abs(x)), initial=0.0))
         for x, y in zip(flat_arrays(a), flat_arrays(b), strict=True)),
        default=0.0,
    )


def run_case(case, *, sizes=None, seed=0):
    """Check one case at ``sizes`` (default: its own); return a :class:`CaseResult`.

    A pair that raises (a gradient of the wrong shape that cannot be
    broadcast, say) fails with the exception as its reason.
    """
    rng = np.random.default_rng(seed)
    try:
        inputs, kwargs = case.make_inputs(rng, case.sizes if sizes is None else sizes)
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
    except Exception as error:   # noqa: BLE001 -- any error is this pair's failure
        nan = float("nan")
        return CaseResult(case.label, nan, nan, nan, nan, False,
                          f"{type(error).__name__}: {error}")
    passed = (max(fd.values()) <= FD_TOLERANCE
              and max(mirror_fwd, mirror_bwd) <= MIRROR_TOLERANCE)
    return CaseResult(case.label, fd["steps"], fd["core"], mirror_fwd, mirror_bwd, passed)


def checks(cases=None):
    """Every ``(case, name, sizes)`` to run: each case at each of its size variants."""
    return [(case, name, sizes) for case in (CASES if cases is None else cases)
            for name, sizes in size_variants(case.sizes)]


def main(out=None, cases=None):
    """Print the verification table as it goes; return the exit status.

    Every check runs, even after one fails or raises; the status is 1 if
    any failed.
    """
    out = sys.stdout if out is None else out
    todo = checks(cases)
    width = max(len(f"{case.label} [{name}]") for case, name, _ in todo)
    header = (f"{'pair [sizes]':<{width}} {'FD steps':>9} {'FD core':>9} "
              f"{'fwd s-c':>9} {'bwd s-c':>9}  result")
    n_pairs = len({case.label for case, _, _ in todo})
    print(f"Checking {n_pairs} forward/backward pairs at {len(todo)} sizes: finite differences "
          f"(tolerance {FD_TOLERANCE:.0e}) and steps vs core "
          f"(tolerance {MIRROR_TOLERANCE:.0e}).", file=out)
    print(header, file=out)
    print("-" * len(header), file=out, flush=True)
    failures = []
    for case, name, sizes in todo:
        r = run_case(case, sizes=sizes)
        label = f"{case.label} [{name}]"
        if not r.passed:
            failures.append(label)
        if r.reason:
            print(f"{label:<{width}} {'raised':>9} {r.reason}  FAIL", file=out, flush=True)
            continue
        print(f"{label:<{width}} {r.fd_steps:>9.1e} {r.fd_core:>9.1e} "
              f"{r.mirror_forward:>9.1e} {r.mirror_backward:>9.1e}  "
              f"{'pass' if r.passed else 'FAIL'}", file=out, flush=True)
    for label in failures:
        print(f"FAILED: {label}", file=out)
    print(f"{len(todo) - len(failures)} passed, {len(failures)} failed", file=out)
    return 1 if failures else 0
