"""Attention from scratch: the attention mechanism of Transformers in NumPy.

Every forward pass comes as a functional pair ``x_forward(...) -> (out,
cache)`` / ``x_backward(dout, cache) -> gradients``, written twice:

- ``attention_from_scratch.steps``: the textbook, explicit, float64;
- ``attention_from_scratch.core``: the same modules, names and signatures,
  vectorised with batched matmuls, dtype preserved.

Shape letters used everywhere:

====  ==========================================================
B     batch
T     query positions
S     key/value positions
D     model width
H     heads
Dh    per-head width, ``D // H``
Dk    key (and query) width of bare attention
Dv    value width of bare attention
F     feed-forward width
...   any leading axes
====  ==========================================================

Anything that attends (or runs a recurrence) needs ``T >= 1``, ``S >= 1``
and no empty leading axis: an empty sequence is refused with a
``ValueError`` naming the argument and its shape
(``common.validate.check_positions``). Position-wise layers map empty
arrays to empty arrays.
"""

__version__ = "0.1.0"
