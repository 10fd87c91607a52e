"""Figures of Chapter 7: the trained translator's heads (the book's cover)."""

import functools

import matplotlib.pyplot as plt

from attention_from_scratch.book.plotting import heatmap
from attention_from_scratch.training.analysis import attention_on
from attention_from_scratch.training.loop import Settings, new_run, task_of, train
from attention_from_scratch.training.tasks import CROSSING_SENTENCE

# the chapter trains the same model: 4 heads, 2 + 2 layers, D = 64
TRANSLATOR = Settings(task="translation", steps=400, warmup=40)


@functools.cache
def trained_translator():
    """The translator trained until 99 % held-out exact match (seeded)."""
    return train(new_run(TRANSLATOR), eval_every=50, eval_size=200, stop_at=0.99)


def cross_attention_figure(params, settings, pair=None):
    """Cross-attention of every decoder layer (rows) and head (columns).

    Rows of each map: the target word being produced; columns: the
    source words; colour: the weight, on the fixed scale 0 to 1 shared by
    every map (one colour bar).
    """
    task = task_of(settings)
    source, target = pair or tuple(s.split() for s in CROSSING_SENTENCE)
    _, weights = attention_on(params, [(source, target)], task=task, settings=settings)
    n_layers, n_heads = settings.n_layers, settings.n_heads
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(3.0 * n_heads, 3.0 * n_layers),
                             squeeze=False, layout="constrained")
    for layer in range(n_layers):
        cross = weights[f"dec.{layer}.cross"][0]                      # (H, T + 1, S)
        for head in range(n_heads):
            ax = axes[layer, head]
            image = heatmap(ax, cross[head, :len(target)], annotate=False,
                            row_labels=target if head == 0 else [""] * len(target),
                            col_labels=source, title=f"layer {layer + 1}, head {head + 1}")
            ax.title.set_fontsize(9)
            ax.tick_params(labelsize=7)
            if head == 0:
                ax.set_ylabel("target word being produced", fontsize=8)
            if layer == n_layers - 1:
                ax.set_xlabel("source word", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    fig.suptitle(f'Trained cross-attention: "{" ".join(source)}" -> "{" ".join(target)}"',
                 fontsize=10)
    return fig


def translator_heads():
    run = trained_translator()
    return cross_attention_figure(run.params, run.settings)


FIGURES = {"07_translator_heads.png": translator_heads}
