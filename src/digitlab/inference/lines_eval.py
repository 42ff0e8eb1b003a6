"""`digitlab evaluate RUN_DIR --lines DIR`: a run read handwritten numbers from labelled images.

DIR holds the images and a `labels.csv` with a `file,text` header (text: the digits written,
e.g. 4721). Each image is read as `digitlab read` reads it. Reported: exact-match accuracy
(unreadable files count as wrong), the character error rate (edit distance over the true
digits; an unreadable file costs all of its digits), accuracy by number length, and a gallery
of the mistakes. Written to RUN_DIR/evaluation-lines-<name>.json and
RUN_DIR/plots/mistakes-lines-<name>.png; nothing is written into DIR.
"""

from __future__ import annotations

from pathlib import Path

from digitlab.errors import UsageError
from digitlab.i18n import _
from digitlab.inference.labelled import LABELS_CSV, from_labels_csv, match_label
from digitlab.inference.preprocess import ImageError, open_image
from digitlab.inference.reader import Reader, Reading
from digitlab.io import ensure_writable, write_json
from digitlab.training.sequence import edit_distance

GALLERY_SIZE = 24  # mistakes drawn, the most confident first


def truth_text(text: str, classes: tuple[str, ...], where: str) -> str:
    """The label's digits as the model's class names (a Latin 7 is "৭" for a Bengali run);
    spaces, dashes and dots between groups of digits are ignored."""
    names = []
    for char in text:
        if char in " -.,/":
            continue
        name = match_label(char, classes)
        if name is None:
            raise UsageError(_("{where}: {text!r} holds {char!r}, which the model cannot "
                               "read; write the number with its digits only").format(
                where=where, text=text, char=char))
        names.append(name)
    return "".join(names)


def read_all(reader: Reader, folder: Path, classes: tuple[str, ...]) -> list[dict]:
    found = from_labels_csv(folder, "text")
    if not found.files:
        raise UsageError(_("--lines {folder}: {csv} lists no files").format(
            folder=folder, csv=LABELS_CSV))
    rows = []
    for item in found.files:
        truth = truth_text(item.label, classes, f"{folder / LABELS_CSV}: {item.name}")
        row = {"file": item.name, "true": truth}
        try:
            result: Reading = reader.read_image(open_image(item.path), str(item.path))
        except ImageError as e:
            rows.append({**row, "read": None, "confidence": None, "edits": len(truth),
                         "error": str(e)})
            continue
        rows.append({**row, "read": result.text, "confidence": result.confidence,
                     "edits": edit_distance(list(result.text), list(truth))})
    return rows


def summarize(rows: list[dict]) -> dict:
    exact = [r["read"] == r["true"] for r in rows]
    by_length: dict[int, list[bool]] = {}
    for row, ok in zip(rows, exact, strict=True):
        by_length.setdefault(len(row["true"]), []).append(ok)
    mistakes = sorted((r for r, ok in zip(rows, exact, strict=True) if not ok),
                      key=lambda r: -(r["confidence"] or 0.0))
    return {"counts": {"files": len(rows), "correct": sum(exact),
                       "unreadable": sum(r["read"] is None for r in rows)},
            "exact_match": sum(exact) / len(rows),
            "cer": sum(r["edits"] for r in rows) / max(sum(len(r["true"]) for r in rows), 1),
            "by_length": {str(n): {"files": len(v), "exact_match": sum(v) / len(v)}
                          for n, v in sorted(by_length.items())},
            "mistakes": mistakes}


def mistakes_gallery(folder: Path, mistakes: list[dict], path: Path, title: str) -> None:
    """Each mistake: the image, titled with the true and the read digits."""
    from digitlab.viz.fonts import tight_layout
    from digitlab.viz.plots import pyplot, save_figure

    plt = pyplot()
    shown = mistakes[:GALLERY_SIZE]
    rows = max(1, -(-len(shown) // 2))
    fig, axes = plt.subplots(rows, 2, figsize=(10, 1.6 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, mistake in zip(axes.flat, shown, strict=False):
        try:
            ax.imshow(open_image(folder / mistake["file"]).convert("RGB"))
        except ImageError:
            pass  # unreadable: the title says why
        read = mistake["read"] if mistake["read"] is not None else "-"
        ax.set_title(f"{mistake['file'][:30]}: true {mistake['true']}, read {read}",
                     fontsize=8, color="crimson")
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle(title)
    tight_layout(fig)  # in a font that draws the run's digits, Bengali ones too
    save_figure(fig, path)


def evaluate_lines(run_dir: str | Path, lines_dir: str | Path, method: str = "auto",
                   device: str = "auto", digits: str | Path | None = None) -> dict:
    """Read every labelled image; write the JSON and the gallery; the evaluation with paths.
    digits: a single-digit run beside a CTC run_dir (the combined method)."""
    from digitlab.viz.images import output_name

    run_dir, lines_dir = Path(run_dir), Path(lines_dir)
    if not (lines_dir / LABELS_CSV).is_file():
        raise UsageError(_("--lines {folder}: no {csv} there; give a folder with the images "
                           "and a labels.csv with a file,text header").format(
            folder=lines_dir, csv=LABELS_CSV))
    if any(out.resolve().is_relative_to(lines_dir.resolve())
           for out in (run_dir, run_dir / "plots")):
        raise UsageError(_("--lines {folder}: the results would be written inside it (to "
                           "{run_dir}); keep the run directory outside the images folder")
                         .format(folder=lines_dir, run_dir=run_dir))
    reader = Reader.load(run_dir, method, device, digits=digits)
    for folder in (run_dir, run_dir / "plots"):
        ensure_writable(folder)
    rows = read_all(reader, lines_dir, reader.run.classes)
    evaluation = {"lines_dir": str(lines_dir), "method": reader.method,
                  "digits_run": None if digits is None else str(digits), **summarize(rows)}
    name = output_name(lines_dir)
    json_path = run_dir / f"evaluation-lines-{name}.json"
    gallery_path = run_dir / "plots" / f"mistakes-lines-{name}.png"
    mistakes_gallery(lines_dir, evaluation["mistakes"], gallery_path,
                     f"mistakes on {lines_dir.resolve().name} ({reader.method})")
    evaluation["gallery"] = gallery_path.relative_to(run_dir).as_posix()
    write_json(json_path, evaluation)
    return {**evaluation, "json_path": str(json_path), "gallery_path": str(gallery_path)}


def format_report(evaluation: dict) -> str:
    counts = evaluation["counts"]
    lines = [_("{folder}: {files} numbers, {unreadable} unreadable; method {method}").format(
                 folder=evaluation["lines_dir"], files=counts["files"],
                 unreadable=counts["unreadable"], method=evaluation["method"]),
             _("exact match {exact:.2f}% ({correct} of {files}; unreadable files count as "
               "wrong), character error rate {cer:.2f}%").format(
                 exact=100 * evaluation["exact_match"], correct=counts["correct"],
                 files=counts["files"], cer=100 * evaluation["cer"]),
             _("by length (digits: numbers, exact match):")]
    lines += [f"  {n:>2}: {v['files']:>5}  {100 * v['exact_match']:6.2f}%"
              for n, v in evaluation["by_length"].items()]
    lines.append(_("wrote {json} and {gallery}").format(json=evaluation["json_path"],
                                                       gallery=evaluation["gallery_path"]))
    return "\n".join(lines)
