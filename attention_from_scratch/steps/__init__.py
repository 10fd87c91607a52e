"""The textbook implementations: one concept per module, loops allowed where
the loop is the lesson, always float64."""

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
