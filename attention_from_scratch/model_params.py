"""Parameters of whole models (Chapter 7), in any dtype.

A model's parameters are one flat dict, like a block's
(:mod:`attention_from_scratch.block_params`), its keys prefixed by where
they sit: ``"embed"``, ``"enc.0.attn.w_q"``, ``"dec.1.cross_attn.w_o"``,
``"out.w"`` ... So the gradient checker, the optimiser and a ``.npz``
checkpoint treat a whole model as they treat one array dict.

Keys of an encoder–decoder: ``embed (V, D)`` (one vocabulary for source
and target), ``enc.{i}.*`` and ``dec.{i}.*`` for each block, with
``norm="pre"`` the stacks' final layer norms ``enc_norm.*`` and
``dec_norm.*``, then the output projection ``out.w (V, D)`` (left out
when tied to ``embed``) and ``out.b (V,)``. A decoder-only model has
``embed``, ``block.{i}.*`` (encoder blocks used with the causal mask),
``final_norm.*`` for pre-norm, and the output projection.
"""

import numpy as np

from attention_from_scratch.block_params import (
    DECODER_LAYOUTS,
    ENCODER_LAYOUTS,
    NORM_LAYOUTS,
    check_norm,
    init_norm_params,
    with_prefix,
)
from attention_from_scratch.steps.decoder import init_decoder_params
from attention_from_scratch.steps.encoder import init_encoder_params


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
