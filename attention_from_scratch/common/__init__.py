"""Shared by both mirrors: input checks (``validate``), mask builders
(``masks``), every parameter layout and initialiser (``params``), and the
worker threads ``core`` runs independent chunks on (``parallel``)."""
