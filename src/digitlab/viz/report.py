"""report.html: one self-contained page per run. Images are embedded as data URIs and there is
no script, stylesheet or font from elsewhere, so it opens offline and can be mailed around."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from digitlab.io import atomic_write_text, read_jsonl

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; }
td, th { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4rem 0; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
.muted { color: #666; } .notice { background: #fff7e0; padding: 0.6rem; border: 1px solid #eb0; }
"""

FIGURES = (  # file in plots/, heading
    ("curves.png", "Training curves"),
    ("confusion.png", "Confusion matrix"),
    ("predictions.png", "Predictions on the first test images"),
    ("misclassified.png", "Misclassified test images, highest loss first"),
    ("reliability.png", "Reliability: confidence against accuracy, before and after scaling"),
)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def html_image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def html_table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def calibration_section(calibration: dict) -> list[str]:
    """Temperature scaling: T, where it was fitted, ECE and NLL on the test split."""
    fitted = calibration.get("fitted_on") or f"not fitted: {calibration.get('reason')}"
    rows = [["temperature T", _fmt(calibration.get("temperature"))], ["fitted on", fitted]]
    for key, name in (("ece", f"ECE ({calibration.get('bins')} bins)"), ("nll", "NLL")):
        rows.append([name, f"{_fmt(calibration.get(f'{key}_before'))} -> "
                           f"{_fmt(calibration.get(f'{key}_after'))}"])
    return ["<h2>Calibration (test split)</h2>",
            "<p class='muted'>Probabilities are softmax(logits / T); T is fitted on the "
            "validation split. ECE: the mean gap between confidence and accuracy (0 is "
            "honest).</p>",
            html_table(["", "value (before -> after)"], rows)]


def render(run_dir: Path) -> str:
    summary = _read_json(run_dir / "summary.json")
    evaluation = _read_json(run_dir / "evaluation.json")
    history = read_jsonl(run_dir / "metrics.jsonl")
    config_path = run_dir / "config.toml"
    config = config_path.read_text(encoding="utf-8") if config_path.is_file() else ""
    accuracy = evaluation.get("test_accuracy", summary.get("test_accuracy"))
    title = (f"{summary.get('model', evaluation.get('model', '?'))} on "
             f"{summary.get('dataset_title', evaluation.get('dataset', '?'))}")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>digitlab: {html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class='muted'>{html.escape(str(run_dir))}</p>"]
    if accuracy is not None:
        parts.append(f"<p><b>Test accuracy {100 * accuracy:.2f}%</b></p>")
    if summary.get("dataset_notice"):
        parts.append(f"<p class='notice'>{html.escape(summary['dataset_notice'])}</p>")
    if summary:
        keys = [k for k in summary if k not in ("dataset_notice", "best_metric", "calibration")]
        parts += ["<h2>Summary</h2>", html_table(["key", "value"],
                                            [[k, _fmt(summary[k])] for k in keys])]
    if evaluation.get("per_class"):
        rows = [[name, f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}",
                 m["support"]] for name, m in evaluation["per_class"].items()]
        macro = evaluation["macro_avg"]
        rows.append(["macro average", f"{macro['precision']:.4f}", f"{macro['recall']:.4f}",
                     f"{macro['f1']:.4f}", evaluation["num_samples"]])
        parts += ["<h2>Per class (test split)</h2>",
                  html_table(["class", "precision", "recall", "F1", "support"], rows)]
        if evaluation.get("most_confused"):
            parts += ["<h3>Most confused pairs</h3>", html_table(
                ["true", "predicted", "count"],
                [[p["true"], p["predicted"], p["count"]] for p in evaluation["most_confused"]])]
    if isinstance(evaluation.get("calibration"), dict):
        parts += calibration_section(evaluation["calibration"])
    for name, heading in FIGURES:
        path = run_dir / "plots" / name
        if path.is_file():
            parts += [f"<h2>{heading}</h2>", html_image(path, heading)]
    if history:
        keys = list(history[0])
        parts += ["<h2>Metrics per epoch</h2>",
                  html_table(keys, [[_fmt(r.get(k, "")) for k in keys] for r in history])]
    if config:
        parts += ["<h2>Config</h2>", f"<pre>{html.escape(config)}</pre>"]
    parts.append("<p class='muted'>Written by digitlab.</p></body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    path = run_dir / "report.html"
    atomic_write_text(path, render(run_dir))
    return path
