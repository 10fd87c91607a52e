"""Helpers for the chapters: the running example sentences (``example``),
plot styling (``plotting``) and ``show_source`` (``source``); and the book
as a website (``website``, ``python -m attention_from_scratch book``)."""
