"""Measuring the models: cost counts, memory, errors of approximations,
layer comparisons, weight statistics and the ``bench`` command."""
