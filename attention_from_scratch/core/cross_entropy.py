"""Softmax cross-entropy, vectorised mirror of ``steps.cross_entropy``.

Same contract; every position at once, dtype of the logits kept.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_cross_entropy_inputs, check_gradient
from attention_from_scratch.core.softmax import stable_row_max

__all__ = ["CrossEntropyCache", "cross_entropy_backward", "cross_entropy_forward"]


class CrossEntropyCache(NamedTuple):
    probs: np.ndarray     # (..., V) softmax of the logits
    targets: np.ndarray   # (...,)
    real: np.ndarray      # (...,) bool: positions that count
    n_real: int


def cross_entropy_forward(logits, *, targets, ignore_id=None):
    """Mean cross-entropy over the real positions, all rows at once.

    Parameters as ``steps.cross_entropy.cross_entropy_forward``:
    positions whose target is ``ignore_id`` are left out. It is the
    padding id seen from the loss (the model's ``pad_id``, masked as a
    key); the training loop passes ``PAD`` as both.

    Examples
    --------
    >>> loss, _ = cross_entropy_forward(np.float32([[0, 0, 9]]), targets=[2])
    >>> bool(loss < 1e-3)
    True
    """
    logits, targets, real = check_cross_entropy_inputs(logits, targets, ignore_id)
    n_real = int(real.sum())
    shifted = logits - stable_row_max(logits, -1)                  # (..., V)
    exp = np.exp(shifted)
    total = exp.sum(axis=-1, keepdims=True)                        # (..., 1)
    log_probs = shifted - np.log(total)                            # (..., V)
    picked = np.take_along_axis(log_probs, np.where(real, targets, 0)[..., None],
                                axis=-1)[..., 0]                   # (...,)
    loss = -(picked * real).sum(dtype=np.float64) / n_real
    return np.array(loss), CrossEntropyCache(exp / total, targets, real, n_real)


def cross_entropy_backward(dloss, cache):
    """``dlogits = dloss * (softmax - onehot) / N`` on real rows, 0 on padding."""
    dloss = check_gradient("dloss", dloss, (), "a scalar", dtype=None)
    dlogits = cache.probs * cache.real[..., None]                  # (..., V)
    rows = np.nonzero(cache.real)
    dlogits[rows + (cache.targets[rows],)] -= 1
    dlogits *= dlogits.dtype.type(dloss / cache.n_real)
    return dlogits
