"""The running example: "El gato se sentó en la alfombra" (the cat sat on the mat).

Hand-made 8-dimensional embeddings, one feature per axis, so a reader can
read a token's vector and follow "gato" through every chapter. A little
seeded noise keeps words with the same features (``El``, ``la``) apart.
"""

import numpy as np

FEATURES = ("determiner", "noun", "verb", "reflexive", "preposition",
            "animal", "place", "past")

SPANISH = ("El", "gato", "se", "sentó", "en", "la", "alfombra")
ENGLISH = ("the", "cat", "sat", "on", "the", "mat")

_WORD_FEATURES = {
    "El": ("determiner",), "la": ("determiner",), "the": ("determiner",),
    "gato": ("noun", "animal"), "cat": ("noun", "animal"),
    "se": ("reflexive",),
    "sentó": ("verb", "past"), "sat": ("verb", "past"),
    "en": ("preposition",), "on": ("preposition",),
    "alfombra": ("noun", "place"), "mat": ("noun", "place"),
}


def embed(tokens, *, noise=0.1, seed=0):
    """Embeddings of ``tokens``, shape ``(T, 8)``, float64.

    Parameters
    ----------
    tokens : sequence of str
        Words from :data:`SPANISH` or :data:`ENGLISH`.
    noise : float, keyword-only
        Standard deviation of the seeded noise added to the 0/1 features.
    seed : int, keyword-only

    Returns
    -------
    x : (T, 8) ndarray

    Examples
    --------
    >>> x = embed(SPANISH)
    >>> x.shape == (7, 8) and int(np.argmax(x[1])) in (1, 5)   # gato: noun, animal
    True
    """
    unknown = [t for t in tokens if t not in _WORD_FEATURES]
    if unknown:
        raise ValueError(f"tokens must come from SPANISH or ENGLISH, got {unknown}")
    x = np.zeros((len(tokens), len(FEATURES)))                   # (T, D)
    for row, token in zip(x, tokens, strict=True):
        for feature in _WORD_FEATURES[token]:
            row[FEATURES.index(feature)] = 1.0
    rng = np.random.default_rng(seed)
    return x + noise * rng.normal(size=x.shape)
