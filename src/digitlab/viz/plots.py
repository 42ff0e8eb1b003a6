"""Figures, written atomically as PNG with matplotlib's non-interactive backend."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from digitlab.i18n import N_
from digitlab.io import atomic_write_bytes
from digitlab.viz.fonts import drawing, tight_layout, tr


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed; never opens a window), unless
    pyplot is already in use or this runs in a Jupyter kernel: a notebook's inline backend
    stays, so that the user's own plt.show() still draws after digitlab has plotted."""
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> None:
    buffer = io.BytesIO()
    with drawing(fig):
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def epoch_axis(ax) -> None:
    """Whole epochs on the x axis, even for one epoch, where a plain MaxNLocator(integer=True)
    falls back to ticks at 0.98, 0.99, ... (it wants two ticks in view)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel(tr(N_("epoch")))


SPLIT_NAMES = (N_("train"), N_("val"), N_("test"))  # legend entries, shown via tr()
DISTINCT_COLORS = 40  # distinct_colors repeats after this many


def distinct_colors(n: int) -> list:
    """n colours, all different up to DISTINCT_COLORS: tab10's, then their light tab20
    partners, then tab20b's 20 (beyond that they repeat; callers vary the line style)."""
    from matplotlib import colormaps

    tab20, tab20b = colormaps["tab20"].colors, colormaps["tab20b"].colors
    palette = [*tab20[0::2], *tab20[1::2], *tab20b[0::2], *tab20b[1::2]]
    return [palette[i % DISTINCT_COLORS] for i in range(n)]


def predictions_grid(images: torch.Tensor, labels: torch.Tensor, preds: torch.Tensor,
                     classes: tuple[str, ...], path: str | Path, n: int = 6) -> None:
    """The tutorial's row of test images titled True/Pred; n is clamped to the batch."""
    plt = pyplot()
    n = max(1, min(n, len(images)))
    fig, axes = plt.subplots(1, n, figsize=(2 * n, 2.6), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(images[i].cpu().numpy(), cmap="gray")
        wrong = int(preds[i]) != int(labels[i])
        ax.set_title(tr(N_("True: {true}\nPred: {pred}")).format(
            true=classes[int(labels[i])], pred=classes[int(preds[i])]),
                     color="crimson" if wrong else "black", fontsize=10)
        ax.axis("off")
    tight_layout(fig)
    save_figure(fig, path)


def new_figure(figsize: tuple[float, float]):
    """A Figure outside pyplot (nothing global: no backend switch, no figure kept alive), with
    an Agg canvas to draw on; returned to Python callers (digitlab.api) or saved."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def curves(history: list[dict], path: str | Path) -> None:
    save_figure(curves_figure(history), path)


def curves_figure(history: list[dict]):
    """Loss and accuracy per epoch for every split logged, and the learning rate."""
    epochs = [r["epoch"] for r in history]
    fig = new_figure((13, 3.6))
    axes = fig.subplots(1, 3)
    for split, style in (("train", "-"), ("val", "--"), ("test", ":")):
        if f"{split}_loss" in history[0]:
            axes[0].plot(epochs, [r[f"{split}_loss"] for r in history], style, marker="o",
                         label=tr(split))
            axes[1].plot(epochs, [100 * r[f"{split}_accuracy"] for r in history], style,
                         marker="o", label=tr(split))
    axes[2].plot(epochs, [r["lr"] for r in history], marker="o", color="tab:purple")
    titles = (N_("loss"), N_("accuracy (%)"), N_("learning rate (end of epoch)"))
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(tr(title))
        epoch_axis(ax)
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    tight_layout(fig)
    return fig


def confusion(matrix: torch.Tensor, classes: tuple[str, ...], path: str | Path) -> None:
    save_figure(confusion_figure(matrix, classes), path)


def confusion_figure(matrix: torch.Tensor, classes: tuple[str, ...]):
    """Counts, and the row-normalized view (each true class sums to 1)."""
    counts = matrix.cpu().float()
    normalized = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    fig = new_figure((13, 5.6))
    axes = fig.subplots(1, 2)
    views = ((axes[0], counts, N_("counts"), "{:.0f}"),
             (axes[1], normalized, N_("row-normalized (recall on the diagonal)"), "{:.2f}"))
    for ax, data, title, fmt in views:
        ax.imshow(data.numpy(), cmap="Blues")
        ax.set_title(tr(title))
        ax.set_xlabel(tr(N_("predicted")))
        ax.set_ylabel(tr(N_("true")))
        ticks = range(len(classes))
        ax.set_xticks(ticks, classes, rotation=45 if len(max(classes, key=len)) > 2 else 0)
        ax.set_yticks(ticks, classes)
        limit = float(data.max()) / 2
        for i in ticks:
            for j in ticks:
                value = float(data[i, j])
                if value:
                    ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=7,
                            color="white" if value > limit else "black")
    tight_layout(fig)
    return fig


def gallery(images: torch.Tensor, labels: torch.Tensor, preds: torch.Tensor,
            confidences: torch.Tensor, classes: tuple[str, ...], path: str | Path,
            title: str = N_("highest-loss test images")) -> None:
    """A grid of images, each titled true / predicted (confidence)."""
    plt = pyplot()
    n = len(images)
    cols = min(8, max(1, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 2.0 * rows + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k].cpu().numpy(), cmap="gray")
            ax.set_title(tr(N_("true {true}\npred {pred} ({confidence:.0f}%)")).format(
                true=classes[int(labels[k])], pred=classes[int(preds[k])],
                confidence=100 * float(confidences[k])), fontsize=8, color="crimson")
    if n == 0:
        axes[0, 0].text(0.5, 0.5, tr(N_("no misclassified images")), ha="center", va="center")
    fig.suptitle(tr(title))
    tight_layout(fig)
    save_figure(fig, path)


def reliability(curves: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                path: str | Path) -> None:
    """A reliability diagram: accuracy against mean confidence per confidence bin, one line per
    entry of `curves` (label -> calibration.confidence_bins(...)); the diagonal is honest."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 5))
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":", label=tr(N_("perfectly calibrated")))
    for (label, (count, confidence, accuracy)), marker in zip(curves.items(), "os^", strict=False):
        used = count > 0  # empty bins have no accuracy
        ax.plot(confidence[used].numpy(), accuracy[used].numpy(), marker=marker, label=label)
    ax.set_xlabel(tr(N_("confidence (mean of the bin)")))
    ax.set_ylabel(tr(N_("accuracy")))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(tr(N_("reliability on the test split")))
    tight_layout(fig)
    save_figure(fig, path)
