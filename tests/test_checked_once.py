"""Data is checked once, at the door.

A public pair checks and converts its inputs in one call, then hands them
to a private body that holds the maths; a pair made of other pairs calls
their bodies, so nothing it has checked is checked again on the way in.
These tests count the calls of the check functions of ``common.validate``
(and of ``inference.decoding``'s own) made by the maths modules during one
forward and backward, and hold each public entry point to one call per
direction.
"""

import importlib
import inspect
import pkgutil
import re
import sys
from collections import Counter

import numpy as np
import pytest

import attention_from_scratch
from attention_from_scratch import core, steps
from attention_from_scratch.common.masks import causal_mask, padding_mask
from attention_from_scratch.common.params import (
    init_decoder_params,
    init_encoder_params,
    init_multi_head_params,
)
from attention_from_scratch.inference import decoding

CHECK = re.compile(r"^_?check_\w+$|^as_float_array$")
MATHS_PACKAGES = ("steps", "core", "inference")   # not the mask builders' own int checks


def _maths_modules():
    prefix = attention_from_scratch.__name__ + "."
    names = [info.name for info in pkgutil.walk_packages(attention_from_scratch.__path__, prefix)
             if info.name.removeprefix(prefix).split(".")[0] in MATHS_PACKAGES]
    return [importlib.import_module(name) for name in names]


def _caller():
    """The name of the function that called a check, past comprehensions."""
    frame = sys._getframe(2)
    while frame.f_code.co_name.startswith("<"):
        frame = frame.f_back
    return frame.f_code.co_name


@pytest.fixture
def check_calls(monkeypatch):
    """A ``Counter`` of the checks called from outside the checks, by name."""
    calls = Counter()
    for module in _maths_modules():
        for name, function in list(vars(module).items()):
            if not (CHECK.match(name) and inspect.isfunction(function)):
                continue

            def counted(*args, _function=function, _name=name, **kwargs):
                if not CHECK.match(_caller()):     # a check's own helpers are its business
                    calls[_name] += 1
                return _function(*args, **kwargs)

            monkeypatch.setattr(module, name, counted)
    return calls


def _rng():
    return np.random.default_rng(10)


@pytest.mark.parametrize("mirror", [steps, core], ids=["steps", "core"])
def test_multi_head_self_attention_checks_once_each_way(mirror, check_calls):
    rng = _rng()
    x, params = rng.normal(size=(2, 5, 8)), init_multi_head_params(8, rng=rng)
    out, cache = mirror.multi_head.self_multi_head_attention_forward(
        x, params, n_heads=2, mask=causal_mask(5))
    assert check_calls == {"check_multi_head_inputs": 1}
    mirror.multi_head.self_multi_head_attention_backward(rng.normal(size=out.shape), cache)
    assert check_calls == {"check_multi_head_inputs": 1, "check_self_attention_gradient": 1}


@pytest.mark.parametrize("mirror", [steps, core], ids=["steps", "core"])
def test_cross_attention_checks_once_each_way(mirror, check_calls):
    rng = _rng()
    x_q, x_kv = rng.normal(size=(2, 3, 6)), rng.normal(size=(2, 4, 6))
    out, cache = mirror.multi_head.multi_head_attention_forward(
        x_q, x_kv, init_multi_head_params(6, rng=rng), n_heads=3)
    mirror.multi_head.multi_head_attention_backward(rng.normal(size=out.shape), cache)
    assert check_calls == {"check_multi_head_inputs": 1, "check_gradient": 1}


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("mirror", [steps, core], ids=["steps", "core"])
def test_encoder_block_checks_once_each_way(mirror, norm, check_calls):
    rng = _rng()
    x = rng.normal(size=(2, 5, 8))
    out, cache = mirror.encoder.encoder_block_forward(
        x, init_encoder_params(8, 12, rng=rng), n_heads=2, norm=norm,
        mask=padding_mask([3, 5], 5))
    mirror.encoder.encoder_block_backward(rng.normal(size=out.shape), cache)
    assert check_calls == {"check_encoder_block_inputs": 1, "check_gradient": 1}


@pytest.mark.parametrize("mirror", [steps, core], ids=["steps", "core"])
def test_decoder_block_checks_once_each_way(mirror, check_calls):
    rng = _rng()
    y, memory = rng.normal(size=(2, 3, 8)), rng.normal(size=(2, 4, 8))
    out, cache = mirror.decoder.decoder_block_forward(
        y, memory, init_decoder_params(8, 12, rng=rng), n_heads=2,
        memory_mask=padding_mask([2, 4], 4))
    mirror.decoder.decoder_block_backward(rng.normal(size=out.shape), cache)
    assert check_calls == {"check_decoder_block_inputs": 1, "check_gradient": 1}


def test_a_cached_decoding_step_checks_once(check_calls):
    rng = _rng()
    layers = [init_encoder_params(8, 12, rng=rng) for _ in range(3)]
    x = rng.normal(size=(2, 5, 8))
    _, kv = decoding.decode_step(x[:, :4], layers, n_heads=2)
    check_calls.clear()
    decoding.decode_step(x[:, 4:], layers, kv, n_heads=2)
    assert check_calls == {"_check_step_inputs": 1}


def test_the_full_pass_of_a_decoder_stack_checks_once(check_calls):
    rng = _rng()
    layers = [init_encoder_params(8, 12, rng=rng) for _ in range(3)]
    decoding.decoder_only_forward(rng.normal(size=(2, 5, 8)), layers, n_heads=2)
    assert check_calls == {"_check_stack_inputs": 1}


PLANTED = [   # a pair that calls a public pair, not its body, checks again
    (core.encoder, "_feed_forward_forward", core.feed_forward.feed_forward_forward,
     "check_feed_forward_inputs"),
    (steps.multi_head, "_attention_forward", steps.attention.attention_forward,
     "check_attention_forward_inputs"),
]


@pytest.mark.parametrize("module, name, public, check", PLANTED,
                         ids=[f"{m.__name__}.{n}" for m, n, _, _ in PLANTED])
def test_a_planted_second_check_is_counted(module, name, public, check, check_calls,
                                           monkeypatch):
    monkeypatch.setattr(module, name, public)
    rng = _rng()
    x = rng.normal(size=(2, 5, 8))
    if module is core.encoder:
        core.encoder.encoder_block_forward(x, init_encoder_params(8, 12, rng=rng), n_heads=2)
        entry = "check_encoder_block_inputs"
    else:
        steps.multi_head.self_multi_head_attention_forward(
            x, init_multi_head_params(8, rng=rng), n_heads=2)
        entry = "check_multi_head_inputs"
    assert check_calls[entry] == 1
    assert check_calls[check] >= 1     # the test above would fail


@pytest.mark.parametrize("model", ["encoder-decoder", "decoder-only"])
def test_greedy_decoding_checks_once_whatever_the_number_of_tokens(model, check_calls):
    from attention_from_scratch.common.params import (
        init_decoder_only_params,
        init_encoder_decoder_params,
    )
    from attention_from_scratch.inference import encoder_decoder

    rng = _rng()
    counts = []
    for max_new in (1, 4):
        check_calls.clear()
        if model == "encoder-decoder":
            params = init_encoder_decoder_params(7, 8, 12, n_enc=1, n_dec=2, rng=rng)
            encoder_decoder.greedy_encoder_decoder(params, [[3, 4, 5], [6, 2, 0]], n_heads=2,
                                                   max_new=max_new, bos=1, eos=2)
        else:
            params = init_decoder_only_params(7, 8, 12, n_layers=2, rng=rng)
            encoder_decoder.greedy_decoder_only(params, [[3, 4, 5], [6]], n_heads=2,
                                                max_new=max_new)
        # each step builds its positions' encoding: two integers checked, no data
        counts.append({name: n for name, n in check_calls.items()
                       if name != "check_positional_arguments"})
    assert counts[0] == counts[1]
    assert counts[0]["check_params"] == 1
