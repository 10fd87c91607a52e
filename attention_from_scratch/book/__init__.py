"""The book as a website: ``python -m attention_from_scratch book``."""
