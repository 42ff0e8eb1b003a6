"""`digitlab sweep`: a grid of runs, one at a time, each in its own run directory.

A sweep answers the tutorials' questions with evidence (which activation? which optimizer?).
`plan_sweep` validates every run first; `run_sweep` trains them, skipping the runs that
finished before and recording a combination that fails while the rest go on; the command
writes DIR/sweep.csv (`write_sweep_csv`) and draws sweep.png and report.html (viz.sweep_report).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from digitlab.config import (
    Config,
    apply_overrides,
    collect_overrides,
    load_toml,
    parse_set,
    read_toml,
)
from digitlab.errors import ConfigError, DigitlabError
from digitlab.i18n import _
from digitlab.io import atomic_write_text, ensure_writable

COLUMNS = ("test_accuracy", "test_loss", "train_seconds", "epochs", "status", "error")


def split_values(text: str) -> list[str]:
    """'a,b,[1,2]' -> ['a', 'b', '[1,2]']: commas inside brackets belong to a value."""
    values, depth, current = [], 0, ""
    for ch in text:
        depth += (ch in "[(") - (ch in "])")
        if ch == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += ch
    values.append(current.strip())
    return [v for v in values if v]


def parse_grid(items: list[str]) -> dict[str, list[object]]:
    """--grid KEY=v1,v2 items -> {key: [typed values]} (checked like --set)."""
    grid: dict[str, list[object]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not raw.strip():
            raise ConfigError(_("--grid expects KEY=v1,v2,..., got {item!r}").format(item=item))
        grid[key.strip()] = [parse_set(f"{key.strip()}={v}")[1] for v in split_values(raw)]
    return grid


def read_sweep_file(path: str | Path) -> tuple[dict[str, object], dict[str, list], int | None]:
    """A sweep file is a config TOML plus a [sweep] table: grid = {key = [values]}, seeds = N."""
    table = load_toml(path)
    sweep = table.pop("sweep", {})
    unknown = set(sweep) - {"grid", "seeds"}
    if unknown:
        raise ConfigError(_("{path}: [sweep] knows 'grid' and 'seeds', not {keys}").format(
            path=path, keys=sorted(unknown)))
    base = {f"{s}.{k}": v for s, values in table.items() for k, v in values.items()}
    return base, dict(sweep.get("grid", {})), sweep.get("seeds")


def run_name(combo: dict[str, object], seed: int) -> str:
    parts = [f"{key}={json.dumps(v) if not isinstance(v, str) else v}"
             for key, v in combo.items()] + [f"seed={seed}"]
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "", "_".join(parts))


@dataclass(frozen=True)
class Sweep:
    """A planned sweep: its folder, the grid keys, the base config, and one row per run to do
    (its grid values, seed and run name)."""

    out: Path
    keys: list[str]
    cfg: Config  # the base config, before the grid's values
    runs: list[dict] = field(default_factory=list)

    def run_config(self, row: dict) -> Config:
        """The run's config; a combination that does not validate raises ConfigError."""
        return apply_overrides(self.cfg, {**{k: row[k] for k in self.keys},
                                          "train.seed": row["seed"],
                                          "train.out": str(self.out / row["run"])})


def plan_sweep(grid_items: list[str], out: str | Path, seeds: int | None = None,
               config_file: str | None = None, sets: list[str] = (),
               shortcuts: dict[str, object] | None = None) -> Sweep:
    """Every run of the grid (x seeds). A bad key or value fails here, before anything runs;
    a combination of valid values that conflict fails (and is recorded) when its turn comes."""
    out = Path(out)
    base: dict[str, object] = {}
    grid: dict[str, list] = {}
    if config_file:
        if "sweep" in Path(config_file).read_text(encoding="utf-8"):
            base, grid, file_seeds = read_sweep_file(config_file)
            seeds = seeds or file_seeds
        else:
            base = read_toml(config_file)
    grid.update(parse_grid(grid_items))
    if not grid:
        raise ConfigError(_("a sweep needs at least one --grid KEY=v1,v2 (or a [sweep] grid)"))
    cfg = apply_overrides(Config(), collect_overrides(base, list(sets), shortcuts))
    for key in grid:
        apply_overrides(cfg, {key: grid[key][0]})
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    runs = [{**combo, "seed": cfg.train.seed + i, "run": run_name(combo, cfg.train.seed + i)}
            for combo, i in itertools.product(combos, range(seeds or 1))]
    return Sweep(out, list(grid), cfg, runs)


def result_line(row: dict) -> str:
    """One line for a finished run: its test accuracy, loss and time, or why it failed."""
    if row.get("status") != "completed":
        return _("failed: {error}").format(error=row.get("error") or row.get("status"))
    return _("test accuracy {accuracy:.2f}%, test loss {loss:.4f}, {seconds:.1f} s").format(
        accuracy=100 * row["test_accuracy"], loss=row["test_loss"],
        seconds=row["train_seconds"])


def results_table(keys: list[str], rows: list[dict]) -> Table:
    """Every run of the sweep: its grid values, seed and result, as printed at the end."""
    table = Table(title=_("sweep: {runs} runs").format(runs=len(rows)), title_justify="left")
    for key in [*keys, "seed"]:
        table.add_column(key, justify="left")
    for column in (_("test accuracy"), _("test loss"), _("train s")):
        table.add_column(column, justify="right")
    table.add_column(_("status"), justify="left")
    for row in rows:
        done = row.get("status") == "completed"
        table.add_row(*(escape(str(row[k])) for k in [*keys, "seed"]),
                      f"{100 * row['test_accuracy']:.2f}%" if done else "",
                      f"{row['test_loss']:.4f}" if done else "",
                      f"{row['train_seconds']:.1f}" if done else "",
                      escape(str(row.get("status"))))  # the error is in its line and sweep.csv
    return table


def run_sweep(sweep: Sweep, console: Console | None = None) -> Iterator[dict]:
    """Train each run in turn, yielding its row (grid values, seed, run, COLUMNS) when it ends
    and printing its result in one line; after the last, a table of them all.
    A run that completed before is skipped; one that failed is recorded and the rest go on."""
    from digitlab.training import train

    console = console or Console(highlight=False, soft_wrap=True, markup=False)
    ensure_writable(sweep.out)
    rows = []
    for i, row in enumerate(sweep.runs):
        run_dir = sweep.out / row["run"]
        summary_path = run_dir / "summary.json"
        previous = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        if previous.get("status") == "completed":
            console.print(_("[{number}] {run}: done before, skipped").format(
                number=f"{i + 1}/{len(sweep.runs)}", run=row["run"]))
            rows.append({**row, **{k: previous.get(k) for k in COLUMNS}})
            yield rows[-1]
            continue
        if run_dir.exists():  # an unfinished or failed attempt: start it again from scratch
            shutil.rmtree(run_dir)
        console.print(f"[{i + 1}/{len(sweep.runs)}] {row['run']}")
        try:
            summary = train(sweep.run_config(row), console=Console(quiet=True))
            result = {**row, **{k: summary.get(k) for k in COLUMNS}}
        except DigitlabError as e:
            result = {**row, "status": "failed", "error": str(e).splitlines()[0]}
        console.print("    " + result_line(result))
        rows.append(result)
        yield result
    console.print(results_table(sweep.keys, rows))


def write_sweep_csv(sweep: Sweep, rows: list[dict]) -> Path:
    header = [*sweep.keys, "seed", *COLUMNS, "run"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (list, tuple)) else v
                         for k, v in row.items()})
    path = sweep.out / "sweep.csv"
    atomic_write_text(path, buffer.getvalue())
    return path
