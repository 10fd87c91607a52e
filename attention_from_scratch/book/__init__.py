"""Helpers for the chapters: the running example sentences (``example``),
plot styling (``plotting``) and ``show_source`` (``source``)."""
