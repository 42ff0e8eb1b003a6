"""Rough edges a new user hit: names in any letter case (--set model.activation=ReLU), bare
keys (--set lr=0.1) that suggest the full key, and the --lr and --batch-size shortcuts."""

from __future__ import annotations

import pytest

import digitlab.training
import digitlab.training.sweep
import digitlab.viz.figures
from digitlab.catalog import REGISTRIES
from digitlab.cli import main
from digitlab.config import Config, build_config, load_run_config, to_dict, to_toml
from digitlab.errors import ConfigError
from digitlab.models import INIT_SCHEMES
from digitlab.registry import Registry
from helpers import flat

# what a name needs besides itself to make a valid Config
NEEDS = {("data.name", "folder"): ["data.dir=images"], ("data.name", "csv"): ["data.dir=a.csv"],
         ("sched.name", "plateau"): ["data.val_size=0.1"],
         ("model.name", "crnn"): ["train.task=read"]}
ENTRIES = [(key, name) for registry, key in REGISTRIES.values() for name in registry.names()]
ENTRIES += [("model.init", name) for name in INIT_SCHEMES]


def spellings(name: str) -> list[str]:
    """"relu" -> ["RELU", "ReLu", "rElU"]: upper, capitalized and alternating case."""
    alternating = "".join(c.upper() if i % 2 else c for i, c in enumerate(name))
    return [name.upper(), name.capitalize(), alternating]


def errors_of(capsys, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


# ---------------------------------------------------------------- names in any letter case


@pytest.mark.parametrize("key, name", ENTRIES)
def test_every_name_in_any_case_resolves_to_the_registered_one(key, name):
    section, field = key.split(".")
    for spelling in spellings(name):
        cfg, _explicit = build_config(sets=[f"{key}={spelling}", *NEEDS.get((key, name), [])])
        assert to_dict(cfg)[section][field] == name, spelling
        assert f'{field} = "{name}"' in to_toml(cfg).split(f"[{section}]")[1]


def test_registry_lookups_ignore_case():
    reg = Registry("widget")
    reg.register("seed-mlp", "a widget")(lambda: "w")
    assert "SEED-MLP" in reg and reg.canonical("Seed-MLP") == "seed-mlp"
    assert reg.get("SeEd-MlP")() == "w" and reg.describe("SEED-MLP") == "a widget"
    assert reg.canonical("seed") is None and "seed" not in reg
    with pytest.raises(ValueError, match="registered twice"):  # one name, two spellings
        reg.register("Seed-MLP")(lambda: "v")


@pytest.mark.parametrize("item, value", [("model.pool=MAX", "max"), ("train.amp=BF16", "bf16"),
                                         ("data.balance=Weights", "weights")])
def test_fixed_choices_ignore_case_too(item, value):
    key, _sep, _raw = item.partition("=")
    section, field = key.split(".")
    cfg, _explicit = build_config(sets=[item])
    assert to_dict(cfg)[section][field] == value


@pytest.mark.parametrize("item, pattern", [
    ("model.activation=ReLUU", r"unknown activation 'ReLUU' \(did you mean 'relu'\?\); "
                               r"choose from \['relu', "),
    ("optim.name=ADAMM", r"unknown optimizer 'ADAMM' \(did you mean 'adam'\?\)"),
    ("model.init=KAIMIN", r"model.init must be one of .*got 'KAIMIN' \(did you mean 'kaiming'"),
])
def test_unknown_names_still_fail_with_the_list(item, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_config(sets=[item])


def test_train_records_the_registered_spelling(tmp_path, no_analysis, capsys):
    """The issue's command: mixed-case names train, and the run records 'relu' and 'adam'."""
    run = tmp_path / "run"
    code = main(["train", "--dataset", "Digits", "--epochs", "1", "--device", "cpu",
                 "--set", "model.activation=ReLU", "--set", "optim.name=Adam", "--lr", "0.01",
                 "--batch-size", "32", "--out", str(run)])
    assert code == 0, capsys.readouterr().err
    cfg = load_run_config(run / "config.toml")
    assert (cfg.data.name, cfg.model.activation, cfg.optim.name) == ("digits", "relu", "adam")
    assert (cfg.optim.lr, cfg.data.batch_size) == (0.01, 32)
    text = (run / "config.toml").read_text()
    assert 'activation = "relu"' in text and 'name = "adam"' in text and "ReLU" not in text


# ---------------------------------------------------------------- bare and misplaced keys


@pytest.mark.parametrize("item, hint", [
    ("lr=0.1", "unknown config key 'lr'; did you mean optim.lr?"),
    ("batch_size=32", "unknown config key 'batch_size'; did you mean data.batch_size?"),
    ("epoch=3", "unknown config key 'epoch'; did you mean train.epochs?"),
    ("alpha=0.5", "unknown config key 'alpha'; did you mean one of model.alpha, optim.alpha?"),
    ("train.lr=0.1", "unknown config key 'train.lr' (did you mean optim.lr?); train has"),
    ("zzz=1", "unknown config key 'zzz'; a key is section.name, e.g. optim.lr, with section "
              "one of ['data', 'model', 'loss', 'optim', 'sched', 'train']"),
])
def test_a_bare_key_suggests_the_full_key(item, hint, capsys):
    code, err = errors_of(capsys, ["train", "--set", item])
    assert code == 2
    assert err.startswith(f"digitlab: error: {hint}") and err.count("\n") == 1, err


def test_a_bare_grid_key_suggests_the_full_key(tmp_path, capsys):
    code, err = errors_of(capsys, ["sweep", "--grid", "lr=0.1,0.01", "--out", str(tmp_path)])
    assert code == 2
    assert err == "digitlab: error: unknown config key 'lr'; did you mean optim.lr?\n"


# ---------------------------------------------------------------- --lr and --batch-size


class Stop(Exception):
    """Raised by the stubs below with the Config a command built, before it does any work."""


@pytest.fixture
def built(monkeypatch):
    """Stops train, sweep and plot schedule at their Config: built(argv) -> Config."""
    def stop(cfg, *args, **kwargs):
        raise Stop(cfg)

    def plan_and_stop(*args, **kwargs):
        raise Stop(real_plan(*args, **kwargs).cfg)

    real_plan = digitlab.training.sweep.plan_sweep
    monkeypatch.setattr(digitlab.training, "train", stop)
    monkeypatch.setattr(digitlab.viz.figures, "schedule", stop)
    monkeypatch.setattr(digitlab.training.sweep, "plan_sweep", plan_and_stop)

    def config_of(argv: list[str]) -> Config:
        with pytest.raises(Stop) as exc:
            main(argv)
        return exc.value.args[0]

    return config_of


COMMANDS = {"train": ["train"], "sweep": ["sweep", "--grid", "train.seed=1,2", "--out", "sw"],
            "plot schedule": ["plot", "schedule", "--steps-per-epoch", "3"]}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_shortcuts_are_the_same_as_set(command, built, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = COMMANDS[command]
    cfg = built([*argv, "--lr", "0.02", "--batch-size", "16"])
    assert (cfg.optim.lr, cfg.data.batch_size) == (0.02, 16)
    assert cfg == built([*argv, "--set", "optim.lr=0.02", "--set", "data.batch_size=16"])
    # as with --epochs, an explicit --set wins over the shortcut
    assert built([*argv, "--lr", "0.5", "--set", "optim.lr=0.02"]).optim.lr == 0.02


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("option, item, message", [
    ("--lr=-1", "optim.lr=-1", "optim.lr must be a number > 0, got -1"),
    ("--lr=inf", "optim.lr=inf", "optim.lr must be a finite number, got inf"),
    ("--batch-size=0", "data.batch_size=0", "data.batch_size must be an integer >= 1, got 0"),
])
def test_shortcuts_are_checked_like_set(command, option, item, message, capsys, tmp_path,
                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = COMMANDS[command]
    code, err = errors_of(capsys, [*argv, option])
    assert (code, err) == errors_of(capsys, [*argv, "--set", item])
    assert code == 2 and message in err


def test_resume_refuses_the_new_shortcuts(tmp_path, capsys):
    code, err = errors_of(capsys, ["train", "--resume", str(tmp_path), "--lr", "0.1",
                                   "--batch-size", "8"])
    assert code == 2
    assert "--resume continues a run with its own config" in err and "--lr --batch-size" in err


def test_train_help_shows_the_new_shortcuts_and_their_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = flat(capsys.readouterr().out)
    defaults = Config()
    assert f"--lr X shortcut for --set optim.lr=X (default: {defaults.optim.lr})" in text
    assert (f"--batch-size N shortcut for --set data.batch_size=N (default: "
            f"{defaults.data.batch_size})") in text
