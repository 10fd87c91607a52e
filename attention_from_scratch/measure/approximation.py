"""The fixed ingredients of the cheaper attentions, and how to score them (Chapter 6).

- :func:`random_features`: the random directions of Performer's feature
  map (``steps.performer`` / ``core.performer``).
- :func:`pooling_projection`: a fixed ``(R, S)`` key/value projection for
  Linformer-style attention (``steps.linformer`` / ``core.linformer``):
  each of the ``R`` rows averages a contiguous segment of positions. At
  ``R = S`` it is the identity, so the approximation becomes exact. Wang
  et al. (2020) *learn* their projections; fixed pooling stands in for
  them so the approximation can be measured without training.
- :func:`relative_error`: ``|approx - exact| / |exact|`` (Frobenius).
- :func:`example_inputs`, :func:`approximation_errors`,
  :func:`approximation_runs`: inputs with a known structure, and the
  measurements the chapter makes with them.
"""

import numpy as np

from attention_from_scratch.common.masks import causal_mask
from attention_from_scratch.common.validate import check_int
from attention_from_scratch.core import attention, linformer, local_attention, performer


def random_features(m, d_k, *, rng, orthogonal=True):
    """``M`` random directions in ``Dk`` dimensions, each ``~ N(0, I)``.

    By default they come in blocks of ``Dk`` exactly orthogonal directions
    (each block a random rotation of the axes), with lengths drawn as the
    lengths of Gaussian vectors: every direction is still distributed as
    ``N(0, I)``, so the Performer estimate stays unbiased, but no two
    directions of a block overlap, which lowers its variance. These are
    the orthogonal random features of FAVOR+ (Choromanski et al., 2021);
    ``orthogonal=False`` gives independent ones.

    Parameters
    ----------
    m, d_k : int
        Number of features ``M`` and the key width ``Dk``.
    rng : numpy.random.Generator, keyword-only
    orthogonal : bool, keyword-only
        Orthogonal blocks (default) or independent Gaussian directions.

    Returns
    -------
    features : (M, Dk) ndarray

    Examples
    --------
    >>> w = random_features(6, 3, rng=np.random.default_rng(0))
    >>> w.shape, bool(abs(w[0] @ w[1]) < 1e-12)
    ((6, 3), True)
    """
    m, d_k = check_int("m", m), check_int("d_k", d_k)
    gaussian = rng.normal(size=(m, d_k))
    if not orthogonal:
        return gaussian
    blocks = []
    for start in range(0, m, d_k):
        rows = min(d_k, m - start)
        basis, upper = np.linalg.qr(rng.normal(size=(d_k, d_k)))  # orthonormal columns
        # QR fixes signs by its own convention; undo it, or the directions are biased
        basis *= np.sign(np.diag(upper))
        blocks.append(basis.T[:rows])
    directions = np.concatenate(blocks)                          # (M, Dk), unit rows
    return directions * np.linalg.norm(gaussian, axis=1, keepdims=True)


def pooling_projection(r, s):
    """``(R, S)`` matrix averaging ``R`` contiguous, near-equal segments of ``S``.

    Examples
    --------
    >>> p = pooling_projection(3, 7)
    >>> bool(np.allclose(p.sum(axis=1), 1.0) and np.all((p > 0).sum(axis=0) == 1))
    True
    >>> bool(np.array_equal(pooling_projection(5, 5), np.eye(5)))
    True
    """
    r, s = check_int("r", r), check_int("s", s)
    if r > s:
        raise ValueError(f"r must be at most s = {s}, got {r}")
    segment = np.arange(s) * r // s                              # (S,) segment of position
    projection = (segment[None, :] == np.arange(r)[:, None]).astype(float)   # (R, S)
    return projection / projection.sum(axis=1, keepdims=True)


def relative_error(approx, exact):
    """``|approx - exact|_F / |exact|_F``.

    Examples
    --------
    >>> exact = np.array([3.0, 4.0])
    >>> relative_error(exact, exact) == 0.0 and relative_error(1.1 * exact, exact) > 0.0
    True
    """
    approx, exact = np.asarray(approx, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    if approx.shape != exact.shape:
        raise ValueError(f"approx must have the shape of exact {exact.shape}, "
                         f"got shape {approx.shape}")
    return float(np.linalg.norm(approx - exact) / np.linalg.norm(exact))


METHODS = ("sliding window", "Linformer", "Performer")
INPUT_KINDS = ("local", "smooth", "random")


def example_inputs(kind, t, d, *, rng):
    """Queries, keys and values with a known structure, each ``(T, D)``.

    Parameters
    ----------
    kind : {"local", "smooth", "random"}
        ``"local"``: queries and keys are random Fourier features of the
        position (Rahimi & Recht, 2007), so ``q_i . k_j`` falls off like a
        Gaussian in ``i - j`` and each query attends to its neighbours.
        ``"smooth"``: every column is a sum of three low-frequency sine
        waves, so neighbouring keys are nearly equal: the attention matrix
        is close to low rank. ``"random"``: independent Gaussian entries,
        scaled by 0.5 for queries and keys (soft attention): no structure.
    t, d : int
        Length ``T`` and width ``D`` (even for ``"local"``).
    rng : numpy.random.Generator, keyword-only

    Returns
    -------
    q, k, v : (T, D) ndarray
    """
    t, d = check_int("t", t), check_int("d", d)
    positions = np.arange(t)[:, None]                                   # (T, 1)
    if kind == "local":
        if d % 2:
            raise ValueError(f"d must be even for local inputs, got {d}")
        omega = rng.normal(size=d // 2) / 4.0           # a neighbourhood of about 4 positions
        # |p_i|^2 / sqrt(D) = 8: the score of a query with itself, before the noise
        p = np.concatenate([np.cos(omega * positions), np.sin(omega * positions)], axis=1)
        p *= np.sqrt(16 / np.sqrt(d))                                   # (T, D)
        q = p + 0.1 * rng.normal(size=(t, d))
        k = p + 0.1 * rng.normal(size=(t, d))
    elif kind == "smooth":
        angle = 2 * np.pi * np.arange(1, 4) * positions[..., None] / t      # (T, 1, 3): 1-3 cycles
        q, k = ((np.sin(angle + rng.uniform(0, 2 * np.pi, size=(d, 3)))
                 * rng.normal(size=(d, 3))).sum(axis=-1) / np.sqrt(3)       # (T, D)
                for _ in range(2))
    elif kind == "random":
        q, k = 0.5 * rng.normal(size=(t, d)), 0.5 * rng.normal(size=(t, d))
    else:
        raise ValueError(f"kind must be one of {INPUT_KINDS}, got {kind!r}")
    return q, k, rng.normal(size=(t, d))


def approximate(method, q, k, v, budget, *, rng):
    """Run one cheaper attention with a budget; return its output.

    Parameters
    ----------
    method : {"sliding window", "Linformer", "Performer"}
        Window of ``budget`` keys (causal); ``budget`` pooled keys and
        values (:func:`pooling_projection`); ``budget`` random features.
    q, k, v : (..., T, D) ndarray
    budget : int
    rng : numpy.random.Generator, keyword-only
        Draws Performer's features.

    Returns
    -------
    out : (..., T, D) ndarray
        To be compared with causal attention for ``"sliding window"`` and
        with full attention otherwise (see :func:`exact_reference`).
    """
    if method == "sliding window":
        return local_attention.local_attention_forward(q, k, v, window=budget)[0]
    if method == "Linformer":
        projection = pooling_projection(budget, k.shape[-2])
        return linformer.linformer_attention_forward(q, k, v, projection, projection)[0]
    if method == "Performer":
        features = random_features(budget, q.shape[-1], rng=rng)
        return performer.performer_attention_forward(q, k, v, features=features)[0]
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def exact_reference(method, q, k, v):
    """The exact attention ``method`` approximates: causal for the sliding window."""
    mask = causal_mask(q.shape[-2], k.shape[-2]) if method == "sliding window" else None
    return attention.attention_forward(q, k, v, mask=mask)[0]


def approximation_errors(kind, budgets, *, t=256, d=32, seed=0, draws=5):
    """Relative error of each method against exact attention, per budget.

    Parameters
    ----------
    kind : str
        One of ``INPUT_KINDS``, see :func:`example_inputs`.
    budgets : sequence of int
        Window, rank or number of features.
    t, d, seed : int, keyword-only
    draws : int, keyword-only
        Performer's error is averaged over this many draws of features.

    Returns
    -------
    errors : dict of (len(budgets),) ndarray
        ``METHODS`` -> relative errors on ``example_inputs(kind, t, d)``.
    """
    rng = np.random.default_rng(seed)
    q, k, v = example_inputs(kind, t, d, rng=rng)
    errors = {}
    for method in METHODS:
        exact = exact_reference(method, q, k, v)
        repeats = check_int("draws", draws) if method == "Performer" else 1
        errors[method] = np.array([
            np.mean([relative_error(approximate(method, q, k, v, b, rng=rng), exact)
                     for _ in range(repeats)])
            for b in budgets])
    return errors


def approximation_runs(t, d, *, rng, budget, dtype=np.float32):
    """Forward + backward of exact attention and of each method, ready to time.

    Returns
    -------
    runs : dict of callable
        ``"exact"`` and each of ``METHODS``: zero-argument functions on the
        same random ``(T, D)`` inputs, ``core`` implementations.
    """
    q, k, v, dout = (rng.normal(size=(t, d)).astype(dtype) for _ in range(4))
    projection = pooling_projection(min(budget, t), t).astype(dtype)
    features = random_features(budget, d, rng=rng).astype(dtype)

    def exact():
        _, cache = attention.attention_forward(q, k, v)
        attention.attention_backward(dout, cache)

    def window():
        _, cache = local_attention.local_attention_forward(q, k, v, window=budget)
        local_attention.local_attention_backward(dout, cache)

    def low_rank():
        _, cache = linformer.linformer_attention_forward(q, k, v, projection, projection)
        linformer.linformer_attention_backward(dout, cache)

    def random_feature():
        _, cache = performer.performer_attention_forward(q, k, v, features=features)
        performer.performer_attention_backward(dout, cache)

    return {"exact": exact, "sliding window": window, "Linformer": low_rank,
            "Performer": random_feature}
