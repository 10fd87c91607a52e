"""The vectorised mirror of ``steps``: same modules, names and signatures;
batched matmuls, no Python loops over data, dtype preserved."""

from . import (
    attention,
    convolution,
    decoder,
    encoder,
    feed_forward,
    flash_attention,
    layer_norm,
    linear,
    linformer,
    local_attention,
    multi_head,
    performer,
    positional_encoding,
    recurrent,
    residual,
    self_attention,
    softmax,
)

__all__ = [
    "attention",
    "convolution",
    "decoder",
    "encoder",
    "feed_forward",
    "flash_attention",
    "layer_norm",
    "linear",
    "linformer",
    "local_attention",
    "multi_head",
    "performer",
    "positional_encoding",
    "recurrent",
    "residual",
    "self_attention",
    "softmax",
]
