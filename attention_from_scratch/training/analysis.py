"""Measuring what a trained model's heads do (Chapter 7).

Teacher-forced forward passes on held-out pairs give every layer's and
head's attention weights; the statistics below average them:

- ``on_aligned``: a cross-attention head's weight on the source word that
  the target word being produced translates (reversal: mirror position);
- ``local``: a self-attention head's weight within one position of the
  query, ``|i - j| <= 1``;
- ``distance``: a self-attention head's mean ``|i - j|``, weighted.

Each is compared with its value for uniform attention (``1 / S`` on the
``S`` visible keys, :func:`uniform_weights`): on sentences of a few words
a head that ignores content already puts about half its weight within
one position, so "local" means clearly above that baseline.
"""

import numpy as np

from attention_from_scratch.core import transformer
from attention_from_scratch.training.tasks import (
    ADJECTIVES,
    DETERMINERS,
    INTRANSITIVE,
    NOUNS,
    PAD,
    PREPOSITIONS,
    TRANSITIVE,
    make_batch,
)

OUTCOMES = ("right", "stopped early", "ran long", "wrong words")


def _english_to_spanish():
    pairs = [(english, spanish) for spanish, (_, english) in NOUNS.items()]
    pairs += [(e, m) for m, f, e in ADJECTIVES] + [(e, f) for m, f, e in ADJECTIVES]
    pairs += [(article, spanish) for (article, _), spanish in DETERMINERS.items()]
    for table in (INTRANSITIVE, TRANSITIVE, PREPOSITIONS):
        for spanish, english in table.items():
            spanish_words, english_words = spanish.split(), english.split()
            if len(spanish_words) == len(english_words):     # junto a -> next to
                pairs += list(zip(english_words, spanish_words, strict=True))
            else:                                            # se sentó -> sat
                pairs += [(e, spanish_words[-1]) for e in english_words]
    table = {}
    for english, spanish in pairs:
        table.setdefault(english, set()).add(spanish)
    return table


ENGLISH_TO_SPANISH = _english_to_spanish()


def alignment(task, source, target):
    """For each target word, the index of the source word it comes from.

    Reversal: the mirror position. Translation: the dictionary word, the
    k-th occurrence for the k-th time an English word repeats ("the ...
    the" -> "el ... la").

    Examples
    --------
    >>> from attention_from_scratch.training.tasks import make_task
    >>> task = make_task("translation")
    >>> alignment(task, "el gato negro duerme".split(), "the black cat sleeps".split())
    [0, 2, 1, 3]
    """
    if task.name == "reversal":
        return [len(source) - 1 - i for i in range(len(target))]
    if task.name != "translation":
        raise ValueError(f"alignment is defined for reversal and translation, not {task.name}")
    out = []
    for t, word in enumerate(target):
        candidates = [j for j, w in enumerate(source) if w in ENGLISH_TO_SPANISH[word]]
        out.append(candidates[target[:t].count(word)])
    return out


def outcome(output, target):
    """How a greedy output compares with its target: one of ``OUTCOMES``.

    Exact match counts every kind of failure the same; this tells them
    apart. ``"stopped early"``: the model emitted ``<eos>`` before the
    target's length (shorter output); ``"ran long"``: it ended later, or
    never within the decoding budget; ``"wrong words"``: the right length
    with at least one wrong word.

    Examples
    --------
    >>> [outcome(list(o), list("abc")) for o in ("abc", "ab", "abcd", "abd")]
    ['right', 'stopped early', 'ran long', 'wrong words']
    """
    if output == target:
        return "right"
    if len(output) < len(target):
        return "stopped early"
    if len(output) > len(target):
        return "ran long"
    return "wrong words"


def outcomes_by_length(outputs, pairs):
    """Per source length, the fraction of each of ``OUTCOMES``.

    Returns
    -------
    table : dict of int -> dict of str -> float
        Each inner dict holds every outcome (0.0 if none) and sums to 1.
    """
    counts = {}
    for output, (source, target) in zip(outputs, pairs, strict=True):
        row = counts.setdefault(len(source), dict.fromkeys(OUTCOMES, 0))
        row[outcome(output, target)] += 1
    return {length: {kind: n / sum(row.values()) for kind, n in row.items()}
            for length, row in sorted(counts.items())}


def attention_on(params, pairs, *, task, settings):
    """Every layer's and head's weights for teacher-forced ``pairs``.

    Returns the batch and the dict of ``core.transformer.attention_weights``.
    """
    batch = make_batch(task, pairs)
    if task.model == "encoder_decoder":
        _, cache = transformer.encoder_decoder_forward(
            params, src=batch.src, tgt=batch.inputs, n_heads=settings.n_heads,
            norm=settings.norm, pad_id=PAD)
    else:
        _, cache = transformer.decoder_only_forward(
            params, tokens=batch.inputs, n_heads=settings.n_heads, norm=settings.norm,
            pad_id=PAD)
    return batch, transformer.attention_weights(cache)


def uniform_weights(pairs, *, task, settings):
    """The weights of attention that ignores content: ``1 / S`` on each of
    the ``S`` visible keys, in the layout of :func:`attention_on`.

    The baseline for :func:`head_table`: a head "attends to X" only if it
    puts clearly more weight on X than this does. Visible keys are the
    real (non-padding) source words, for the encoder's self-attention
    and the decoder's cross-attention alike.

    Examples
    --------
    >>> from attention_from_scratch.training.loop import Settings, task_of
    >>> settings = Settings(task="reversal", n_layers=1, n_heads=2)
    >>> pairs = [("1 2 3".split(), "3 2 1".split()), ("4 5".split(), "5 4".split())]
    >>> w = uniform_weights(pairs, task=task_of(settings), settings=settings)
    >>> w["dec.0.cross"][1, 0, 0].tolist()          # source "4 5" + padding
    [0.5, 0.5, 0.0]
    """
    batch = make_batch(task, pairs)
    visible = (batch.src != PAD).astype(float)                             # (B, S)
    rows = visible / visible.sum(axis=-1, keepdims=True)                   # (B, S)
    n_sequences, s_padded = batch.src.shape            # S padded: the longest source
    t_padded = batch.inputs.shape[1]
    shape = (n_sequences, settings.n_heads)
    weights = {}
    for layer in range(settings.n_layers):
        weights[f"enc.{layer}"] = np.broadcast_to(rows[:, None, None, :],
                                                  shape + (s_padded, s_padded))  # (B, H, S, S)
        weights[f"dec.{layer}.cross"] = np.broadcast_to(rows[:, None, None, :],
                                                        shape + (t_padded, s_padded))
    return weights


def head_table(params, pairs, *, task, settings, uniform=False):
    """Per layer and head: ``on_aligned`` (cross-attention), ``local`` and
    ``distance`` (encoder self-attention), averaged over ``pairs``.

    Parameters
    ----------
    uniform : bool, keyword-only
        Measure :func:`uniform_weights` instead of the model's weights
        (``params`` is then not read): the value each statistic takes for
        attention that looks at nothing in particular.

    Returns
    -------
    table : dict of str -> (L, H) ndarray
    """
    if uniform:
        weights = uniform_weights(pairs, task=task, settings=settings)
    else:
        _, weights = attention_on(params, pairs, task=task, settings=settings)
    n_layers = settings.n_layers
    n_heads = settings.n_heads
    on_aligned = np.zeros((n_layers, n_heads))
    local = np.zeros((n_layers, n_heads))
    distance = np.zeros((n_layers, n_heads))
    n_queries = n_positions = 0
    for b, (source, target) in enumerate(pairs):
        aligned = alignment(task, source, target)
        s = len(source)
        offsets = np.abs(np.arange(s)[:, None] - np.arange(s)[None, :])       # (S, S)
        for layer in range(n_layers):
            cross = weights[f"dec.{layer}.cross"][b]                           # (H, T, S)
            on_aligned[layer] += sum(cross[:, t, j] for t, j in enumerate(aligned))
            own = weights[f"enc.{layer}"][b][:, :s, :s]                        # (H, S, S)
            local[layer] += (own * (offsets <= 1)).sum(axis=(-1, -2))
            distance[layer] += (own * offsets).sum(axis=(-1, -2))
        n_queries += len(aligned)
        n_positions += s
    return {"on_aligned": on_aligned / n_queries, "local": local / n_positions,
            "distance": distance / n_positions}
