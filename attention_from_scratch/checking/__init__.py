"""How the package checks itself: the finite-difference gradient checker
(``gradcheck``) and the table of pairs that ``verify`` runs (``verify``)."""
