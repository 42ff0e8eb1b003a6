"""report.html: one self-contained page per run. Images are embedded as data URIs and there is
no script, stylesheet or font from elsewhere, so it opens offline and can be mailed around."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from digitlab.i18n import N_, _, language
from digitlab.io import atomic_write_text, read_jsonl
from digitlab.scripts import SCRIPTS

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
    ("curves.png", N_("Training curves")),
    ("confusion.png", N_("Confusion matrix")),
    ("predictions.png", N_("Predictions on the first test images")),
    ("misclassified.png", N_("Misclassified test images, highest loss first")),
    ("reliability.png", N_("Reliability: confidence against accuracy, before and after scaling")),
)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def heading(text: str, level: int = 2) -> str:
    return f"<h{level}>{html.escape(text)}</h{level}>"


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
    fitted = calibration.get("fitted_on") or _("not fitted: {reason}").format(
        reason=calibration.get("reason"))
    rows = [[_("temperature T"), _fmt(calibration.get("temperature"))], [_("fitted on"), fitted]]
    ece = _("ECE ({bins} bins)").format(bins=calibration.get("bins"))
    for key, name in (("ece", ece), ("nll", "NLL")):
        rows.append([name, f"{_fmt(calibration.get(f'{key}_before'))} -> "
                           f"{_fmt(calibration.get(f'{key}_after'))}"])
    return [heading(_("Calibration (test split)")),
            "<p class='muted'>" + html.escape(_(
                "Probabilities are softmax(logits / T); T is fitted on the validation split. "
                "ECE: the mean gap between confidence and accuracy (0 is honest).")) + "</p>",
            html_table(["", _("value (before -> after)")], rows)]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"  # None: no images of that script


def scripts_section(block: dict) -> list[str]:
    """For classes in two scripts (evaluation.json's "scripts"): per script its accuracy and
    how often the right digit came out in the other script, then the confusions between them."""
    rows = [[_(SCRIPTS.get(script, script)), row["images"], _percent(row["accuracy"]),
             _percent(row["value_right_script_wrong"])]
            for script, row in block["per_script"].items()]
    parts = [heading(_("Confusions between the scripts")),
             "<p class='muted'>" + html.escape(_(
                 "Accuracy counts a digit right only in its own script; the last column is how "
                 "often the model read the right digit but in the other script.")) + "</p>",
             html_table([_("script"), _("images"), _("accuracy"),
                         _("right digit, wrong script")], rows)]
    confusions = block["confusions"]
    if confusions:
        parts.append(html_table([_("true"), _("predicted"), _("count")],
                                [[p["true"], p["predicted"], p["count"]] for p in confusions]))
    else:
        parts.append("<p>" + html.escape(_("No image was read in the other script.")) + "</p>")
    return parts


def render(run_dir: Path) -> str:
    summary = _read_json(run_dir / "summary.json")
    evaluation = _read_json(run_dir / "evaluation.json")
    history = read_jsonl(run_dir / "metrics.jsonl")
    config_path = run_dir / "config.toml"
    config = config_path.read_text(encoding="utf-8") if config_path.is_file() else ""
    accuracy = evaluation.get("test_accuracy", summary.get("test_accuracy"))
    title = _("{model} on {dataset}").format(
        model=summary.get("model", evaluation.get("model", "?")),
        dataset=summary.get("dataset_title", evaluation.get("dataset", "?")))
    parts = [f"<!DOCTYPE html><html lang='{language()}'><head><meta charset='utf-8'>"
             f"<title>digitlab: {html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class='muted'>{html.escape(str(run_dir))}</p>"]
    if accuracy is not None:
        parts.append("<p><b>" + _("Test accuracy {accuracy:.2f}%").format(
            accuracy=100 * accuracy) + "</b></p>")
    if summary.get("dataset_notice"):
        parts.append(f"<p class='notice'>{html.escape(summary['dataset_notice'])}</p>")
    if summary:
        keys = [k for k in summary if k not in ("dataset_notice", "best_metric", "calibration")]
        parts += [heading(_("Summary")), html_table([_("key"), _("value")],
                                            [[k, _fmt(summary[k])] for k in keys])]
    if evaluation.get("per_class"):
        rows = [[name, f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}",
                 m["support"]] for name, m in evaluation["per_class"].items()]
        macro = evaluation["macro_avg"]
        rows.append([_("macro average"), f"{macro['precision']:.4f}", f"{macro['recall']:.4f}",
                     f"{macro['f1']:.4f}", evaluation["num_samples"]])
        header = [_("class"), _("precision"), _("recall"), "F1", _("support")]
        parts += [heading(_("Per class (test split)")), html_table(header, rows)]
        if evaluation.get("most_confused"):
            parts += [heading(_("Most confused pairs"), 3), html_table(
                [_("true"), _("predicted"), _("count")],
                [[p["true"], p["predicted"], p["count"]] for p in evaluation["most_confused"]])]
    if isinstance(evaluation.get("scripts"), dict):
        parts += scripts_section(evaluation["scripts"])
    if isinstance(evaluation.get("calibration"), dict):
        parts += calibration_section(evaluation["calibration"])
    for name, caption in FIGURES:
        path = run_dir / "plots" / name
        if path.is_file():
            parts += [heading(_(caption)), html_image(path, _(caption))]
    if history:
        keys = list(history[0])
        parts += [heading(_("Metrics per epoch")),
                  html_table(keys, [[_fmt(r.get(k, "")) for k in keys] for r in history])]
    if config:
        parts += [heading(_("Config")), f"<pre>{html.escape(config)}</pre>"]
    written = html.escape(_("Written by digitlab."))
    parts.append(f"<p class='muted'>{written}</p></body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    path = run_dir / "report.html"
    atomic_write_text(path, render(run_dir))
    return path
