"""Every parameter layout and initialiser, shared by ``steps`` and ``core``.

Single-head self-attention (Chapter 1) and multi-head attention
(Chapter 4) have flat dicts ``{"w_q": ..., "b_q": ...}``. A block's
(Chapter 5) parameters are one flat dict whose keys name the sub-layer and
the parameter, ``"attn.w_q"``, ``"ln1.gamma"``, ``"ffn.w_1"`` ...: plain
arrays, so the gradient checker, ``verify`` and an optimiser need to know
nothing about blocks. Each sub-layer receives its own entries with the
prefix removed, and its gradients are put back under the same prefix.
The layouts below give every key's shape in the shape alphabet.
"""

import numpy as np

from attention_from_scratch.common.validate import check_int, check_norm

SELF_ATTENTION_LAYOUTS = {"w_q": ("D", "Dk"), "b_q": ("Dk",), "w_k": ("D", "Dk"),
                          "b_k": ("Dk",), "w_v": ("D", "Dv"), "b_v": ("Dv",)}
ATTENTION_LAYOUTS = {"w_q": ("D", "D"), "b_q": ("D",), "w_k": ("D", "D"), "b_k": ("D",),
                     "w_v": ("D", "D"), "b_v": ("D",), "w_o": ("D", "D"), "b_o": ("D",)}
NORM_LAYOUTS = {"gamma": ("D",), "beta": ("D",)}
FFN_LAYOUTS = {"w_1": ("D", "F"), "b_1": ("F",), "w_2": ("F", "D"), "b_2": ("D",)}
# weights are (D_in, D_out): y = x @ w + b


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


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def init_self_attention_params(d_model, d_k, d_v, *, rng):
    """Random projections for ``self_attention_forward`` (Chapter 1).

    Parameters
    ----------
    d_model, d_k, d_v : int
        ``D``, ``Dk`` and ``Dv``.
    rng : numpy.random.Generator, keyword-only

    Returns
    -------
    params : dict of str -> ndarray, float64
        The keys of ``SELF_ATTENTION_LAYOUTS``. Weights drawn from
        ``N(0, 1 / D)``, so a unit-variance ``x`` gives unit-variance
        queries, keys and values; biases zero.

    Examples
    --------
    >>> params = init_self_attention_params(8, 4, 3, rng=np.random.default_rng(0))
    >>> params["w_q"].shape, params["b_v"].shape
    ((8, 4), (3,))
    """
    for name, value in (("d_model", d_model), ("d_k", d_k), ("d_v", d_v)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    _check_rng(rng)
    std = 1.0 / np.sqrt(d_model)
    return {
        "w_q": rng.normal(scale=std, size=(d_model, d_k)), "b_q": np.zeros(d_k),
        "w_k": rng.normal(scale=std, size=(d_model, d_k)), "b_k": np.zeros(d_k),
        "w_v": rng.normal(scale=std, size=(d_model, d_v)), "b_v": np.zeros(d_v),
    }


def init_multi_head_params(d_model, *, rng):
    """Random multi-head ``params``: weights ``N(0, 1/D)``, biases zero.

    Unit-variance inputs give unit-variance projections. The shapes do not
    depend on the number of heads: ``H`` only decides how the columns are
    split. The keys are those of ``ATTENTION_LAYOUTS``.
    """
    d_model = check_int("d_model", d_model)
    _check_rng(rng)
    std = 1.0 / np.sqrt(d_model)
    return {key: rng.normal(scale=std, size=(d_model,) * 2) if key[0] == "w"
            else np.zeros(d_model) for key in ATTENTION_LAYOUTS}


def init_feed_forward_params(d_model, d_ff, *, rng):
    """Weights ``N(0, 1 / D_in)``, biases zero: outputs of about unit variance.

    Parameters
    ----------
    d_model, d_ff : int
        ``D`` and ``F``.
    rng : numpy.random.Generator, keyword-only

    Returns
    -------
    params : dict
        ``w_1`` (D, F), ``b_1`` (F,), ``w_2`` (F, D), ``b_2`` (D,), float64.
    """
    return {"w_1": rng.normal(size=(d_model, d_ff)) / np.sqrt(d_model),
            "b_1": np.zeros(d_ff),
            "w_2": rng.normal(size=(d_ff, d_model)) / np.sqrt(d_ff),
            "b_2": np.zeros(d_model)}


def init_encoder_params(d_model, d_ff, *, rng):
    """Parameters of one encoder block, with the keys of ``ENCODER_LAYOUTS``.

    Parameters
    ----------
    d_model, d_ff : int
        ``D`` and ``F`` (the original Transformer: ``F = 4 D``).
    rng : numpy.random.Generator, keyword-only
    """
    return {**with_prefix("attn", init_multi_head_params(d_model, rng=rng)),
            **with_prefix("ln1", init_norm_params(d_model)),
            **with_prefix("ffn", init_feed_forward_params(d_model, d_ff, rng=rng)),
            **with_prefix("ln2", init_norm_params(d_model))}


def init_decoder_params(d_model, d_ff, *, rng):
    """Parameters of one decoder block, with the keys of ``DECODER_LAYOUTS``."""
    return {**with_prefix("self_attn", init_multi_head_params(d_model, rng=rng)),
            **with_prefix("ln1", init_norm_params(d_model)),
            **with_prefix("cross_attn", init_multi_head_params(d_model, rng=rng)),
            **with_prefix("ln2", init_norm_params(d_model)),
            **with_prefix("ffn", init_feed_forward_params(d_model, d_ff, rng=rng)),
            **with_prefix("ln3", init_norm_params(d_model))}


# Parameters of whole models (Chapter 7), in any dtype.
#
# A model's parameters are one flat dict, like a block's (above),
# its keys prefixed by where
# they sit: ``"embed"``, ``"enc.0.attn.w_q"``, ``"dec.1.cross_attn.w_o"``,
# ``"out.w"`` ... So the gradient checker, the optimiser and a ``.npz``
# checkpoint treat a whole model as they treat one array dict.
#
# Keys of an encoder–decoder: ``embed (V, D)`` (one vocabulary for source
# and target), ``enc.{i}.*`` and ``dec.{i}.*`` for each block, with
# ``norm="pre"`` the stacks' final layer norms ``enc_norm.*`` and
# ``dec_norm.*``, then the output projection ``out.w (V, D)`` (left out
# when tied to ``embed``) and ``out.b (V,)``. A decoder-only model has
# ``embed``, ``block.{i}.*`` (encoder blocks used with the causal mask),
# ``final_norm.*`` for pre-norm, and the output projection.


def _output_layouts(tied):
    return {"out.b": ("V",)} if tied else {"out.w": ("V", "D"), "out.b": ("V",)}


def encoder_decoder_layouts(n_enc, n_dec, *, norm="post", tied=False):
    """Every key's shape letters for an encoder–decoder model."""
    check_norm(norm)
    layouts = {"embed": ("V", "D")}
    for i in range(n_enc):
        layouts.update(with_prefix(f"enc.{i}", ENCODER_LAYOUTS))
    if norm == "pre":
        layouts.update(with_prefix("enc_norm", NORM_LAYOUTS))
    for i in range(n_dec):
        layouts.update(with_prefix(f"dec.{i}", DECODER_LAYOUTS))
    if norm == "pre":
        layouts.update(with_prefix("dec_norm", NORM_LAYOUTS))
    return {**layouts, **_output_layouts(tied)}


def decoder_only_layouts(n_layers, *, norm="post", tied=False):
    """Every key's shape letters for a decoder-only model."""
    check_norm(norm)
    layouts = {"embed": ("V", "D")}
    for i in range(n_layers):
        layouts.update(with_prefix(f"block.{i}", ENCODER_LAYOUTS))
    if norm == "pre":
        layouts.update(with_prefix("final_norm", NORM_LAYOUTS))
    return {**layouts, **_output_layouts(tied)}


def _embedding_and_output(vocab, d_model, tied, rng):
    # N(0, 1/D): times sqrt(D) in the forward (Vaswani et al. 2017, 3.4), a
    # token vector has entries of about 1, like the positional encoding's
    params = {"embed": rng.normal(scale=d_model ** -0.5, size=(vocab, d_model))}
    if not tied:
        params["out.w"] = rng.normal(scale=d_model ** -0.5, size=(vocab, d_model))
    params["out.b"] = np.zeros(vocab)
    return params


def init_encoder_decoder_params(vocab, d_model, d_ff, *, n_enc, n_dec, norm="post",
                                tied=False, rng, dtype=np.float64):
    """Random parameters of an encoder–decoder, every array of ``dtype``.

    Examples
    --------
    >>> params = init_encoder_decoder_params(7, 4, 6, n_enc=1, n_dec=2, norm="pre",
    ...                                      rng=np.random.default_rng(0),
    ...                                      dtype=np.float32)
    >>> set(params) == set(encoder_decoder_layouts(1, 2, norm="pre"))
    True
    >>> {a.dtype for a in params.values()} == {np.dtype(np.float32)}
    True
    """
    check_norm(norm)
    params = {"embed": None}
    for i in range(n_enc):
        params.update(with_prefix(f"enc.{i}", init_encoder_params(d_model, d_ff, rng=rng)))
    if norm == "pre":
        params.update(with_prefix("enc_norm", init_norm_params(d_model)))
    for i in range(n_dec):
        params.update(with_prefix(f"dec.{i}", init_decoder_params(d_model, d_ff, rng=rng)))
    if norm == "pre":
        params.update(with_prefix("dec_norm", init_norm_params(d_model)))
    params.update(_embedding_and_output(vocab, d_model, tied, rng))
    return {key: np.asarray(value, dtype=dtype) for key, value in params.items()}


def init_decoder_only_params(vocab, d_model, d_ff, *, n_layers, norm="post", tied=False,
                             rng, dtype=np.float64):
    """Random parameters of a decoder-only model, every array of ``dtype``.

    Examples
    --------
    >>> params = init_decoder_only_params(5, 4, 6, n_layers=2, tied=True,
    ...                                   rng=np.random.default_rng(0))
    >>> set(params) == set(decoder_only_layouts(2, tied=True))
    True
    """
    check_norm(norm)
    params = {"embed": None}
    for i in range(n_layers):
        params.update(with_prefix(f"block.{i}", init_encoder_params(d_model, d_ff, rng=rng)))
    if norm == "pre":
        params.update(with_prefix("final_norm", init_norm_params(d_model)))
    params.update(_embedding_and_output(vocab, d_model, tied, rng))
    return {key: np.asarray(value, dtype=dtype) for key, value in params.items()}


def count_layers(params, prefix):
    """How many blocks ``prefix.0``, ``prefix.1`` ... ``params`` holds."""
    n = 0
    while any(key.startswith(f"{prefix}.{n}.") for key in params):
        n += 1
    return n
