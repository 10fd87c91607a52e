"""Running trained blocks: KV-cache decoding (``decoding``)."""
