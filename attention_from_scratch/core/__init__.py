"""The vectorised mirror of ``steps``: same modules, names and signatures;
batched matmuls, no Python loops over data, dtype preserved."""

from . import attention, linear, softmax

__all__ = ["attention", "linear", "softmax"]
