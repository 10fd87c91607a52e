"""Seeded toy tasks with held-out sets (Chapter 7).

Each task makes ``(source, target)`` pairs of words. The held-out pairs
are drawn first, from their own seed, and the training sampler refuses
them, so held-out accuracy measures generalisation, never recall.

- ``reversal``: digits, reversed (encoder–decoder). ``3 1 4 -> 4 1 3``.
- ``sorting``: digits, sorted (decoder-only: the model reads
  ``3 1 4 = `` and continues ``1 3 4 <eos>``).
- ``translation``: a small Spanish grammar and its English rendering,
  with the adjective after the noun in Spanish and before it in English
  (``el gato negro -> the black cat``) and determiners and adjectives
  agreeing with the noun's gender (``la casa negra``). The held-out set
  holds the book's running sentence ``el gato se sentó en la alfombra``.
"""

from typing import NamedTuple

import numpy as np

SPECIALS = ("<pad>", "<bos>", "<eos>", "=")
PAD, BOS, EOS, SEP = range(4)
DIGITS = tuple(str(d) for d in range(10))

# noun: (gender, English)
NOUNS = {"gato": ("m", "cat"), "perro": ("m", "dog"), "pájaro": ("m", "bird"),
         "niño": ("m", "boy"), "hombre": ("m", "man"), "libro": ("m", "book"),
         "casa": ("f", "house"), "mesa": ("f", "table"), "alfombra": ("f", "mat"),
         "niña": ("f", "girl"), "mujer": ("f", "woman"), "silla": ("f", "chair")}
# masculine, feminine, English
ADJECTIVES = [("negro", "negra", "black"), ("blanco", "blanca", "white"),
              ("rojo", "roja", "red"), ("pequeño", "pequeña", "small"),
              ("viejo", "vieja", "old"), ("grande", "grande", "big")]
DETERMINERS = {("the", "m"): "el", ("the", "f"): "la", ("a", "m"): "un", ("a", "f"): "una"}
INTRANSITIVE = {"se sentó": "sat", "duerme": "sleeps", "espera": "waits"}
TRANSITIVE = {"ve": "sees", "busca": "looks for"}
PREPOSITIONS = {"en": "on", "bajo": "under", "junto a": "next to"}
RUNNING_SENTENCE = ("el gato se sentó en la alfombra", "the cat sat on the mat")
CROSSING_SENTENCE = ("el gato negro se sentó en la alfombra", "the black cat sat on the mat")


class Task(NamedTuple):
    name: str
    vocab: tuple             # id -> word; ids 0..3 are SPECIALS
    model: str               # "encoder_decoder" or "decoder_only"
    sample: object           # (rng) -> (source words, target words)
    held_out: list           # pairs never produced in training
    max_len: int             # longest source, in words


def _digits(rng, min_len, max_len):
    return [str(d) for d in rng.integers(0, 10, size=rng.integers(min_len, max_len + 1))]


def _reversal(rng, min_len, max_len):
    source = _digits(rng, min_len, max_len)
    return source, source[::-1]


def _sorting(rng, min_len, max_len):
    source = _digits(rng, min_len, max_len)
    return source, sorted(source)


def _noun_phrase(rng):
    noun = list(NOUNS)[rng.integers(len(NOUNS))]
    gender, english = NOUNS[noun]
    article = ("the", "a")[rng.integers(2)]
    spanish, english = [DETERMINERS[article, gender], noun], [article, english]
    if rng.random() < 0.5:
        masculine, feminine, adjective = ADJECTIVES[rng.integers(len(ADJECTIVES))]
        spanish.append(masculine if gender == "m" else feminine)   # after the noun
        english.insert(1, adjective)                                # before it
    return spanish, english


def _sentence(rng):
    spanish, english = _noun_phrase(rng)
    if rng.random() < 0.6:
        verb = list(INTRANSITIVE)[rng.integers(len(INTRANSITIVE))]
        spanish, english = spanish + verb.split(), english + INTRANSITIVE[verb].split()
        if rng.random() < 0.7:
            preposition = list(PREPOSITIONS)[rng.integers(len(PREPOSITIONS))]
            object_es, object_en = _noun_phrase(rng)
            spanish += preposition.split() + object_es
            english += PREPOSITIONS[preposition].split() + object_en
    else:
        verb = list(TRANSITIVE)[rng.integers(len(TRANSITIVE))]
        object_es, object_en = _noun_phrase(rng)
        spanish += verb.split() + object_es
        english += TRANSITIVE[verb].split() + object_en
    return spanish, english


def _words_of_grammar():
    words = set(NOUNS) | {e for _, e in NOUNS.values()} | set(DETERMINERS.values())
    words |= {"the", "a"} | {w for adjective in ADJECTIVES for w in adjective}
    for table in (INTRANSITIVE, TRANSITIVE, PREPOSITIONS):
        for spanish, english in table.items():
            words |= set(spanish.split()) | set(english.split())
    return tuple(sorted(words))


def _held_out(sampler, rng, n, fixed=()):
    pairs = [(s.split(), t.split()) for s, t in fixed]
    seen = {tuple(s) for s, _ in pairs}
    while len(pairs) < n:
        source, target = sampler(rng)
        if tuple(source) not in seen:
            seen.add(tuple(source))
            pairs.append((source, target))
    return pairs


def _training_sampler(sampler, held_out):
    refused = {tuple(source) for source, _ in held_out}

    def sample(rng):
        while True:
            source, target = sampler(rng)
            if tuple(source) not in refused:
                return source, target
    return sample


TASKS = ("reversal", "sorting", "translation")


def make_task(name, *, seed=0, min_len=2, max_len=8, n_held_out=200, held_out_lengths=None):
    """A task's vocabulary, training sampler and held-out set.

    Parameters
    ----------
    name : {"reversal", "sorting", "translation"}
    seed : int, keyword-only
        Seeds the held-out set (the training batches have their own rng).
    min_len, max_len : int, keyword-only
        Lengths of the digit tasks' training sequences.
    n_held_out : int, keyword-only
    held_out_lengths : (int, int), keyword-only, optional
        Held-out lengths of the digit tasks, default ``(min_len,
        max_len)``; longer than training to test length generalisation.

    Returns
    -------
    task : Task

    Examples
    --------
    >>> task = make_task("translation")
    >>> ("el gato se sentó en la alfombra".split(),
    ...  "the cat sat on the mat".split()) in task.held_out
    True
    >>> rng = np.random.default_rng(1)
    >>> held = {tuple(s) for s, _ in task.held_out}
    >>> any(tuple(task.sample(rng)[0]) in held for _ in range(2000))
    False
    """
    if name not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {name!r}")
    rng = np.random.default_rng([seed, 1])    # held-out stream, apart from training's
    if name == "translation":
        vocab = SPECIALS + _words_of_grammar()
        held_out = _held_out(_sentence, rng, n_held_out,
                             fixed=(RUNNING_SENTENCE, CROSSING_SENTENCE))
        return Task(name, vocab, "encoder_decoder", _training_sampler(_sentence, held_out),
                    held_out, 12)
    make = _reversal if name == "reversal" else _sorting
    low, high = held_out_lengths or (min_len, max_len)
    held_out = _held_out(lambda r: make(r, low, high), rng, n_held_out)
    sample = _training_sampler(lambda r: make(r, min_len, max_len), held_out)
    model = "encoder_decoder" if name == "reversal" else "decoder_only"
    return Task(name, SPECIALS + DIGITS, model, sample, held_out, max(high, max_len))


def encode(task, words):
    """Word list -> list of ids."""
    index = {word: i for i, word in enumerate(task.vocab)}
    return [index[w] for w in words]


def decode(task, ids):
    """Ids -> words, stopping at the first ``<eos>``, skipping padding."""
    words = []
    for i in ids:
        if i == EOS:
            break
        if i != PAD:
            words.append(task.vocab[i])
    return words


def _pad(rows, width=None):
    width = width or max(len(r) for r in rows)
    out = np.full((len(rows), width), PAD, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


class Batch(NamedTuple):
    """Model inputs and the targets the loss compares with, padded with 0.

    One id, ``PAD = 0``, under two names: the model's ``pad_id`` (in
    ``src`` and ``inputs``: a key no query may attend to) and the loss's
    ``ignore_id`` (in ``targets``: a position left out of the mean).
    """

    src: np.ndarray       # (B, S) encoder input; (B, 0) for decoder-only
    inputs: np.ndarray    # (B, T) decoder input
    targets: np.ndarray   # (B, T) next token at each position; PAD = ignored


def make_batch(task, pairs):
    """Pad a list of ``(source, target)`` word pairs into a :class:`Batch`.

    Encoder–decoder: ``src = source``, ``inputs = <bos> target``,
    ``targets = target <eos>``. Decoder-only: the sequence is
    ``source = target <eos>``; ``inputs`` is it without its last token,
    ``targets`` without its first, with the source's predictions ignored
    (the source is given, not predicted).
    """
    if task.model == "encoder_decoder":
        src = _pad([encode(task, s) for s, _ in pairs])
        inputs = _pad([[BOS] + encode(task, t) for _, t in pairs])
        targets = _pad([encode(task, t) + [EOS] for _, t in pairs])
        return Batch(src, inputs, targets)
    rows = [encode(task, s) + [SEP] + encode(task, t) + [EOS] for s, t in pairs]
    tokens = _pad(rows)
    targets = tokens[:, 1:].copy()
    for i, (source, _) in enumerate(pairs):
        targets[i, :len(source)] = PAD     # the positions reading the source
    return Batch(np.zeros((len(pairs), 0), dtype=np.int64), tokens[:, :-1], targets)
