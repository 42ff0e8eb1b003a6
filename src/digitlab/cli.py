"""The `digitlab` command: parse, build the config, call one function per subcommand."""

from __future__ import annotations

import io
import os
import sys

from digitlab.arguments import build_parser
from digitlab.commands.predict import cmd_predict
from digitlab.commands.read import cmd_read, evaluate_lines_command
from digitlab.errors import DigitlabError
from digitlab.i18n import LANGUAGES, _, requested_language, set_language


def cmd_train(args) -> int:
    from digitlab.config import build_config
    from digitlab.errors import UsageError
    from digitlab.training import distributed, train
    from digitlab.training.rundir import finished_line
    from digitlab.training.setup import resume_config
    from digitlab.viz.analysis import evaluate_run

    if args.resume:
        others = [f"--{name.replace('_', '-')}" for name in
                  ("config", "dataset", "model", "seed", "lr", "batch_size", "device",
                   "data_dir", "out")
                  if getattr(args, name) is not None] + (["--set"] if args.sets else [])
        if others:
            raise UsageError(_("--resume continues a run with its own config; it takes only "
                               "--epochs, not {options}").format(options=" ".join(others)))
        cfg = resume_config(args.resume, args.epochs)
        if args.print_config:
            return print_config(cfg)
        finished = finished_line(cfg)
        if finished:  # nothing to train, evaluate or rewrite
            print(finished)
            return 0
        summary = train(cfg, resume=True)
    else:
        shortcuts = {name: getattr(args, name) for name in
                     ("dataset", "model", "epochs", "seed", "lr", "batch_size", "device",
                      "data_dir", "out")}
        cfg, explicit = build_config(args.config, recorded_imports(args) + args.sets, shortcuts)
        if args.print_config:
            return print_config(cfg)
        # Only a dataset left at its default may fall back to the bundled one when offline.
        summary = train(cfg, fallback="data.name" not in explicit)
    if summary["status"] != "completed":
        return 1
    if distributed.is_main_process():  # evaluation.json, plots/ and report.html, once
        evaluate_run(summary["run_dir"], device=summary["device"])
    return 0


def print_config(cfg) -> int:
    """train --print-config: the resolved config, as the run's config.toml would hold it."""
    from digitlab.config import to_toml

    print(to_toml(cfg), end="")
    return 0


def cmd_config(args) -> int:
    from digitlab.viz.compare import config_text

    print(config_text(args.run_dir), end="")  # the only action: show
    return 0


def cmd_compare(args) -> int:
    from digitlab.viz.compare import compare

    path = compare(args.run_dirs, args.out)
    print(_("wrote {path}").format(path=path))
    return 0


def cmd_evaluate(args) -> int:
    from digitlab.errors import UsageError
    from digitlab.viz.analysis import evaluate_run
    from digitlab.viz.images import evaluate_images, format_report

    if args.lines is not None:
        return evaluate_lines_command(args)
    if args.images is None:
        report = evaluate_run(args.run_dir, data_dir=args.data_dir, device=args.device)
        print(_("{dataset}: test accuracy {accuracy:.2f}%, test loss {loss:.4f} on {count:,} "
                "images -> {path}").format(dataset=report.get("dataset_title", report["dataset"]),
                                           accuracy=100 * report["test_accuracy"],
                                           loss=report["test_loss"], count=report["num_samples"],
                                           path=f"{args.run_dir}/evaluation.json"))
        return 0
    if args.data_dir:
        raise UsageError(_("--data-dir and --images exclude each other: --data-dir is for the "
                           "test split, --images for image files"))
    report = evaluate_images(args.run_dir, args.images, device=args.device)
    print(format_report(report))
    for item in report["unreadable"]:  # by name, on stderr like predict's; and in the JSON
        print(_("digitlab: unreadable: {reason}").format(reason=item["reason"]), file=sys.stderr)
    if report["unreadable"]:
        print(_("digitlab: {failed} of {total} files could not be read (counted as errors)")
              .format(failed=len(report["unreadable"]), total=report["counts"]["files"]),
              file=sys.stderr)
    return 1 if report["unreadable"] else 0


def cmd_bench(args) -> int:
    from digitlab.errors import UsageError
    from digitlab.inference.bench import run_bench
    from digitlab.inference.robustness import PRESETS, Sizes, parse_runs

    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    unknown = set(parts) - {"seed", "presets", "predict", "memory", "robustness", "bangla",
                            "read"}
    if unknown:
        raise UsageError(_("--parts: unknown {parts}; choose from seed, presets, predict, "
                           "memory, robustness, bangla, read").format(parts=sorted(unknown)))
    if args.runs is not None and not {"robustness", "read"} & set(parts):
        raise UsageError(_("--runs is for --parts robustness or read; add one to --parts"))
    sizes = Sizes(args.robustness_mnist, args.robustness_photos, args.robustness_mouse,
                  args.robustness_scans)
    for flag, size in (("--robustness-mnist", sizes.mnist),
                       ("--robustness-photos", sizes.photos),
                       ("--robustness-mouse", sizes.mouse),
                       ("--robustness-scans", sizes.scans)):
        if size < 1:
            raise UsageError(_("{flag} must be at least 1, not {size}").format(flag=flag,
                                                                              size=size))
    runs = parse_runs(args.runs, (*PRESETS, "read")) if args.runs is not None else {}
    run_bench(epochs=args.epochs, seed=args.seed, dataset=args.dataset,
              data_dir=args.data_dir, as_json=args.json, parts=parts, seeds=args.seeds,
              runs=runs, sizes=sizes, device=args.device)
    return 0


def cmd_serve(args) -> int:
    from digitlab.serve.app import serve

    serve(args.model, host=args.host, port=args.port, device=args.device,
          min_confidence=args.min_confidence, digits=args.digits)
    return 0


def cmd_export(args) -> int:
    from digitlab.inference.export import export

    path = export(args.run_dir, args.format, args.out, force=args.force)
    print(_("wrote {path}").format(path=path))
    return 0


def cmd_list(args) -> int:
    from digitlab.catalog import catalog, print_catalog

    if args.json:
        import json

        print(json.dumps({kind: list(entries) for kind, entries in catalog().items()}, indent=2))
    else:
        print_catalog()
    return 0


def cmd_plot(args) -> int:
    from pathlib import Path

    from digitlab.viz import figures

    if args.figure == "run":
        from digitlab.viz.analysis import evaluate_run

        evaluate_run(args.run_dir, data_dir=args.data_dir, device=args.device)
        print(_("wrote {run_dir}/evaluation.json, plots/ and report.html").format(
            run_dir=args.run_dir))
        return 0
    if args.figure == "activations":
        paths = figures.activations(Path(args.out))
        print(_("wrote {count} figures to {folder}").format(count=len(paths), folder=args.out))
        return 0
    if args.figure == "schedule":
        from digitlab.config import build_config

        shortcuts = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size}
        cfg, _explicit = build_config(args.config, args.sets, shortcuts)
        from digitlab.training.setup import batches_per_epoch

        path = figures.schedule(cfg, args.steps_per_epoch or batches_per_epoch(cfg),
                                Path(args.out))
    elif args.figure == "augment":
        from digitlab.config import build_config

        cfg, _explicit = build_config(args.config, args.sets, {"data_dir": args.data_dir})
        path = figures.augmentations(cfg, Path(args.out))
    elif args.figure == "filters":
        path = figures.run_filters(Path(args.run_dir), Path(args.out) if args.out else None)
    else:
        path = {"losses": figures.losses, "temperature": figures.temperature}[args.figure](
            Path(args.out))
    print(_("wrote {path}").format(path=path))
    return 0


def cmd_sweep(args) -> int:
    from digitlab.training.sweep import plan_sweep, run_sweep, write_sweep_csv
    from digitlab.viz.analysis import evaluate_run
    from digitlab.viz.sweep_report import draw_sweep

    shortcuts = {name: getattr(args, name) for name in
                 ("dataset", "model", "epochs", "seed", "lr", "batch_size", "device", "data_dir")}
    sweep = plan_sweep(args.grid, args.out, seeds=args.seeds, config_file=args.config,
                       sets=recorded_imports(args) + args.sets, shortcuts=shortcuts)
    rows = []
    for row in run_sweep(sweep):
        rows.append(row)
        run_dir = sweep.out / row["run"]
        if row["status"] == "completed" and not (run_dir / "report.html").is_file():
            evaluate_run(run_dir, device=sweep.cfg.train.device)  # the run's own report
        write_sweep_csv(sweep, rows)
        draw_sweep(sweep.out, sweep.keys, rows)
    failed = sum(r.get("status") != "completed" for r in rows)
    print(_("{runs} runs, {failed} failed: {folder}/sweep.csv, sweep.png, report.html").format(
        runs=len(rows), failed=failed, folder=args.out))
    return 0


def load_plugins(args) -> None:
    """The digitlab.plugins entry points, then each --import MODULE, before the command."""
    from digitlab.plugins import import_modules, load_entry_points

    args.imports = [*args.imports, *getattr(args, "imports_after", [])]
    load_entry_points()
    import_modules(args.imports, "--import")


def recorded_imports(args) -> list[str]:
    """--import MODULE as --set train.imports=[...], so the run records it (a --set wins)."""
    from digitlab.config import toml_value

    return [f"train.imports={toml_value(args.imports)}"] if args.imports else []


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "plot": cmd_plot, "sweep": cmd_sweep,
            "bench": cmd_bench, "predict": cmd_predict, "serve": cmd_serve,
            "export": cmd_export, "list": cmd_list, "config": cmd_config,
            "compare": cmd_compare, "read": cmd_read}


def silence_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's last flush does not hit the
    closed pipe again (and print "Exception ignored ... BrokenPipeError")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests, IDEs)
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    for stream in (sys.stdout, sys.stderr):  # a console that cannot show ৭ prints \u09ed
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    lang = requested_language(argv, os.environ)
    try:
        set_language(lang)
    except ValueError:
        print(f"digitlab: error: unknown language {lang!r} (from --lang or $DIGITLAB_LANG); "
              f"choose from {', '.join(LANGUAGES)}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        set_language("en")
        print(f"digitlab: warning: {e}; continuing in English", file=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `digitlab`: what it can do, not a usage error
        parser.print_help()
        return 0
    try:
        load_plugins(args)
        return COMMANDS[args.command](args)
    except DigitlabError as e:
        if args.debug:
            raise
        print(_("digitlab: error: {message}").format(message=e), file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `digitlab predict DIR | head`: the reader stopped, nothing failed
        silence_stdout()
        return 1
    except OSError as e:  # the last line of defence: the places we know raise clear errors
        if args.debug:
            raise
        print(_("digitlab: error: cannot read or write {path}: {reason}").format(
            path=e.filename or "?", reason=e.strerror or e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(_("digitlab: interrupted"), file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
