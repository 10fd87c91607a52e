"""Shared by both mirrors: input checks (``validate``), mask builders
(``masks``) and every parameter layout and initialiser (``params``)."""
