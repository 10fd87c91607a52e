"""Figures of Chapter 0: how the book checks itself."""

import matplotlib.pyplot as plt
import numpy as np


def step_size_errors(dtype, steps=None):
    """Errors of forward and central differences of ``tanh`` at 0.5.

    Parameters
    ----------
    dtype : numpy dtype
        Precision the differences are computed in.
    steps : (N,) array_like, optional
        Step sizes; default 30 values from 1e-14 to 1e-1.

    Returns
    -------
    steps : (N,) ndarray
    forward_error, central_error : (N,) ndarray
        Absolute errors against the exact derivative ``1 - tanh(0.5)**2``.
    """
    steps = np.logspace(-14, -1, 30) if steps is None else np.asarray(steps)
    x = dtype(0.5)
    exact = 1.0 - np.tanh(0.5) ** 2
    forward_error, central_error = [], []
    for h in steps.astype(dtype):
        forward = (np.tanh(x + h) - np.tanh(x)) / h
        central = (np.tanh(x + h) - np.tanh(x - h)) / (dtype(2) * h)
        forward_error.append(abs(float(forward) - exact))
        central_error.append(abs(float(central) - exact))
    return steps, np.array(forward_error), np.array(central_error)


def step_size_figure():
    """The V-shaped error-versus-step curves, float64 and float32."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, dtype in zip(axes, (np.float64, np.float32), strict=True):
        steps, forward_error, central_error = step_size_errors(dtype)
        floor = np.finfo(dtype).tiny
        ax.loglog(steps, np.maximum(forward_error, floor), "o-", ms=3, label="forward")
        ax.loglog(steps, np.maximum(central_error, floor), "s-", ms=3, label="central")
        ax.axvline(1e-5, color="grey", ls=":", lw=1)
        ax.set_title(f"{np.dtype(dtype).name}")
        ax.set_xlabel("step size h")
        ax.set_ylim(1e-13, 10)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("|error| of d tanh(x)/dx at x = 0.5")
    axes[0].legend()
    fig.suptitle("Round-off (left of the V) against truncation (right of the V)")
    fig.tight_layout()
    return fig


FIGURES = {"00_step_size_error.svg": step_size_figure}
