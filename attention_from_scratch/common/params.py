"""Parameter dicts of the Transformer blocks (Chapter 5).

A block's parameters are one flat dict whose keys name the sub-layer and
the parameter, ``"attn.w_q"``, ``"ln1.gamma"``, ``"ffn.w_1"`` ...: plain
arrays, so the gradient checker, ``verify`` and an optimiser need to know
nothing about blocks. Each sub-layer receives its own entries with the
prefix removed, and its gradients are put back under the same prefix.
The layouts below give every key's shape in the shape alphabet.
"""

import numpy as np

ATTENTION_LAYOUTS = {"w_q": ("D", "D"), "b_q": ("D",), "w_k": ("D", "D"), "b_k": ("D",),
                     "w_v": ("D", "D"), "b_v": ("D",), "w_o": ("D", "D"), "b_o": ("D",)}
NORM_LAYOUTS = {"gamma": ("D",), "beta": ("D",)}
FFN_LAYOUTS = {"w_1": ("D", "F"), "b_1": ("F",), "w_2": ("F", "D"), "b_2": ("D",)}
NORMS = ("post", "pre")


def with_prefix(prefix, params):
    """``{"w_q": a}`` -> ``{"attn.w_q": a}`` for ``prefix="attn"``.

    Examples
    --------
    >>> with_prefix("ln1", {"gamma": 1, "beta": 0})
    {'ln1.gamma': 1, 'ln1.beta': 0}
    """
    return {f"{prefix}.{key}": value for key, value in params.items()}


def sub_params(params, prefix):
    """The entries of ``params`` under ``prefix``, prefix removed.

    Examples
    --------
    >>> sub_params({"ln1.gamma": 1, "ln2.gamma": 2}, "ln2")
    {'gamma': 2}
    """
    start = f"{prefix}."
    return {key[len(start):]: value for key, value in params.items() if key.startswith(start)}


def block_layouts(parts):
    """Flat layouts from ``[(prefix, layouts), ...]``."""
    return {f"{prefix}.{key}": dims for prefix, layouts in parts for key, dims in layouts.items()}


ENCODER_LAYOUTS = block_layouts([("attn", ATTENTION_LAYOUTS), ("ln1", NORM_LAYOUTS),
                                 ("ffn", FFN_LAYOUTS), ("ln2", NORM_LAYOUTS)])
DECODER_LAYOUTS = block_layouts([("self_attn", ATTENTION_LAYOUTS), ("ln1", NORM_LAYOUTS),
                                 ("cross_attn", ATTENTION_LAYOUTS), ("ln2", NORM_LAYOUTS),
                                 ("ffn", FFN_LAYOUTS), ("ln3", NORM_LAYOUTS)])


def check_norm(norm):
    """Refuse anything but ``"post"`` or ``"pre"``."""
    if norm not in NORMS:
        raise ValueError(f'norm must be "post" or "pre", got {norm!r}')


def init_norm_params(d_model):
    """Layer-norm gain 1 and bias 0: the identity on normalised vectors."""
    return {"gamma": np.ones(d_model), "beta": np.zeros(d_model)}


def count_params(params):
    """Total number of scalars in a parameter dict.

    Examples
    --------
    >>> count_params({"a": np.zeros((2, 3)), "b": np.zeros(3)})
    9
    """
    return int(sum(np.size(value) for value in params.values()))
