"""`digitlab config show RUN_DIR` and `digitlab compare RUN_DIR RUN_DIR ...`: a run's recorded
config as TOML; runs side by side (the config keys that differ, the final metrics) and their
curves overlaid in one figure."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from digitlab.config import Config, load_run_config, to_dict, to_toml, toml_value
from digitlab.errors import ConfigError, UsageError
from digitlab.i18n import _
from digitlab.io import ensure_writable, read_jsonl
from digitlab.viz.plots import distinct_colors, epoch_axis, pyplot, save_figure


def run_config(run_dir: str | Path) -> Config:
    """The config a run directory recorded, or one line on why RUN_DIR is not a run."""
    path = Path(run_dir)
    if not path.is_dir():
        raise UsageError(_("{path}: no such folder; give a run directory made by digitlab "
                           "train").format(path=run_dir))
    if not (path / "config.toml").is_file():
        raise UsageError(_("{path}: no config.toml there, so it is not a run directory; give "
                           "a folder made by digitlab train").format(path=run_dir))
    try:
        return load_run_config(path / "config.toml")
    except ConfigError as e:
        raise ConfigError(_("{path}/config.toml is not valid: {error}").format(
            path=run_dir, error=e)) from None


def config_text(run_dir: str | Path) -> str:
    """The run's config.toml as digitlab resolves it: every key, defaults filled in."""
    return to_toml(run_config(run_dir))


@dataclass(frozen=True)
class Run:
    name: str
    config: dict[str, object]  # "section.key" -> value
    summary: dict
    history: list[dict]


def load_run(run_dir: str | Path) -> Run:
    """A run's config, summary.json ({} before training ends) and metrics.jsonl (required)."""
    path = Path(run_dir)
    cfg = run_config(path)
    try:
        history = read_jsonl(path / "metrics.jsonl")
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8")) \
            if (path / "summary.json").is_file() else {}
    except ValueError as e:
        raise UsageError(_("{path}: its metrics.jsonl or summary.json is not valid JSON "
                           "({error})").format(path=run_dir, error=e)) from None
    if not history or not all(isinstance(r, dict) and "epoch" in r for r in history):
        raise UsageError(_("{path}: no metrics.jsonl with a finished epoch; compare runs that "
                           "have trained at least one epoch").format(path=run_dir))
    config = {f"{section}.{key}": value for section, values in to_dict(cfg).items()
              for key, value in values.items()}
    return Run(str(run_dir), config, summary if isinstance(summary, dict) else {}, history)


def load_runs(run_dirs: list[str]) -> list[Run]:
    if len(run_dirs) < 2:
        raise UsageError(_("compare needs at least 2 run directories, got {count}").format(
            count=len(run_dirs)))
    seen: dict[Path, str] = {}
    for run_dir in run_dirs:
        key = Path(run_dir).resolve()
        if key in seen:
            raise UsageError(_("{path} is given twice; compare different runs").format(
                path=run_dir))
        seen[key] = run_dir
    return [load_run(run_dir) for run_dir in run_dirs]


def column_names(runs: list[Run]) -> list[str]:
    """Each run's folder name, or its path where two folder names are the same."""
    names = [Path(r.name).name or r.name for r in runs]
    return [n if names.count(n) == 1 else r.name for n, r in zip(names, runs, strict=True)]


def differing_keys(runs: list[Run]) -> list[str]:
    """The config keys whose values are not all the same; train.out, the run's own folder,
    names the column instead."""
    return [key for key in runs[0].config if key != "train.out"
            and any(r.config[key] != runs[0].config[key] for r in runs[1:])]


def _number(value: object, fmt: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return fmt.format(value)
    return "-"


def final_metrics(run: Run) -> list[str]:
    """Test accuracy, test loss, epochs and training seconds ('-' where the run has none)."""
    summary = run.summary
    epochs = summary.get("epochs", run.history[-1]["epoch"])
    accuracy = summary.get("test_accuracy")
    return [_number(100 * accuracy, "{:.2f}%") if isinstance(accuracy, (int, float)) else "-",
            _number(summary.get("test_loss"), "{:.4f}"), _number(epochs, "{}"),
            _number(summary.get("train_seconds"), "{:.2f}")]


def compare_table(runs: list[Run]) -> Table:
    keys = differing_keys(runs)
    table = Table(title=_("{count} runs compared").format(count=len(runs)),
                  title_justify="left")
    table.add_column("", justify="left")
    for name in column_names(runs):
        table.add_column(escape(name), justify="right")
    if not keys:
        table.add_row(escape(_("(same config)")), *("" for _run in runs))
    for key in keys:
        table.add_row(escape(key), *(escape(toml_value(r.config[key])) for r in runs),
                      end_section=key == keys[-1])
    columns = [final_metrics(r) for r in runs]
    labels = (_("test accuracy"), _("test loss"), _("epochs"), _("train s"))
    for i, label in enumerate(labels):
        table.add_row(escape(label), *(c[i] for c in columns))
    return table


def _values(history: list[dict], name: str, scale: float = 1.0) -> list[float]:
    """One value per epoch; a missing or non-finite one (null in the JSON) as NaN: a gap."""
    values = [r.get(name) for r in history]
    return [scale * v if isinstance(v, (int, float)) else math.nan for v in values]


def compare_figure(runs: list[Run], path: Path) -> Path:
    """Loss and accuracy per epoch, one colour per run: validation solid, test dashed."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    names = column_names(runs)
    for run, name, color in zip(runs, names, distinct_colors(len(runs)), strict=True):
        epochs = [r["epoch"] for r in run.history]
        for split, style in (("val", "-"), ("test", "--")):
            if not any(f"{split}_loss" in r for r in run.history):
                continue
            axes[0].plot(epochs, _values(run.history, f"{split}_loss"), style, marker=".",
                         color=color, label=f"{name} ({split})")
            axes[1].plot(epochs, _values(run.history, f"{split}_accuracy", 100), style,
                         marker=".", color=color, label=f"{name} ({split})")
    for ax, title in zip(axes, ("loss per epoch", "accuracy (%) per epoch"), strict=True):
        ax.set_title(title)
        epoch_axis(ax)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def compare(run_dirs: list[str], out: str | Path, console: Console | None = None) -> Path:
    """Print the side-by-side table and write the overlaid curves to `out`."""
    runs = load_runs(run_dirs)
    out = Path(out)
    if out.is_dir():
        raise UsageError(_("--out {path} is a folder; give a file name such as {example}")
                         .format(path=out, example=out / "compare.png"))
    ensure_writable(out.parent)
    console = console or Console(highlight=False, soft_wrap=False)
    console.print(compare_table(runs))
    return compare_figure(runs, out)
