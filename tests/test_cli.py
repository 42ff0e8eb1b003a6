"""The `digitlab` command end to end: train, the run directory it writes, evaluate, errors."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import digitlab
from digitlab.cli import main
from digitlab.config import Config, build_config, load_run_config
from digitlab.data import SOURCES, DeviceLoader
from digitlab.models import build_model
from digitlab.training.checkpoint import load_checkpoint, restore_model
from digitlab.training.evaluate import evaluate
from helpers import block_network, flat

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

METRIC_KEYS = {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr",
               "epoch_seconds"}
SUMMARY_KEYS = {"test_accuracy", "test_loss", "train_seconds", "epochs", "dataset", "model",
                "device", "torch_version", "seed", "samples_per_second", "status"}


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) in this process, with stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory, session_cache):
    """One 2-epoch run on the synthetic set, shared by the tests that only read it."""
    base = tmp_path_factory.mktemp("synthetic-run")
    run = base / "run"
    argv = ["train", "--dataset", "synthetic", "--epochs", "2", "--out", str(run)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITLAB_CACHE", str(session_cache))
        mp.delenv("DIGITLAB_DATA", raising=False)
        mp.setenv("COLUMNS", "120")
        mp.chdir(base)
        block_network(mp)
        code, out, err = run_cli(argv)
    return {"argv": argv, "code": code, "out": out, "err": err, "run": run}


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- train: the run directory


def test_train_exits_0(synthetic_run):
    assert synthetic_run["code"] == 0, synthetic_run["err"]
    assert synthetic_run["err"] == ""


def test_run_dir_holds_the_expected_files(synthetic_run):
    files = files_under(synthetic_run["run"])
    expected = {"config.toml", "metrics.jsonl", "summary.json", "checkpoints/last.safetensors",
                "plots/predictions.png"}
    assert expected <= files, files
    leftovers = [f for f in files if f.endswith(".tmp") or ".tmp" in f]
    assert leftovers == []


def test_config_toml_is_the_resolved_config(synthetic_run):
    path = synthetic_run["run"] / "config.toml"
    table = tomllib.loads(path.read_text(encoding="utf-8"))
    assert table["train"]["epochs"] == 2
    assert table["data"]["name"] == "synthetic"
    shortcuts = {"dataset": "synthetic", "epochs": 2, "out": str(synthetic_run["run"])}
    expected, _ = build_config(None, [], shortcuts)
    assert load_run_config(path) == expected


def test_metrics_jsonl(synthetic_run):
    lines = (synthetic_run["run"] / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert METRIC_KEYS <= set(r), set(r)
        for key in METRIC_KEYS - {"epoch"}:
            assert isinstance(r[key], float | int) and math.isfinite(r[key]), key
        assert 0.0 <= r["train_accuracy"] <= 1.0 and 0.0 <= r["test_accuracy"] <= 1.0
        assert r["lr"] == pytest.approx(1e-3)
        assert r["epoch_seconds"] > 0
    assert records[1]["train_loss"] < records[0]["train_loss"]


def test_summary_json(synthetic_run):
    summary = read_json(synthetic_run["run"] / "summary.json")
    assert SUMMARY_KEYS <= set(summary), set(summary)
    assert summary["status"] == "completed"
    assert 0.5 < summary["test_accuracy"] <= 1.0
    assert math.isfinite(summary["test_loss"]) and summary["test_loss"] >= 0
    assert summary["train_seconds"] > 0
    assert summary["samples_per_second"] > 0
    assert summary["epochs"] == 2
    assert summary["dataset"] == "synthetic"
    assert summary["model"] == "seed-mlp"
    assert summary["device"] in ("cpu", "cuda", "mps") or summary["device"].startswith("cuda:")
    assert summary["torch_version"] == torch.__version__
    assert summary["seed"] == load_run_config(synthetic_run["run"] / "config.toml").train.seed
    last = json.loads((synthetic_run["run"] / "metrics.jsonl").read_text().splitlines()[-1])
    assert summary["test_accuracy"] == last["test_accuracy"]
    assert summary["test_loss"] == last["test_loss"]


def test_checkpoint_restores_the_summary_accuracy(synthetic_run):
    run = synthetic_run["run"]
    tensors, meta = load_checkpoint(run / "checkpoints" / "last.safetensors")
    assert meta["epoch"] == 2
    assert any(k.startswith("model.") for k in tensors)
    cfg = load_run_config(run / "config.toml")
    summary = read_json(run / "summary.json")
    device = torch.device(summary["device"])  # evaluate where the run evaluated
    dataset = SOURCES.get(cfg.data.name)(cfg.data)
    model = build_model(cfg.model, len(dataset.classes))
    restore_model(model, tensors, "last.safetensors")
    model.to(device)
    loader = DeviceLoader(dataset.test, cfg.data.test_batch_size, device,
                          cfg.data.mean, cfg.data.std, shuffle=False)
    result = evaluate(model, loader, torch.nn.CrossEntropyLoss(), len(dataset.classes))
    assert result["accuracy"] == summary["test_accuracy"]
    assert result["loss"] == pytest.approx(summary["test_loss"], abs=1e-6)


def test_predictions_png(synthetic_run):
    path = synthetic_run["run"] / "plots" / "predictions.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] > 0 and image.size[1] > 0


def test_log_lines_keep_the_tutorial_format(synthetic_run):
    out = synthetic_run["out"]
    assert re.search(r"^Epoch \[1/2\], Batch \[0/32\], Loss: \d+\.\d{4}$", out, re.M), out
    assert re.search(r"^Epoch \[2/2\], Batch \[0/32\], Loss: \d+\.\d{4}", out, re.M)
    assert re.search(r"^Epoch 1 finished\. Average Loss: \d+\.\d{4}", out, re.M)
    assert re.search(r"^Epoch 2 finished\. Average Loss: \d+\.\d{4}", out, re.M)
    assert re.search(r"^Test Accuracy: \d+\.\d{2}%$", out, re.M)


# ---------------------------------------------------------------- determinism


def test_same_seed_same_run(synthetic_run, tmp_path, monkeypatch, no_analysis):
    if read_json(synthetic_run["run"] / "summary.json")["device"] != "cpu":
        pytest.skip("bit-identical reruns are promised on the CPU only")
    monkeypatch.chdir(tmp_path)
    again = tmp_path / "again"
    code, _, err = run_cli([*synthetic_run["argv"][:-1], str(again)])
    assert code == 0, err
    first = read_json(synthetic_run["run"] / "summary.json")
    second = read_json(again / "summary.json")
    assert second["test_loss"] == first["test_loss"]
    assert second["test_accuracy"] == first["test_accuracy"]
    a, _ = load_checkpoint(synthetic_run["run"] / "checkpoints" / "last.safetensors")
    b, _ = load_checkpoint(again / "checkpoints" / "last.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_torch_loader_trains_like_the_device_loader(tmp_path, monkeypatch, no_analysis):
    monkeypatch.chdir(tmp_path)
    losses = {}
    for kind in ("device", "torch"):
        run = tmp_path / kind
        code, _, err = run_cli(["train", "--dataset", "synthetic", "--epochs", "1",
                                "--set", f"data.loader={kind}", "--out", str(run)])
        assert code == 0, err
        assert load_run_config(run / "config.toml").data.loader == kind
        losses[kind] = read_json(run / "summary.json")["test_loss"]
    assert abs(losses["torch"] - losses["device"]) <= 1e-6


# ---------------------------------------------------------------- evaluate


def copy_run(synthetic_run, tmp_path) -> Path:
    """A copy of the shared run without any evaluation.json (training may write one)."""
    run = Path(shutil.copytree(synthetic_run["run"], tmp_path / "copy"))
    (run / "evaluation.json").unlink(missing_ok=True)
    return run


def test_evaluate_reproduces_the_summary(synthetic_run, tmp_path):
    run = copy_run(synthetic_run, tmp_path)
    code, out, err = run_cli(["evaluate", str(run)])
    assert code == 0, err
    report = read_json(run / "evaluation.json")
    summary = read_json(run / "summary.json")
    assert report["test_accuracy"] == summary["test_accuracy"]
    assert report["test_loss"] == pytest.approx(summary["test_loss"], abs=1e-6)
    assert report["num_samples"] == 500
    assert report["dataset"] == "synthetic"
    assert "evaluation.json" in out


def test_evaluate_truncated_checkpoint(synthetic_run, tmp_path):
    run = copy_run(synthetic_run, tmp_path)
    checkpoint = run / "checkpoints" / "last.safetensors"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    code, _, err = run_cli(["evaluate", str(run)])
    assert code == 2
    assert err.startswith("digitlab: error: ")
    assert str(checkpoint) in err
    assert "Traceback" not in err
    assert not (run / "evaluation.json").exists()


def test_evaluate_missing_checkpoint(synthetic_run, tmp_path):
    run = copy_run(synthetic_run, tmp_path)
    (run / "checkpoints" / "last.safetensors").unlink()
    code, _, err = run_cli(["evaluate", str(run)])
    assert code == 2
    assert "last.safetensors" in err and "does not exist" in err


@pytest.mark.parametrize("what", ["empty", "missing", "file"])
def test_evaluate_on_a_non_run_dir(tmp_path, what):
    target = tmp_path / "not-a-run"
    if what == "empty":
        target.mkdir()
    elif what == "file":
        target.write_text("hello")
    code, _, err = run_cli(["evaluate", str(target)])
    assert code == 2
    assert err.startswith("digitlab: error: ")
    assert str(target) in err
    assert "not a run directory" in err


# ---------------------------------------------------------------- train: errors


def test_out_pointing_at_a_non_empty_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, stdout, err = run_cli(["train", "--dataset", "synthetic", "--epochs", "1",
                                 "--out", str(out)])
    assert code == 2
    assert err.startswith("digitlab: error: ") and "not empty" in err
    assert files_under(out) == {"keep.txt"}
    assert (out / "keep.txt").read_text() == "precious"


def test_out_pointing_at_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "a-file"
    out.write_text("x")
    code, _, err = run_cli(["train", "--dataset", "synthetic", "--out", str(out)])
    assert code == 2
    assert out.read_text() == "x"


def test_nan_guard_on_a_diverging_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--dataset", "synthetic", "--epochs", "1",
                            "--set", "optim.lr=1e6", "--set", "optim.name=sgd",
                            "--out", str(run)])
    assert code == 1
    assert err.startswith("digitlab: error: ")
    assert re.search(r"epoch 1, batch \d+", err), err
    assert "optim.lr" in err  # the remedy
    summary = read_json(run / "summary.json")
    assert summary["status"] == "failed"
    assert summary["epoch"] == 1


def patch_loss(monkeypatch, bad: int) -> None:
    """Make cross-entropy return NaN from the (bad + 1)-th training call on (evaluation calls,
    made without gradients, are left alone)."""
    real = torch.nn.functional.cross_entropy
    calls = {"n": 0}

    def cross_entropy(*args, **kwargs):
        loss = real(*args, **kwargs)
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] > bad:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", cross_entropy)


def test_nan_guard_names_the_batch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    patch_loss(monkeypatch, bad=5)  # batches 0..4 are fine, batch 5 of epoch 1 is not
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--dataset", "synthetic", "--epochs", "2",
                            "--set", "train.log_interval=1", "--out", str(run)])
    # 32 batches per epoch: call 6 is epoch 1, batch 5
    assert code == 1
    assert "epoch 1, batch 5" in err, err
    summary = read_json(run / "summary.json")
    assert summary["status"] == "failed"
    assert (summary["epoch"], summary["batch"]) == (1, 5)


def test_nan_guard_between_log_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    patch_loss(monkeypatch, bad=32 + 3)  # epoch 2, batch 3: not a log step (interval 100)
    run = tmp_path / "run"
    code, _, err = run_cli(["train", "--dataset", "synthetic", "--epochs", "2",
                            "--out", str(run)])
    assert code == 1
    assert "epoch 2" in err, err
    assert read_json(run / "summary.json")["status"] == "failed"
    # epoch 1 completed and was checkpointed; epoch 2 never was
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    _, meta = load_checkpoint(run / "checkpoints" / "last.safetensors")
    assert meta["epoch"] == 1


# ---------------------------------------------------------------- entry points


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DIGITLAB_DATA", None)
    return env


def test_python_dash_m_help(tmp_path):
    result = subprocess.run([sys.executable, "-m", "digitlab", "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert "usage: digitlab" in result.stdout
    for command in ("train", "evaluate"):
        assert command in result.stdout
    assert list(tmp_path.iterdir()) == []


def console_script() -> str | None:
    beside = Path(sys.executable).parent / "digitlab"
    return str(beside) if beside.is_file() else shutil.which("digitlab")


def test_console_script_version(tmp_path):
    script = console_script()
    if script is None:
        pytest.skip("the `digitlab` console script is not installed")
    result = subprocess.run([script, "--version"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"digitlab {digitlab.__version__}"


def test_train_help_shows_the_defaults(capsys):
    """`digitlab train --help` states the default recipe and each shortcut's default, and they
    are the Config defaults (the help text writes them by hand, so this catches drift)."""
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    text = flat(capsys.readouterr().out)
    defaults = Config()
    shortcuts = {"--dataset": defaults.data.name, "--model": defaults.model.name,
                 "--epochs": defaults.train.epochs, "--seed": defaults.train.seed,
                 "--device": defaults.train.device}
    for option, value in shortcuts.items():
        shown = rf"{option} [A-Z_]+ [^()]*\(default: {re.escape(str(value))}\)"
        assert re.search(shown, text), option
    assert "--out OUT run directory (default: runs/<time>-<dataset>-<model>)" in text
    recipe = re.search(r"recipe: MLP 784-(\d+)-(\d+)-10, Adam ([\d.e-]+), batch (\d+), "
                       r"(\d+) epochs", text)
    assert recipe, text
    hidden = [m.out_features for m in build_model(defaults.model, 10).modules()
              if isinstance(m, torch.nn.Linear)][:-1]
    assert [int(recipe[1]), int(recipe[2])] == hidden
    assert defaults.optim.name == "adam" and float(recipe[3]) == defaults.optim.lr
    assert int(recipe[4]) == defaults.data.batch_size
    assert int(recipe[5]) == defaults.train.epochs


# ---------------------------------------------------------------- paths printed by rich


def test_run_dir_with_brackets_is_printed_verbatim(tmp_path, monkeypatch, no_analysis):
    """Paths are printed as text, not parsed as rich markup ('[x]' would vanish)."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run[x]"
    code, out, err = run_cli(["train", "--dataset", "synthetic", "--epochs", "1",
                              "--out", str(run)])
    assert code == 0, err
    assert f"Run saved to {run}" in out


def test_run_dir_like_a_closing_tag_does_not_crash(tmp_path, monkeypatch, no_analysis):
    """'[/x]' in a path once made rich raise MarkupError after config.toml was written."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "a[" / "b[/x]"
    code, out, err = run_cli(["train", "--dataset", "synthetic", "--epochs", "1",
                              "--out", str(run)])
    assert code == 0, err
    assert read_json(run / "summary.json")["status"] == "completed"


def test_a_closed_pipe_ends_quietly(monkeypatch, capsys):
    """`digitlab predict DIR | head` used to end with "error: cannot read or write ?: Broken
    pipe" once head had read its lines; the reader stopping is not an error to report."""
    import digitlab.cli as cli

    def closed_pipe(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(cli.COMMANDS, "list", closed_pipe)
    assert cli.main(["list"]) == 1
    assert capsys.readouterr().err == ""


def test_piping_into_head_prints_no_error(tmp_path):
    import subprocess
    import sys

    script = ("import sys\nfrom digitlab.cli import main\n"
              "import digitlab.cli as cli\n"
              "def many(args):\n"
              "    for i in range(200_000):\n"
              "        print('line', i)\n"
              "    return 0\n"
              "cli.COMMANDS['list'] = many\n"
              "sys.exit(main(['list']))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"line 0\n"
    proc.stdout.close()  # what head does after its lines
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and err == b"", err
