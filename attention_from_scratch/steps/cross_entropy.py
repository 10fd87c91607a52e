"""Softmax cross-entropy over the vocabulary, padding ignored (Chapter 7).

For logits ``z (..., V)`` and target ids ``y (...)``, the loss at one
position is ``-log softmax(z)[y] = log sum_j exp(z_j) - z_y``, computed as
``log sum_j exp(z_j - m) + m - z_y`` with ``m = max_j z_j`` so that no
exponential overflows. The loss is the mean over the *real* positions:
those whose target is ``ignore_id`` (padding) contribute nothing, neither
to the sum nor to the count. ``ignore_id`` is the padding id seen from the
loss's side: the model calls the same token ``pad_id`` (a key to mask),
and the training loop passes ``PAD`` as both.

The gradient per real position is ``(softmax(z) - onehot(y)) / N``, the
softmax Jacobian and the log's derivative cancelling to a difference.
"""

from typing import NamedTuple

import numpy as np

from attention_from_scratch.common.validate import check_cross_entropy_inputs, check_gradient


class CrossEntropyCache(NamedTuple):
    probs: np.ndarray     # (..., V) softmax of the logits
    targets: np.ndarray   # (...,)
    real: np.ndarray      # (...,) bool: positions that count
    n_real: int


def cross_entropy_forward(logits, *, targets, ignore_id=None):
    """Mean cross-entropy of ``softmax(logits)`` against ``targets``.

    Parameters
    ----------
    logits : (..., V) array_like
    targets : (...,) array_like of int, keyword-only
        Ids in ``[0, V)``, or ``ignore_id``.
    ignore_id : int, keyword-only, optional
        Targets equal to it are left out of the mean (default: none).
        Named for what it does to the *targets*; the model's ``pad_id``
        names what padding does to the *inputs* (masked as a key). The
        training loop passes the same id to both, ``PAD = 0``, and also
        writes it into a decoder-only model's targets at the positions
        that read the source, so those are not predicted either.

    Returns
    -------
    loss : () ndarray, float64
    cache : CrossEntropyCache

    See Also
    --------
    cross_entropy_backward

    Examples
    --------
    Uniform logits cost ``log V`` per token, whatever the target:

    >>> loss, _ = cross_entropy_forward(np.zeros((2, 3, 5)),
    ...                                 targets=[[1, 4, 0], [2, 0, 0]], ignore_id=0)
    >>> bool(np.isclose(loss, np.log(5)))
    True
    """
    logits, targets, real = check_cross_entropy_inputs(logits, targets, ignore_id,
                                                       dtype=np.float64)
    n_real = int(real.sum())
    probs = np.empty_like(logits)                                  # (..., V)
    total = 0.0
    for position in np.ndindex(targets.shape):
        z = logits[position]                                       # (V,)
        m = z.max()
        log_z = np.log(np.exp(z - m).sum()) + m                    # log sum exp, stable
        probs[position] = np.exp(z - log_z)
        if real[position]:
            total += log_z - z[targets[position]]
    return np.array(total / n_real), CrossEntropyCache(probs, targets, real, n_real)


def cross_entropy_backward(dloss, cache):
    """Gradient ``dlogits = dloss * (softmax - onehot) / N`` on real rows, 0 on padding."""
    dloss = check_gradient("dloss", dloss, (), "a scalar", dtype=np.float64)
    dlogits = np.zeros_like(cache.probs)                           # (..., V)
    for position in np.ndindex(cache.targets.shape):
        if cache.real[position]:
            dlogits[position] = cache.probs[position]
            dlogits[position][cache.targets[position]] -= 1.0
    return dlogits * (dloss / cache.n_real)
