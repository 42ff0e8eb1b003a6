"""`digitlab predict RUN_DIR PATH...` and `--kaggle-csv`: digits in image files."""

from __future__ import annotations

import json
import sys

from digitlab.commands.read import show_folder
from digitlab.i18n import _


def cmd_predict(args) -> int:
    from digitlab.errors import UsageError
    from digitlab.inference.predictor import (
        ImageError,
        Predictor,
        check_min_confidence,
        expand_inputs,
        prediction,
        show,
    )
    from digitlab.inference.reader import is_read_run

    if args.top_k < 1:
        raise UsageError(_("--top-k must be at least 1"))
    check_min_confidence(args.min_confidence)
    if args.kaggle_csv or args.out:
        return predict_kaggle(args)
    if not args.paths:
        raise UsageError(_("give image files or folders to predict, or --kaggle-csv TEST.CSV "
                           "--out SUBMISSION.CSV"))
    show_dir = show_folder(args.show)  # before the work: fails at once, in one line
    predictor = Predictor.load(args.model, device=args.device)
    if is_read_run(predictor):
        raise UsageError(_("{run} reads whole numbers (trained with --task read): use "
                           "`digitlab read {run} IMAGE...`").format(run=args.model))
    files = expand_inputs(args.paths)
    results, failed = [], 0
    for index, path in enumerate(files):
        try:
            digit, probs = predictor.predict_file(path)
        except ImageError as e:
            failed += 1
            print(_("digitlab: skipped {reason}").format(reason=e), file=sys.stderr)
            continue
        result = {"file": str(path), **prediction(probs, predictor.classes, args.top_k,
                                                  args.min_confidence)}
        results.append(result)
        if result["status"] != "ok":
            failed += 1
            print(_("digitlab: {path}: the model's output is not finite (NaN or Infinity); its "
                    "weights overflow on this image: retrain with a lower learning rate")
                  .format(path=path), file=sys.stderr)
            continue
        if args.show:
            try:
                show(path, digit, result["text"], result["confidence"],
                     show_dir / f"{index:04d}-{path.stem}.png")
            except OSError as e:
                raise UsageError(_("--show {folder}: cannot write there ({error})").format(
                    folder=show_dir, error=e.strerror or e)) from None
        if not args.json:  # the class name people read: ৭ for a Bengali seven, label 7
            extra = ("\t" + " ".join(f"{t['text']}:{t['probability']:.3f}"
                                      for t in result["top_k"])) if args.top_k > 1 else ""
            label = result["text"] if result.get("sure", True) else _(
                "{label} (not sure)").format(label=result["text"])
            print(f"{path}\t{label}\t{result['confidence']:.4f}{extra}")
    if args.json:
        print(json.dumps(results, indent=2, allow_nan=False, ensure_ascii=False))  # ৭, not \u09ed
    if failed:
        print(_("digitlab: {failed} of {total} files could not be read").format(
            failed=failed, total=len(files)), file=sys.stderr)
    return 1 if failed else 0


def predict_kaggle(args) -> int:
    """predict --kaggle-csv TEST.CSV --out SUBMISSION.CSV: one submission file, no images."""
    from digitlab.errors import UsageError
    from digitlab.inference.kaggle import submit

    if not (args.kaggle_csv and args.out):
        raise UsageError(_("--kaggle-csv TEST.CSV and --out SUBMISSION.CSV go together"))
    if args.paths or args.show or args.json or args.top_k > 1 \
            or args.min_confidence is not None:
        raise UsageError(_("--kaggle-csv writes one submission file: give it without image "
                           "PATHs, --show, --json, --top-k or --min-confidence"))
    count = submit(args.model, args.kaggle_csv, args.out, args.force, args.device)
    print(_("wrote {count:,} predictions to {path}").format(count=count, path=args.out))
    return 0
