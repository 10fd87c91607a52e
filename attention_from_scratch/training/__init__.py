"""Training the Transformer (Chapter 7): the optimiser as pure functions,
seeded toy tasks with held-out sets, and the training loop."""
