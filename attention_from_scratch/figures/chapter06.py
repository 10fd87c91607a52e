"""Figures of Chapter 6: what attention costs, and how to pay less."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

from attention_from_scratch.book.plotting import heatmap
from attention_from_scratch.measure.approximation import INPUT_KINDS, approximation_errors
from attention_from_scratch.measure.complexity import attention_peak_memory
from attention_from_scratch.measure.flops import self_attention_flops
from attention_from_scratch.measure.layer_comparison import (
    layers_to_connect_ends,
    reach,
    recurrent_steps,
)

MEMORY_SEED = 6
MEMORY_LENGTHS = (512, 1024, 2048, 4096)   # the chapter measures these and continues further
MEMORY_WIDTH = 64
MEMORY_BLOCK = 128                          # flash attention's default tile
REACH_LENGTH = 12
PATH_LENGTHS = (2, 4, 8, 16, 32, 64)
PATH_KINDS = ("self-attention", "recurrent", "convolution", "dilated convolution",
              "restricted self-attention")


def label_lengths(ax, lengths):
    """Tick the x axis at exactly the measured lengths, labelled plainly."""
    ax.set_xticks(list(lengths), [str(t) for t in lengths])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("sequence length T")


def flops_figure():
    """FLOPs of the projections and of attention against ``T``, for two widths."""
    lengths = np.logspace(6, 14, 17, base=2).astype(int)        # 64 .. 16384
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for d, style in ((64, "-"), (512, "--")):
        parts = [self_attention_flops(t, d) for t in lengths]
        ax.loglog(lengths, [p["projections"] for p in parts], style, color="C0",
                  label=f"projections, D = {d}  (8 T D²)")
        ax.loglog(lengths, [p["attention"] for p in parts], style, color="C3",
                  label=f"attention, D = {d}  (4 T² D)")
        ax.axvline(2 * d, color="grey", ls=":", lw=1)
        ax.text(2 * d * 1.08, 2e6, f"T = 2D = {2 * d}", rotation=90, fontsize=8,
                color="grey", va="bottom")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("matmul FLOPs of one self-attention layer")
    ax.set_title("Attention overtakes the projections once T > 2D")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def memory_figure():
    """Measured peak memory of standard and flash attention against ``T``.

    The chapter's measurement (one head of width 64, float32, tiles of 128
    keys, forward + backward) for the lengths it can remeasure in under a
    second, each time the figures are regenerated.
    """
    # attention_peak_memory warms up before it measures, so the peaks do not
    # depend on what ran before (the same bytes in a fresh interpreter)
    rng = np.random.default_rng(MEMORY_SEED)
    memory = [attention_peak_memory(t, MEMORY_WIDTH, rng=rng, block_size=MEMORY_BLOCK)
              for t in MEMORY_LENGTHS]
    lengths = np.array(MEMORY_LENGTHS)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, color in (("attention", "C3"), ("flash attention", "C2")):
        # rounded: a few bytes vary from run to run
        mib = np.round([m[name] / 2**20 for m in memory], 2)
        ax.loglog(lengths, mib, "o-", color=color, label=f"{name} (measured)")
    weights = lengths.astype(float) ** 2 * 4 / 2**20
    ax.loglog(lengths, weights, ":", color="C3", label="the (T, T) float32 weights alone")
    label_lengths(ax, lengths)
    ax.set_ylabel("peak extra memory, forward + backward (MiB)")
    ax.set_title(f"Quadratic for standard, linear for flash attention\n"
                 f"(D = {MEMORY_WIDTH}, float32, tiles of {MEMORY_BLOCK} keys)", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def reach_figure():
    """Which inputs each output depends on, after one layer of each kind."""
    kinds = ("self-attention", "recurrent", "convolution", "restricted self-attention")
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.9))
    for ax, kind in zip(axes, kinds, strict=True):
        reached = reach(kind, REACH_LENGTH, width=3).astype(float)
        heatmap(ax, reached, annotate=False, cmap="Greys", title=kind)
        ax.set_xlabel("input position j")
    axes[0].set_ylabel("output position i")
    fig.suptitle("One layer: black = output i receives a non-zero gradient from input j "
                 "(width 3 for convolution and restricted attention)")
    fig.tight_layout()
    return fig


def path_lengths(lengths=PATH_LENGTHS, *, width=3):
    """Measured maximum path length (in layer steps) between the two ends.

    For the stacked layers: the number of layers until the last output
    hears the first input. For the recurrent layer (one layer connects
    them): the number of recurrence steps in between.
    """
    lengths = list(lengths)
    paths = {kind: np.array([layers_to_connect_ends(kind, t, width=width) for t in lengths])
             for kind in PATH_KINDS if kind != "recurrent"}
    paths["recurrent"] = np.array([recurrent_steps(t)[0] for t in lengths])
    return paths


def path_length_figure():
    """Maximum path length against ``T`` for each kind of layer."""
    paths = path_lengths()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for kind, style in zip(PATH_KINDS, ("o-", "s-", "d-", "^-", "v--"), strict=True):
        ax.plot(PATH_LENGTHS, paths[kind], style, label=kind)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    label_lengths(ax, PATH_LENGTHS)
    ax.set_ylabel("maximum path length (measured)")
    ax.set_title("Steps between the first input and the last output (width 3)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


APPROXIMATION_BUDGETS = (8, 16, 32, 64, 128, 256)
APPROXIMATION_TITLES = {"local": "local inputs: attention to neighbours",
                        "smooth": "smooth inputs: nearly low-rank attention",
                        "random": "random inputs: soft, unstructured"}


def approximation_error_figure():
    """Relative error against budget, for each method and kind of input (T = 256)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
    for ax, kind in zip(axes, INPUT_KINDS, strict=True):
        errors = approximation_errors(kind, APPROXIMATION_BUDGETS)
        for (method, values), marker in zip(errors.items(), "osd", strict=True):
            # the error is exactly 0 at budget T for two methods: draw it at the floor
            ax.loglog(APPROXIMATION_BUDGETS, np.maximum(values, 1e-3), marker + "-",
                      label=method)
        ax.set_title(APPROXIMATION_TITLES[kind], fontsize=10)
        ax.set_ylim(8e-4, 5)
        label_lengths(ax, APPROXIMATION_BUDGETS)
        ax.set_xlabel("budget: window, rank or features")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("relative error vs exact attention")
    axes[0].legend(fontsize=8)
    fig.suptitle("Which approximation wins depends on the inputs (T = 256, D = 32; "
                 "an error of 0 is drawn at 1e-3)")
    fig.tight_layout()
    return fig


def timing_figure(lengths, seconds, *, title):
    """Measured times against ``T`` (not saved: timings differ run to run).

    Parameters
    ----------
    lengths : (N,) array_like
    seconds : dict of (N,) array_like
        Label -> best time per length.
    title : str
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, values in seconds.items():
        ax.loglog(lengths, values, "o-", label=name)
    label_lengths(ax, lengths)
    ax.set_ylabel("seconds (best of several runs)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


FIGURES = {
    "06_flops.svg": flops_figure,
    "06_memory.svg": memory_figure,
    "06_reach.png": reach_figure,
    "06_path_length.svg": path_length_figure,
    "06_approximation_error.svg": approximation_error_figure,
}
