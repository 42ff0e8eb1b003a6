"""What a read run (train.task = "read") learned: its fixed test lines read again, the
sequence accuracy, the character error rate, the accuracy by number length and the mistakes;
written as evaluation.json, plots/curves.png and report.html. viz.analysis.evaluate_run hands
read runs over here: they have no confusion matrix or per-class table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from digitlab.data import load_dataset
from digitlab.inference.run import Run
from digitlab.io import read_jsonl, write_json
from digitlab.models.shifted import with_test_shifts
from digitlab.training.read_loop import EVAL_DIGITS, eval_count, eval_lines, evaluate_lines
from digitlab.viz import plots
from digitlab.viz.report import write_report


def analyze_read(run: Run, run_dir: Path, data_dir: str | None = None) -> dict:
    """Evaluate the run's reported model on its fixed test lines; (re)write evaluation.json,
    plots/curves.png and report.html."""
    cfg = run.cfg
    if data_dir:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dir=data_dir))
    dataset = load_dataset(cfg.data)
    lines = eval_lines(dataset.test.images, dataset.test.labels,
                       eval_count("test", dataset.test), run.device)
    test = evaluate_lines(with_test_shifts(run.model, cfg.data.test_shifts), lines, cfg,
                          run.device)  # as summary.json's test and `digitlab read` read
    by_length: dict[str, list[bool]] = {}
    for read, truth in zip(test["read"], test["truth"], strict=True):
        by_length.setdefault(str(len(truth)), []).append(read == truth)
    names = run.classes
    mistakes = [{"truth": "".join(names[i] for i in truth), "read": "".join(
        names[i] for i in read)} for read, truth in zip(test["read"], test["truth"],
                                                          strict=True) if read != truth]
    evaluation = {"task": "read", "test_accuracy": test["accuracy"],
                  "test_sequence_accuracy": test["accuracy"], "test_cer": test["cer"],
                  "test_loss": test["loss"], "num_lines": test["num_lines"],
                  "digits_per_line": list(EVAL_DIGITS), "dataset": dataset.name,
                  "dataset_title": dataset.title, "model": cfg.model.name,
                  "classes": list(names), "checkpoint": str(run.path),
                  "epoch": run.meta.get("epoch"), "device": str(run.device),
                  "accuracy_by_length": {k: sum(v) / len(v) for k, v in sorted(
                      by_length.items(), key=lambda kv: int(kv[0]))},
                  "mistakes": mistakes[:50]}
    history = read_jsonl(run_dir / "metrics.jsonl")
    if history:
        plots.curves(history, run_dir / "plots" / "curves.png")
    write_json(run_dir / "evaluation.json", evaluation)
    write_report(run_dir)
    return evaluation
