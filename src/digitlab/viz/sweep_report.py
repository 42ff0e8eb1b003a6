"""sweep.png and report.html for a sweep directory."""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from digitlab.i18n import N_, _, language
from digitlab.io import atomic_write_text, read_jsonl
from digitlab.viz.fonts import tight_layout, tr
from digitlab.viz.plots import (
    DISTINCT_COLORS,
    distinct_colors,
    epoch_axis,
    pyplot,
    save_figure,
)
from digitlab.viz.report import STYLE, html_image, html_table


def combo_label(row: dict, keys: list[str]) -> str:
    """'activation=relu, lr=0.001'; full keys where two would read the same ('optim.name')."""
    short = [k.split(".", 1)[1] for k in keys]
    names = [s if short.count(s) == 1 else k for s, k in zip(short, keys, strict=True)]
    return ", ".join(f"{n}={row[k]}" for n, k in zip(names, keys, strict=True))


def grouped(rows: list[dict], keys: list[str]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[combo_label(row, keys)].append(row)
    return groups


LINE_STYLES = ("-", "--", ":", "-.")  # the seeds of one combination share its colour


def bars(ax, groups: dict[str, list[dict]], colors: list) -> None:
    """Mean test accuracy per combination, min/max over its seeds; failed ones in gray."""
    labels, means, lows, highs, faces = [], [], [], [], []
    for (label, members), color in zip(groups.items(), colors, strict=True):
        accs = [100 * r["test_accuracy"] for r in members if r.get("status") == "completed"]
        labels.append(label)
        mean = sum(accs) / len(accs) if accs else 0.0
        means.append(mean)
        lows.append(mean - min(accs) if accs else 0.0)
        highs.append(max(accs) - mean if accs else 0.0)
        faces.append(color if accs else "lightgray")
    y = range(len(labels))
    ax.barh(y, means, xerr=[lows, highs], color=faces, capsize=3)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(tr(N_("test accuracy (%): mean, min-max over seeds; gray = failed")))
    left = max(0.0, min(m for m in means if m) - 5) if any(means) else 0.0
    ax.set_xlim(left, 100)
    for k, face in enumerate(faces):
        if face == "lightgray":
            ax.text(left + 0.5, k, tr(N_("failed (see sweep.csv)")), va="center", color="crimson",
                    fontsize=8)


def curves(ax, out: Path, keys: list[str], groups: dict[str, list[dict]], colors: list) -> None:
    """The validation (or test) accuracy of every completed run per epoch: the colour of its
    combination (as its bar), one line style per seed; whole epochs on the axis."""
    for index, members in enumerate(groups.values()):
        for k, row in enumerate(members):
            history = read_jsonl(out / row["run"] / "metrics.jsonl")
            if row.get("status") != "completed" or not history:
                continue
            split = "val" if "val_accuracy" in history[0] else "test"
            style = LINE_STYLES[(k + index // DISTINCT_COLORS) % len(LINE_STYLES)]
            ax.plot([r["epoch"] for r in history],
                    [100 * r[f"{split}_accuracy"] for r in history], style, marker=".",
                    color=colors[index], label=f"{combo_label(row, keys)} s{row['seed']}")
    epoch_axis(ax)
    ax.set_ylabel(tr(N_("accuracy (%)")))
    ax.set_title(tr(N_("validation accuracy per epoch (test when there is no validation split)")),
                 fontsize=9)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)


def sweep_figure(out: Path, keys: list[str], rows: list[dict]) -> Path:
    """Bars: mean test accuracy per combination with min/max over seeds; beside them, the
    validation (or test) accuracy curve of every completed run, in its combination's colour."""
    plt = pyplot()
    groups = grouped(rows, keys)
    colors = distinct_colors(len(groups))
    fig, (ax_bar, ax_curve) = plt.subplots(1, 2, figsize=(14, max(4, 0.45 * len(groups) + 1.5)))
    bars(ax_bar, groups, colors)
    curves(ax_curve, out, keys, groups, colors)
    tight_layout(fig)
    path = out / "sweep.png"
    save_figure(fig, path)
    return path


def write_sweep_report(out: Path, keys: list[str], rows: list[dict]) -> Path:
    header = [*keys, _("seed"), _("status"), _("test accuracy"), _("test loss"), _("train s"),
              _("error")]
    heading = html.escape(_("Sweep over {keys}").format(keys=", ".join(keys)))
    runs = html.escape(_("Runs"))
    note = html.escape(_("Each run's own report.html is in its folder."))
    table = [[*(row.get(k) for k in keys), row.get("seed"), row.get("status"),
              f"{100 * row['test_accuracy']:.2f}%" if row.get("test_accuracy") is not None else "",
              f"{row['test_loss']:.4f}" if row.get("test_loss") is not None else "",
              f"{row['train_seconds']:.1f}" if row.get("train_seconds") is not None else "",
              row.get("error") or ""] for row in rows]
    parts = [f"<!DOCTYPE html><html lang='{language()}'><head><meta charset='utf-8'><title>"
             f"digitlab sweep</title><style>{STYLE}</style></head><body><h1>{heading}</h1>"
             f"<p class='muted'>{html.escape(str(out))}</p>",
             html_image(out / "sweep.png", _("sweep results")), f"<h2>{runs}</h2>",
             html_table(header, table), f"<p class='muted'>{note}</p></body></html>"]
    path = out / "report.html"
    atomic_write_text(path, "\n".join(parts))
    return path


def draw_sweep(out: Path, keys: list[str], rows: list[dict]) -> None:
    """sweep.png, then report.html (which embeds it)."""
    sweep_figure(out, keys, rows)
    write_sweep_report(out, keys, rows)
