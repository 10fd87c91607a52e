"""Summaries of rows of attention weights (Chapters 2 and 6).

How sharp is a row of weights? Its entropy says it in one number: 0 when
all the weight sits on one key, ``ln S`` when it is spread evenly over
``S`` keys.
"""

import numpy as np


def row_entropy(weights):
    """Entropy ``-sum_j w_j ln w_j`` of each row, with ``0 ln 0 = 0``.

    Parameters
    ----------
    weights : (..., S) ndarray
        Rows that sum to 1.

    Returns
    -------
    entropy : (...) ndarray
        From 0 (all weight on one key) to ``ln S`` (uniform), in nats.

    Examples
    --------
    >>> entropy = row_entropy(np.array([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]]))
    >>> bool(entropy[0] == 0.0 and np.isclose(entropy[1], np.log(4)))
    True
    """
    log_w = np.log(weights, out=np.zeros_like(weights), where=weights > 0)
    return -(weights * log_w).sum(axis=-1)
