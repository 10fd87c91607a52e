"""The textbook implementations: one concept per module, loops allowed where
the loop is the lesson, always float64."""

from . import attention, linear, softmax

__all__ = ["attention", "linear", "softmax"]
