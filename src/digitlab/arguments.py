"""The `digitlab` command line: every subcommand, its arguments and their help. cli.py parses
with this and runs the command."""

from __future__ import annotations

import argparse

from digitlab import __version__
from digitlab.i18n import LANGUAGES, _


class TaskSettings(argparse.Action):
    """--task NAME: --set train.task=NAME (read: and model.name=crnn, the model that reads)
    ahead of the --set options, which may change them."""

    def __call__(self, parser, namespace, value, option_string=None):
        sets = [f"train.task={value}"] + (["model.name=crnn"] if value == "read" else [])
        setattr(namespace, self.dest, sets + (getattr(namespace, self.dest) or []))


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE.toml", help=_("read settings from a TOML file"))
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help=_("override one setting, e.g. --set optim.lr=3e-3 (repeatable)"))
    p.add_argument("--dataset", help=_("shortcut for --set data.name=... (default: mnist)"))
    p.add_argument("--model", help=_("shortcut for --set model.name=... (default: seed-mlp)"))
    p.add_argument("--epochs", type=int, help=_("shortcut for --set train.epochs=N (default: 5)"))
    p.add_argument("--seed", type=int, help=_("shortcut for --set train.seed=N (default: 42)"))
    _add_lr_and_batch_size(p)
    p.add_argument("--device", help=_("auto, cpu, cuda, cuda:N or mps (default: auto)"))
    p.add_argument("--data-dir", help=_("folder with the dataset files (else $DIGITLAB_DATA, "
                                      "then the user cache)"))


def _add_lr_and_batch_size(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lr", type=float, metavar="X",
                   help=_("shortcut for --set optim.lr=X (default: 0.001)"))
    p.add_argument("--batch-size", type=int, metavar="N",
                   help=_("shortcut for --set data.batch_size=N (default: 64)"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitlab",
        description=_("Train, compare, understand and use handwritten-digit classifiers."))
    parser.add_argument("--version", action="version", version=f"digitlab {__version__}",
                        help=_("show program's version number and exit"))
    parser.add_argument("--debug", action="store_true", help=_("show full tracebacks on errors"))
    lang_help = _("language of messages and help: en or bn (default: $DIGITLAB_LANG, else en)")
    parser.add_argument("--lang", choices=tuple(LANGUAGES), help=lang_help)
    import_help = _("import MODULE first, e.g. one that registers your own model (repeatable; "
                    "the current folder is searched first)")
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE", help=import_help)
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand without --debug must not reset a --debug given before it
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=_("show full tracebacks on errors"))
    common.add_argument("--lang", choices=tuple(LANGUAGES), default=argparse.SUPPRESS,
                        help=lang_help)
    # its own dest: a subcommand's --import adds to, not replaces, one given before it
    common.add_argument("--import", dest="imports_after", action="append",
                        default=argparse.SUPPRESS, metavar="MODULE", help=import_help)
    # not required: a bare `digitlab` prints this help (cli.main)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", parents=[common],
                       help=_("train a model (defaults: the tutorial's MNIST recipe)"),
                       description=_("Train a model. With no options this is the tutorial's "
                                   "recipe: MLP 784-128-64-10, Adam 1e-3, batch 64, 5 epochs."))
    _add_config_args(p)
    p.add_argument("--out", help=_("run directory (default: runs/<time>-<dataset>-<model>)"))
    p.add_argument("--resume", metavar="RUN_DIR",
                   help=_("continue RUN_DIR from its last checkpoint, in place (with --epochs N "
                        "to extend it); other settings come from RUN_DIR/config.toml"))
    p.add_argument("--print-config", action="store_true",
                   help=_("print the resolved config as TOML and exit, without training"))
    p.add_argument("--task", choices=("classify", "read"), action=TaskSettings, dest="sets",
                   help=_("classify (default) or read: whole numbers, as --set train.task=read "
                          "--set model.name=crnn before your --set options (recommended: "
                          "--config configs/read.toml)"))

    p = sub.add_parser("plot", parents=[common], help=_("draw figures: activations, losses, "
                       "schedule, temperature, augment, filters, run"))
    plot = p.add_subparsers(dest="figure", metavar="FIGURE", required=True)
    q = plot.add_parser("activations", help=_("each activation and its derivative, + overview"))
    q.add_argument("--out", default="figures/activations", help=_("folder for the PNGs"))
    q = plot.add_parser("losses", help=_("each loss and its gradient vs the true-class logit"))
    q.add_argument("--out", default="figures/losses.png", help=_("PNG path"))
    q = plot.add_parser("temperature", help=_("softmax of one logit vector at several beta"))
    q.add_argument("--out", default="figures/temperature.png", help=_("PNG path"))
    q = plot.add_parser("schedule", help=_("the configured learning rate at every step"))
    q.add_argument("--config", metavar="FILE.toml", help=_("read settings from a TOML file"))
    q.add_argument("--set", dest="sets", action="append", default=[],
                   metavar="SECTION.KEY=VALUE",
                   help=_("override one setting, e.g. --set optim.lr=3e-3 (repeatable)"))
    q.add_argument("--epochs", type=int, help=_("shortcut for --set train.epochs=N (default: 5)"))
    _add_lr_and_batch_size(q)
    q.add_argument("--steps-per-epoch", type=int,
                   help=_("optimizer steps per epoch (default: from the dataset and batch size)"))
    q.add_argument("--out", default="figures/schedule.png", help=_("PNG path"))
    q = plot.add_parser("augment", help=_("training digits beside draws of the configured "
                                          "data.augment_* knobs"))
    q.add_argument("--config", metavar="FILE.toml", help=_("read settings from a TOML file"))
    q.add_argument("--set", dest="sets", action="append", default=[],
                   metavar="SECTION.KEY=VALUE",
                   help=_("override one setting, e.g. --set optim.lr=3e-3 (repeatable)"))
    q.add_argument("--data-dir", help=_("folder with the dataset files"))
    q.add_argument("--out", default="figures/augment.png", help=_("PNG path"))
    q = plot.add_parser("filters", help=_("a run's first-layer weights as images"))
    q.add_argument("run_dir", metavar="RUN_DIR", help=_("a run directory made by digitlab train"))
    q.add_argument("--out", help=_("PNG path (default: RUN_DIR/plots/filters.png)"))
    q = plot.add_parser("run", help=_("regenerate a run's evaluation, plots and report.html"))
    q.add_argument("run_dir", metavar="RUN_DIR", help=_("a run directory made by digitlab train"))
    q.add_argument("--data-dir", help=_("folder with the dataset files"))
    q.add_argument("--device", default="auto", help=_("auto, cpu, cuda, cuda:N or mps"))

    p = sub.add_parser("config", parents=[common], help=_("show a run's recorded config"))
    config = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = config.add_parser("show", help=_("print a run's config.toml, every key resolved"))
    q.add_argument("run_dir", metavar="RUN_DIR", help=_("a run directory made by digitlab train"))

    p = sub.add_parser("compare", parents=[common],
                       help=_("compare runs: the settings that differ, results and curves"))
    p.add_argument("run_dirs", metavar="RUN_DIR", nargs="+",
                   help=_("two or more run directories made by digitlab train"))
    p.add_argument("--out", default="compare.png",
                   help=_("PNG path for the overlaid curves (default: compare.png)"))

    p = sub.add_parser("sweep", parents=[common],
                       help=_("train a grid of configurations, one run each, and compare them"))
    p.add_argument("--grid", action="append", default=[], metavar="KEY=v1,v2,...",
                   help=_("a config key and the values to try (repeatable: the product is run)"))
    p.add_argument("--seeds", type=int, help=_("seeds per combination (train.seed, +1, ...)"))
    _add_config_args(p)
    p.add_argument("--out", required=True, help=_("sweep folder; re-running skips finished runs"))

    p = sub.add_parser("predict", parents=[common],
                       help=_("classify digit images (photos, scans, drawings)"))
    p.add_argument("model", metavar="RUN_DIR|CHECKPOINT",
                   help=_("a run directory, or one of its .safetensors checkpoints"))
    paths = p.add_argument("paths", metavar="PATH", nargs="+", default=[],
                           help=_("image files or folders (recursive); not with --kaggle-csv"))
    # Optional, for --kaggle-csv, but not nargs="*": argparse would match "*" empty together
    # with RUN_DIR and then refuse the PATHs of `predict RUN --show DIR image.png`.
    paths.required = False
    p.add_argument("--json", action="store_true", help=_("print a JSON list instead of lines"))
    p.add_argument("--top-k", type=int, default=1, metavar="K",
                   help=_("also report the K most likely labels"))
    p.add_argument("--min-confidence", type=float, metavar="P",
                   help=_("mark answers whose (calibrated) top probability is below P, in "
                          "(0, 1], as not sure (JSON: \"sure\": false)"))
    p.add_argument("--show", metavar="DIR",
                   help=_("save each input beside the 28x28 the model saw, to debug bad cases"))
    p.add_argument("--kaggle-csv", metavar="TEST.CSV",
                   help=_("predict Kaggle's Digit Recognizer test.csv (pixel0..pixel783) and "
                          "write the submission (ImageId,Label) to --out"))
    p.add_argument("--out", metavar="SUBMISSION.CSV",
                   help=_("with --kaggle-csv: the submission file to write"))
    p.add_argument("--force", action="store_true",
                   help=_("overwrite --out if it exists (default: refuse)"))
    p.add_argument("--device", default="auto", help=_("auto, cpu, cuda, cuda:N or mps"))

    p = sub.add_parser("read", parents=[common],
                       help=_("read handwritten numbers: a photo or scan of one line of digits"))
    p.add_argument("model", metavar="RUN_DIR|CHECKPOINT",
                   help=_("a single-digit run (read by cutting the line into digits) or a run "
                          "trained with --task read (a CTC model)"))
    p.add_argument("paths", metavar="PATH", nargs="+",
                   help=_("image files or folders (recursive), one line of digits each"))
    p.add_argument("--json", action="store_true",
                   help=_("print JSON: each digit's label, probability and box"))
    p.add_argument("--show", metavar="DIR",
                   help=_("save each input with the digits' boxes and labels drawn on it"))
    p.add_argument("--method", default="auto", choices=("auto", "segment", "ctc", "combined"),
                   help=_("segment: cut the line into digits and read each; ctc: a sequence "
                          "model; combined: a sequence model and --digits together; auto "
                          "(default): combined with --digits, else the one the run was "
                          "trained for"))
    p.add_argument("--digits", metavar="RUN_DIR",
                   help=_("with a run trained with --task read: a single-digit run (such as "
                          "configs/robust.toml's) that reads the line with it (--method "
                          "combined: the most accurate)"))
    p.add_argument("--beam", type=int, default=0, metavar="WIDTH",
                   help=_("ctc: decode with a prefix beam search of this width (default 0: "
                          "greedy)"))
    p.add_argument("--device", default="auto", help=_("auto, cpu, cuda, cuda:N or mps"))

    p = sub.add_parser("serve", parents=[common],
                       help=_("a local web page to draw a digit, and a JSON API"))
    p.add_argument("model", metavar="RUN_DIR|CHECKPOINT",
                   help=_("a run directory, or one of its .safetensors checkpoints"))
    p.add_argument("--host", default="127.0.0.1",
                   help=_("address to bind (default 127.0.0.1: this machine only)"))
    p.add_argument("--port", type=int, default=8000, help=_("TCP port (default 8000)"))
    p.add_argument("--min-confidence", type=float, default=0.6, metavar="P",
                   help=_("below this (calibrated) top probability the page says not sure and "
                          "the API answers \"sure\": false (default 0.6)"))
    p.add_argument("--digits", metavar="RUN_DIR",
                   help=_("with a run trained with --task read: a single-digit run that reads "
                          "numbers with it (POST /read, method combined)"))
    p.add_argument("--device", default="auto", help=_("auto, cpu, cuda, cuda:N or mps"))

    p = sub.add_parser("export", parents=[common], help=_("export a run's model to ONNX or "
                       "TorchScript, normalization included"))
    p.add_argument("run_dir", metavar="RUN_DIR|CHECKPOINT",
                   help=_("a run directory, or one of its .safetensors checkpoints"))
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx",
                   help=_("onnx (default) or torchscript"))
    p.add_argument("--out", required=True, help=_("output file (.onnx or .pt)"))
    p.add_argument("--force", action="store_true",
                   help=_("overwrite --out if it exists (default: refuse)"))

    p = sub.add_parser("list", parents=[common],
                       help=_("list models, activations, losses, optimizers, schedulers, datasets"))
    p.add_argument("--json", action="store_true", help=_("print the names as JSON"))

    p = sub.add_parser("evaluate", parents=[common],
                       help=_("re-evaluate a run's saved model on the test split, or on "
                              "labelled image files (--images)"))
    p.add_argument("run_dir", metavar="RUN_DIR", help=_("a run directory made by digitlab train"))
    p.add_argument("--data-dir", help=_("folder with the dataset files"))
    p.add_argument("--images", metavar="DIR",
                   help=_("evaluate on labelled image files instead of the test split: "
                          "DIR/<label>/<image>, or DIR/labels.csv with a file,label header; "
                          "writes RUN_DIR/evaluation-<name>.json and "
                          "RUN_DIR/plots/mistakes-<name>.png"))
    p.add_argument("--lines", metavar="DIR",
                   help=_("evaluate reading numbers: DIR holds images of handwritten numbers "
                          "and a labels.csv with a file,text header; writes "
                          "RUN_DIR/evaluation-lines-<name>.json and a gallery of the mistakes"))
    p.add_argument("--method", default="auto", choices=("auto", "segment", "ctc", "combined"),
                   help=_("with --lines: how to read the numbers (as `digitlab read`)"))
    p.add_argument("--digits", metavar="RUN_DIR",
                   help=_("with --lines and a run trained with --task read: a single-digit "
                          "run that reads with it (as `digitlab read --digits`)"))
    p.add_argument("--device", default="auto", help=_("auto, cpu, cuda, cuda:N or mps"))

    p = sub.add_parser("bench", parents=[common],
                       help=_("time the tutorial's pipeline against digitlab's, side by side"))
    p.add_argument("--epochs", type=int, default=5, help=_("epochs for both pipelines (default 5)"))
    p.add_argument("--seed", type=int, default=42, help=_("seed for both pipelines (default 42)"))
    p.add_argument("--dataset", default="mnist", help=_("dataset for both (default: mnist)"))
    p.add_argument("--data-dir", help=_("folder with the dataset files"))
    p.add_argument("--json", action="store_true", help=_("print the results as JSON"))
    p.add_argument("--parts", default="seed,predict,memory",
                   help=_("comma-separated: seed (tutorial vs digitlab), presets (fast99 and "
                        "best over --seeds seeds), predict (throughput), memory (peak RSS), "
                        "robustness (the seed, best and robust presets on image files: "
                        "scikit-learn digits, photos, mouse drawings, test PNGs), bangla (the "
                        "bangla preset over 3 seeds, its photo path, and the bilingual preset "
                        "per script; --data-dir: a folder holding mnist/ and cmaterdb-bangla/), "
                        "read (whole numbers: the segment method with the robust preset beside "
                        "the ctc method with the read preset); default: seed,predict,memory"))
    p.add_argument("--seeds", type=int, default=3, help=_("seeds per preset (default 3)"))
    p.add_argument("--device", default="auto",
                   help=_("where both pipelines and the presets train: auto (CUDA when there is "
                          "one), cpu or cuda; on CUDA the seed part also times digitlab's loop "
                          "without CUDA graphs"))
    p.add_argument("--runs", metavar="PRESET=RUN_DIR,...",
                   help=_("robustness and read: score these runs instead of training the "
                          "presets, e.g. seed=runs/a,best=runs/b,robust=runs/c,read=runs/d "
                          "(presets left out are trained, seed 0)"))
    p.add_argument("--robustness-mnist", type=int, default=10_000, metavar="N",
                   help=_("robustness: test digits as tensors and as PNGs (default 10000)"))
    p.add_argument("--robustness-photos", type=int, default=2000, metavar="N",
                   help=_("robustness: test digits as photos (default 2000)"))
    p.add_argument("--robustness-mouse", type=int, default=1000, metavar="N",
                   help=_("robustness: mouse drawings (default 1000)"))
    p.add_argument("--robustness-scans", type=int, default=2000, metavar="N",
                   help=_("robustness: test digits as 8x8 scans and as 16x16 box-filled scans, "
                          "binary and grey (default 2000)"))
    return parser
