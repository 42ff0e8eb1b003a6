"""`digitlab read RUN_DIR PATH...`: the number written in each image."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from digitlab.errors import UsageError
from digitlab.i18n import _


def show_folder(show: str | None) -> Path | None:
    """--show DIR, created before any work: a folder that cannot be made fails at once."""
    if not show:
        return None
    folder = Path(show)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(_("--show {folder}: cannot create the folder ({error})").format(
            folder=folder, error=e.strerror or e)) from None
    return folder


def cmd_read(args) -> int:
    from digitlab.inference.predictor import expand_inputs
    from digitlab.inference.preprocess import ImageError, open_image
    from digitlab.inference.reader import Reader, show

    folder = show_folder(args.show)
    reader = Reader.load(args.model, method=args.method, device=args.device, beam=args.beam,
                         digits=args.digits)
    files = expand_inputs(args.paths)
    results, failed = [], 0
    for index, path in enumerate(files):
        try:
            image = open_image(path)
            result = reader.read_image(image, str(path))
        except ImageError as e:
            failed += 1
            print(_("digitlab: skipped {reason}").format(reason=e), file=sys.stderr)
            continue
        results.append({"file": str(path), **result.as_json()})
        if folder is not None:
            try:
                show(image, result, folder / f"{index:04d}-{path.stem}.png")
            except OSError as e:
                raise UsageError(_("--show {folder}: cannot write there ({error})").format(
                    folder=folder, error=e.strerror or e)) from None
        if not args.json:
            print(f"{path}\t{result.text}\t{result.confidence:.2f}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2, allow_nan=False, ensure_ascii=False))
    if failed:
        print(_("digitlab: {failed} of {total} files could not be read").format(
            failed=failed, total=len(files)), file=sys.stderr)
    return 1 if failed else 0


def evaluate_lines_command(args) -> int:
    """evaluate RUN_DIR --lines DIR: the report, and exit 1 when files could not be read."""
    from digitlab.inference.lines_eval import evaluate_lines, format_report

    if args.images is not None or args.data_dir:
        raise UsageError(_("--lines excludes --images and --data-dir: give one of them"))
    report = evaluate_lines(args.run_dir, args.lines, method=args.method, device=args.device,
                            digits=args.digits)
    print(format_report(report))
    unreadable = [m for m in report["mistakes"] if m["read"] is None]
    for item in unreadable:
        print(_("digitlab: unreadable: {reason}").format(reason=item["error"]), file=sys.stderr)
    return 1 if unreadable else 0
