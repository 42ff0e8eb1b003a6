"""digitlab.config: tutorial defaults, TOML files, --set, shortcuts, round trips, errors."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from digitlab.cli import main
from digitlab.config import (
    SHORTCUTS,
    Config,
    DataConfig,
    LossConfig,
    OptimConfig,
    SchedConfig,
    TrainConfig,
    build_config,
    from_dict,
    load_run_config,
    read_toml,
    to_dict,
    to_toml,
)
from digitlab.errors import ConfigError, UsageError
from helpers import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_FILES = sorted((REPO / "configs").glob("*.toml"))


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- defaults


def test_defaults_are_the_tutorial_recipe():
    cfg = Config()
    assert cfg.data.name == "mnist"
    assert cfg.model.name == "seed-mlp"
    assert cfg.loss.name == "cross-entropy"
    assert cfg.loss.label_smoothing == 0.0
    assert cfg.optim.name == "adam"
    assert cfg.optim.lr == 1e-3
    assert cfg.optim.betas == (0.9, 0.999)
    assert cfg.optim.weight_decay == 0.0
    assert cfg.data.batch_size == 64
    assert cfg.data.test_batch_size == 1000
    assert cfg.train.epochs == 5
    assert cfg.data.mean == 0.1307
    assert cfg.data.std == 0.3081
    assert cfg.train.log_interval == 100
    assert cfg.sched.name == "none"
    assert cfg.data.loader == "device"


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().train.epochs = 3  # type: ignore[misc]


def test_no_overrides_gives_defaults():
    cfg, explicit = build_config()
    assert cfg == Config()
    assert explicit == set()


def test_seed_toml_is_exactly_the_defaults():
    path = REPO / "configs" / "seed.toml"
    if not path.is_file():
        pytest.skip("configs/seed.toml not written yet")
    cfg, explicit = build_config(path)
    assert cfg == Config()
    assert load_run_config(path) == Config()
    assert "data.name" in explicit  # a file naming the dataset makes that choice explicit


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[p.name for p in CONFIG_FILES])
def test_every_shipped_config_loads(path):
    cfg, explicit = build_config(path)
    assert isinstance(cfg, Config)
    assert explicit == set(read_toml(path))
    # what a run would record for it reads back to the same config
    assert from_dict(to_dict(cfg)) == cfg


# ---------------------------------------------------------------- TOML files


def test_toml_file_values_and_types(tmp_path):
    path = write(tmp_path / "c.toml", """
[data]
name = "digits"
dir = 'C:\\data\\mnist'
download = false
batch_size = 32
std = 1            # an integer where a float is expected is accepted

[optim]
name = "sgd"
lr = 0.05
betas = [0.8, 0.99]
momentum = 0.9

[sched]
name = "step"
step_size = 2
gamma = 0.5

[train]
epochs = 3
device = "cpu"
""")
    cfg, explicit = build_config(path)
    assert cfg.data.name == "digits"
    assert cfg.data.dir == "C:\\data\\mnist"
    assert cfg.data.download is False
    assert cfg.data.batch_size == 32
    assert cfg.data.std == 1.0 and isinstance(cfg.data.std, float)
    assert cfg.optim == OptimConfig(name="sgd", lr=0.05, betas=(0.8, 0.99), momentum=0.9)
    assert isinstance(cfg.optim.betas, tuple)
    assert cfg.sched == SchedConfig(name="step", step_size=2, gamma=0.5)
    assert cfg.train.epochs == 3 and cfg.train.device == "cpu"
    # untouched sections keep their defaults
    assert cfg.model == Config().model and cfg.loss == Config().loss
    assert explicit == {"data.name", "data.dir", "data.download", "data.batch_size", "data.std",
                        "optim.name", "optim.lr", "optim.betas", "optim.momentum",
                        "sched.name", "sched.step_size", "sched.gamma",
                        "train.epochs", "train.device"}


# ---------------------------------------------------------------- --set


@pytest.mark.parametrize("item, section, name, expected", [
    ("train.epochs=3", "train", "epochs", 3),
    ("train.epochs = 7", "train", "epochs", 7),
    ("optim.lr=3e-3", "optim", "lr", 3e-3),
    ("optim.lr=1", "optim", "lr", 1.0),
    ("data.download=false", "data", "download", False),
    ("data.download=true", "data", "download", True),
    ("optim.betas=[0.8, 0.99]", "optim", "betas", (0.8, 0.99)),
    ("optim.betas=[0, 0.5]", "optim", "betas", (0.0, 0.5)),
    ('data.dir="/some path/with spaces"', "data", "dir", "/some path/with spaces"),
    ("data.dir='/single/quoted'", "data", "dir", "/single/quoted"),
    ("data.dir=/plain/path", "data", "dir", "/plain/path"),
    ("data.dir=  padded  ", "data", "dir", "padded"),
    ("data.dir=a=b", "data", "dir", "a=b"),
    ("data.dir=", "data", "dir", ""),
    ("data.dir=123", "data", "dir", "123"),
    ("data.dir=true", "data", "dir", "true"),
    ("model.name=seed-mlp", "model", "name", "seed-mlp"),
    ("train.device=cuda:1", "train", "device", "cuda:1"),
    ("data.loader=torch", "data", "loader", "torch"),
    ("loss.label_smoothing=0.1", "loss", "label_smoothing", 0.1),
])
def test_set_parses_each_type(item, section, name, expected):
    cfg, explicit = build_config(sets=[item])
    value = getattr(getattr(cfg, section), name)
    assert value == expected
    assert type(value) is type(expected)
    assert explicit == {f"{section}.{name}"}


def test_later_sources_win(tmp_path):
    path = write(tmp_path / "c.toml", "[train]\nepochs = 2\nseed = 5\n[data]\nname = 'digits'\n")
    cfg, explicit = build_config(path, ["train.epochs=4", "train.epochs=6"],
                                 {"epochs": 3, "seed": 9, "dataset": None})
    assert cfg.train.epochs == 6  # --set beats the shortcut, the last --set wins
    assert cfg.train.seed == 9  # the shortcut beats the file
    assert cfg.data.name == "digits"  # a shortcut given as None changes nothing
    assert explicit == {"train.epochs", "train.seed", "data.name"}


def test_shortcuts_map_to_keys(tmp_path):
    shortcuts = {"dataset": "synthetic", "model": "seed-mlp", "epochs": 2, "seed": 3,
                 "device": "cpu", "data_dir": str(tmp_path), "out": str(tmp_path / "run")}
    assert set(shortcuts) == set(SHORTCUTS)
    cfg, explicit = build_config(shortcuts=shortcuts)
    assert cfg.data.name == "synthetic"
    assert cfg.model.name == "seed-mlp"
    assert cfg.train.epochs == 2
    assert cfg.train.seed == 3
    assert cfg.train.device == "cpu"
    assert cfg.data.dir == str(tmp_path)
    assert cfg.train.out == str(tmp_path / "run")
    assert explicit == set(SHORTCUTS.values())


def test_unset_shortcuts_are_not_explicit():
    cfg, explicit = build_config(shortcuts={name: None for name in SHORTCUTS})
    assert cfg == Config()
    assert explicit == set()
    _, explicit = build_config(shortcuts={"epochs": 1})
    assert explicit == {"train.epochs"}
    assert "data.name" not in explicit  # what decides whether the offline fallback may apply


# ---------------------------------------------------------------- to_toml round trip


def test_to_toml_round_trip_of_defaults(tmp_path):
    text = to_toml(Config())
    assert set(tomllib.loads(text)) == {"data", "model", "loss", "optim", "sched", "train"}
    assert load_run_config(write(tmp_path / "config.toml", text)) == Config()


def test_to_toml_round_trip_of_every_field(tmp_path):
    cfg = Config(
        data=DataConfig(name="digits", dir='C:\\Users\\me\\"my data"\\mnist ü', download=False,
                        mean=0.5, std=0.25, batch_size=7, test_batch_size=9, loader="torch",
                        num_workers=2),
        loss=LossConfig(label_smoothing=0.1),
        optim=OptimConfig(name="adamw", lr=3.14e-4, betas=(0.8, 0.95), eps=1e-7,
                          weight_decay=0.01, momentum=0.5),
        sched=SchedConfig(name="cosine", step_size=3, gamma=0.7, min_lr=1e-6),
        train=TrainConfig(epochs=11, seed=12345, device="cpu", log_interval=7,
                          out="runs/x y"),
    )
    text = to_toml(cfg)
    table = tomllib.loads(text)
    assert table["data"]["dir"] == cfg.data.dir
    assert load_run_config(write(tmp_path / "config.toml", text)) == cfg
    assert from_dict(to_dict(cfg)) == cfg


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("item, pattern", [
    ("foo.bar=1", r"unknown config section 'foo'"),
    ("optm.lr=1", r"unknown config section 'optm'.*did you mean 'optim'"),
    ("optim.lrr=1", r"unknown config key 'optim.lrr'.*did you mean 'lr'"),
    ("train.epoch=1", r"did you mean 'epochs'"),
    ("model.name=seed-mlpp", r"unknown model 'seed-mlpp'.*did you mean 'seed-mlp'"),
    ("data.name=minst", r"unknown dataset 'minst'.*did you mean 'mnist'"),
    ("optim.name=adamm", r"unknown optimizer 'adamm'.*did you mean 'adam'"),
    ("sched.name=cosin", r"unknown scheduler 'cosin'.*did you mean 'cosine'"),
    ("loss.name=cross-entropi", r"unknown loss 'cross-entropi'.*did you mean 'cross-entropy'"),
    ("model.name=zzzzzz", r"unknown model 'zzzzzz'; choose from \['seed-mlp'"),
    # bad types
    ("train.epochs=2.5", r"train.epochs must be an integer"),
    ("train.epochs=abc", r"train.epochs must be an integer, got 'abc'"),
    ("train.epochs=true", r"train.epochs must be an integer"),
    ("optim.lr=fast", r"optim.lr must be a number"),
    ("optim.lr=true", r"optim.lr must be a number"),
    ("data.download=yes", r"data.download must be true or false"),
    ("data.download=1", r"data.download must be true or false"),
    ("optim.betas=0.9", r"optim.betas must be a list of 2 values"),
    ("optim.betas=[0.9]", r"optim.betas must be a list of 2 values"),
    ("optim.betas=[0.9, 'a']", r"optim.betas\[1\] must be a number"),
    # bad ranges
    ("data.batch_size=0", r"data.batch_size must be an integer >= 1, got 0"),
    ("data.test_batch_size=-1", r"data.test_batch_size must be an integer >= 1"),
    ("optim.lr=-1", r"optim.lr must be a number > 0, got -1"),
    ("optim.lr=0", r"optim.lr must be a number > 0"),
    ("optim.lr=nan", r"optim.lr must be a number > 0"),
    ("optim.lr=inf", r"optim.lr must be a number > 0"),
    ("optim.betas=[0.9, 1.0]", r"optim.betas must be two numbers in \[0, 1\)"),
    ("train.epochs=0", r"train.epochs must be an integer >= 1, got 0"),
    ("train.seed=-1", r"train.seed must be an integer >= 0"),
    ("train.log_interval=0", r"train.log_interval must be an integer >= 1"),
    ("loss.label_smoothing=1.5", r"loss.label_smoothing must be in \[0, 1\), got 1.5"),
    ("loss.label_smoothing=-0.1", r"loss.label_smoothing must be in \[0, 1\)"),
    ("train.device=gpu", r"train.device must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N', "
                         r"got 'gpu'"),
    ("data.loader=fast", r"data.loader must be .*device.*torch"),
    ("data.std=0", r"data.std must be > 0"),
    ("sched.gamma=0", r"sched.gamma must be in \(0, 1\]"),
    ("optim.momentum=1", r"optim.momentum must be in \[0, 1\)"),
    # malformed --set
    ("optim.lr", r"--set expects section.key=value, got 'optim.lr'"),
    ("=3", r"--set expects section.key=value"),
    ("epochs=3", r"unknown config section 'epochs'"),
])
def test_bad_set_raises_config_error(item, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_config(sets=[item])


def test_config_error_is_a_usage_error_with_exit_code_2():
    assert issubclass(ConfigError, UsageError)
    assert ConfigError.exit_code == 2


def test_dataclass_checks_values_directly():
    with pytest.raises(ConfigError, match="data.batch_size"):
        DataConfig(batch_size=0)
    with pytest.raises(ConfigError, match="optim.lr"):
        OptimConfig(lr=-1.0)
    with pytest.raises(ConfigError, match="train.epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="loss.label_smoothing"):
        LossConfig(label_smoothing=1.5)
    with pytest.raises(ConfigError, match="train.device"):
        TrainConfig(device="gpu")


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"config file .*nope\.toml.* does not exist"):
        build_config(path)


def test_invalid_toml(tmp_path):
    path = write(tmp_path / "bad.toml", "[train]\nepochs = = 3\n")
    with pytest.raises(ConfigError, match=r"bad\.toml.* is not valid TOML"):
        build_config(path)


def test_toml_key_outside_a_section(tmp_path):
    path = write(tmp_path / "flat.toml", "epochs = 3\n")
    with pytest.raises(ConfigError, match=r"top-level key 'epochs' must be a \[section\]"):
        build_config(path)


@pytest.mark.parametrize("text, pattern", [
    ("[foo]\nx = 1\n", r"unknown config section 'foo'"),
    ("[optim]\nlrr = 1\n", r"unknown config key 'optim.lrr'.*did you mean 'lr'"),
    ("[train]\nepochs = '3'\n", r"train.epochs must be an integer, got '3'"),
    ("[train]\nepochs = 0\n", r"train.epochs must be an integer >= 1"),
    ("[data]\nname = 'minst'\n", r"did you mean 'mnist'"),
    ("[optim]\nbetas = [0.9, 0.99, 0.999]\n", r"optim.betas must be a list of 2 values"),
])
def test_bad_toml_values(tmp_path, text, pattern):
    path = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match=pattern):
        build_config(path)


def test_non_utf8_config_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes("[data]\ndir = 'caf\xe9'\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="cannot read config file"):
        build_config(path)


# ---------------------------------------------------------------- the CLI on config errors


@pytest.mark.parametrize("argv, pattern", [
    (["train", "--set", "optim.lrr=1"], "did you mean 'lr'"),
    (["train", "--set", "data.batch_size=0"], "data.batch_size"),
    (["train", "--dataset", "minst"], "did you mean 'mnist'"),
    (["train", "--config", "missing.toml"], "does not exist"),
    (["train", "--set", "optim.lr"], "--set expects"),
    (["train", "--device", "gpu"], "train.device"),
])
def test_cli_config_error_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys, argv,
                                                     pattern):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "x"
    assert main([*argv, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("digitlab: error: ")
    assert pattern in lines[0]
    assert captured.out == ""
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_cli_unknown_key_exact_case(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--set", "optim.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("digitlab: error: ")
    assert "optim.lrr" in err and "did you mean 'lr'" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_argparse_type_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "many"])
    assert exc.value.code == 2
    assert "--epochs" in capsys.readouterr().err
