"""Figures, written atomically as PNG with matplotlib's non-interactive backend."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from digitlab.io import atomic_write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display needed; never opens a window
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def predictions_grid(images: torch.Tensor, labels: torch.Tensor, preds: torch.Tensor,
                     classes: tuple[str, ...], path: str | Path, n: int = 6) -> None:
    """The tutorial's row of test images titled True/Pred; n is clamped to the batch."""
    plt = _pyplot()
    n = max(1, min(n, len(images)))
    fig, axes = plt.subplots(1, n, figsize=(2 * n, 2.6), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(images[i].cpu().numpy(), cmap="gray")
        wrong = int(preds[i]) != int(labels[i])
        ax.set_title(f"True: {classes[int(labels[i])]}\nPred: {classes[int(preds[i])]}",
                     color="crimson" if wrong else "black", fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path)
