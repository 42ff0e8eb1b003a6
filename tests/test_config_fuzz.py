"""Property: any overrides either fail in apply_overrides with a ConfigError, or give a config
that trains on `synthetic`, or fail before anything is written with exit 2. Never a traceback.

Values are drawn per field type, plausible and hostile (negative, huge, nan, inf, 1e308, wrong
types). A few fields are pinned so that one example trains in about a second: the dataset, the
device, one epoch, no torch.compile, and widths or L-BFGS iterations that stay small whenever
they are valid. DIGITLAB_FUZZ_EXAMPLES=500 explores further, with fresh random draws.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import typing
from pathlib import Path

import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rich.console import Console

from digitlab.config import SECTIONS, Config, apply_overrides, build_config
from digitlab.data import SOURCES
from digitlab.errors import ConfigError, DigitlabError, TrainingError
from digitlab.models import ACTIVATIONS, INIT_SCHEMES, MODELS
from digitlab.training import loop
from digitlab.training.losses import LOSSES
from digitlab.training.optim import OPTIMIZERS, SCHEDULERS

EXAMPLES = int(os.environ.get("DIGITLAB_FUZZ_EXAMPLES", "0")) or 25
PINNED = {"data.name": "synthetic", "train.device": "cpu", "train.epochs": 1,
          "train.compile": False}  # train.out is pinned per example
FIELD_TYPES = {f"{section}.{name}": typ for section, cls in SECTIONS.items()
               for name, typ in typing.get_type_hints(cls).items()}

# Hostile values of each type, and values of every type for a field of another.
HOSTILE = {
    int: st.sampled_from([-(2**63), -1, 0, 2**31, 2**32, 2**63 - 1]),
    float: st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0, -1.0]),
    str: st.sampled_from(["", "none", "../x", "\x00", "ü"]) | st.text(max_size=8),
    bool: st.booleans(),
}
WRONG_TYPE = st.one_of(*HOSTILE.values(), st.lists(HOSTILE[int], max_size=2))
DEFAULTS = {f"{section}.{f.name}": getattr(getattr(Config(), section), f.name)
            for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
CHOICES = {
    "data.name": SOURCES.names(), "model.name": MODELS.names(),
    "model.activation": ACTIVATIONS.names(), "loss.name": LOSSES.names(),
    "optim.name": OPTIMIZERS.names(), "sched.name": SCHEDULERS.names(),
    "model.init": INIT_SCHEMES, "data.loader": ("device", "torch"),
    "data.imbalance_profile": ("exponential", "step"),
    "data.balance": ("none", "weights", "sampler", "lecun"), "model.pool": ("max", "avg"),
    "model.gelu_approximate": ("none", "tanh"), "optim.line_search": ("strong_wolfe", "none"),
    "train.amp": ("off", "bf16", "fp16"), "train.mode": ("auto", "min", "max"),
    "train.cuda_graphs": ("auto", True, False, "AUTO", "on"),
    "train.monitor": ("val_loss", "val_accuracy", "test_loss", "test_accuracy"),
    "loss.teacher": ("", "nowhere", ".", "TEACHER"),  # TEACHER: a trained run (digits_run)
}
# Settings that make a parameter matter, added to half the examples that draw it
USED_BY = {
    **{f"model.{name}": {"model.activation": activation} for name, activation in [
        ("negative_slope", "leakyrelu"), ("rrelu_lower", "rrelu"), ("rrelu_upper", "rrelu"),
        ("prelu_per_channel", "prelu"), ("softplus_beta", "softplus"),
        ("softplus_threshold", "softplus"), ("alpha", "celu"), ("gelu_approximate", "gelu"),
        ("hardtanh_min", "hardtanh"), ("hardtanh_max", "hardtanh"), ("threshold", "threshold"),
        ("threshold_value", "threshold"), ("shrink_lambda", "softshrink")]},
    **{f"model.{name}": {"model.name": "cnn", "model.channels": [4]}
       for name in ("channels", "kernel_size", "pool")},
    **{f"loss.{name}": {"loss.name": loss} for name, loss in [
        ("pos_weight", "bce"), ("smooth_l1_beta", "smooth-l1"), ("margin", "multi-margin"),
        ("margin_p", "multi-margin"), ("focal_gamma", "focal"), ("focal_alpha", "focal")]},
    "loss.distill_temperature": {"loss.name": "kl-div", "loss.teacher": "TEACHER"},
    **{f"optim.{name}": {"optim.name": optimizer} for name, optimizer in [
        ("momentum", "sgd"), ("nesterov", "sgd"), ("dampening", "sgd"), ("alpha", "rmsprop"),
        ("centered", "rmsprop"), ("rho", "adadelta"), ("lr_decay", "adagrad"),
        ("initial_accumulator_value", "adagrad"), ("momentum_decay", "nadam"),
        ("etas", "rprop"), ("step_sizes", "rprop"), ("lambd", "asgd"), ("asgd_alpha", "asgd"),
        ("t0", "asgd"), ("max_iter", "lbfgs"), ("history_size", "lbfgs"),
        ("line_search", "lbfgs")]},
    **{f"sched.{name}": {"sched.name": schedule} for name, schedule in [
        ("step_size", "step"), ("gamma", "exponential"), ("milestones", "multistep"),
        ("min_lr", "cosine"), ("restart_epochs", "cosine-warm-restarts"),
        ("restart_mult", "cosine-warm-restarts"), ("pct_start", "onecycle"),
        ("div_factor", "onecycle"), ("final_div_factor", "onecycle")]},
    **{f"sched.{name}": {"sched.name": "plateau", "data.val_size": 0.1}
       for name in ("factor", "patience")},
    "sched.warmup_start_factor": {"sched.warmup_epochs": 0.5},
    **{f"train.{name}": {"train.early_stop_patience": 1, "data.val_size": 0.1}
       for name in ("monitor", "mode", "min_delta")},
    **{f"data.{name}": {"data.balance": "lecun", "data.imbalance_ratio": 10.0}
       for name in ("imbalance_profile", "balance_finetune_epochs")},
}
# Valid sizes stay small, so that a valid example trains in about a second; the invalid ones
# (0, negative, past a bound, 10**12) must all be refused by the config.
SIZES = st.sampled_from([1, 2, 8, 8, 0, -1, 4097, 65537, 10**12, 2**63 - 1])
SPECIAL = {
    "model.hidden": st.lists(SIZES, max_size=3),
    "model.channels": st.lists(SIZES, max_size=5),
    "model.kernel_size": st.sampled_from([1, 3, 5, 27, 29, 2, 0, -3, 2**63 - 1]),
    "optim.max_iter": st.sampled_from([1, 2, 3, 0, -1]),  # valid: L-BFGS work per step
    "optim.history_size": st.sampled_from([1, 5, 0, -1, 10**12]),
    "data.batch_size": st.sampled_from([64, 500, 2000, 2**62, 0, -5]),  # few steps an epoch
    "data.test_batch_size": st.sampled_from([64, 500, 2000, 2**62, 0, -5]),
    "data.num_workers": st.sampled_from([0, -1, 65, 2**63 - 1]),  # workers are slow to start
    "data.val_size": st.sampled_from([0.0, 0.1, 0.5, 100.0, 1999.0, 2000.0, 0.999, -0.1, 1.5,
                                      1e308, math.inf, math.nan]),
}


def near(default: object, typ: object):
    """Values near a field's default: mostly valid, so that many examples get to train."""
    if typ is bool:
        return st.booleans()
    if default is None:  # an element of a list that has no default length
        return st.integers(1, 5) if typ is int else st.floats(0, 2)
    if typ is int:
        return st.sampled_from([-1, 0, 1, 2]).map(lambda step: default + step)
    if typ is float:
        return st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0]).map(lambda f: default * f) \
            | st.floats(0, 1)
    return st.just(default)


def mostly(common, *rare):
    """`common` 8 times in 10, else one of `rare` (one_of alone would draw each equally)."""
    return st.integers(0, 9).flatmap(lambda i: common if i < 8 else rare[i % len(rare)])


def for_type(key: str, typ: object):
    """Mostly plausible values, then hostile ones of the field's type, then other types."""
    if key in SPECIAL:
        return mostly(SPECIAL[key], WRONG_TYPE)
    if typing.get_origin(typ) is tuple:
        element = typing.get_args(typ)[0]
        default = DEFAULTS.get(key, ())
        same_length = st.tuples(*(near(x, element) for x in default))
        any_length = st.lists(for_type(key + "[]", element), max_size=4)
        return mostly(same_length, any_length, WRONG_TYPE)
    if key in CHOICES:
        plausible = st.sampled_from(CHOICES[key])
    else:
        plausible = near(DEFAULTS.get(key), typ)
    return mostly(plausible, HOSTILE.get(typ, WRONG_TYPE), WRONG_TYPE)


def values_for(keys: list[str]):
    """A value for each key, with (half the time) the settings that make the keys matter."""
    context = {k: v for key in keys for k, v in USED_BY.get(key, {}).items()}
    drawn = st.fixed_dictionaries({key: for_type(key, FIELD_TYPES[key]) for key in keys})
    return st.tuples(drawn, st.booleans()).map(
        lambda pair: {**(context if pair[1] else {}), **pair[0]})


overrides = st.lists(st.sampled_from(sorted(set(FIELD_TYPES) - set(PINNED) - {"train.out"})),
                     min_size=1, max_size=3, unique=True).flatmap(values_for)


def train_or_refuse(cfg: Config, run_dir: Path) -> None:
    """Train; any failure must be a DigitlabError, and a refusal (exit 2) writes nothing."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        summary = loop.train(cfg, console=Console(quiet=True))
    except TrainingError as e:  # the run diverged (nan loss) and says so on disk ...
        event("trained, then diverged")
        failed = json.loads((run_dir / "summary.json").read_text())
        # ... but only after a step: a first loss that is not finite is the config's fault
        assert (failed["epoch"], failed["batch"]) != (1, 0), f"{e}"
        return
    except DigitlabError as e:
        event(f"refused at run time: {type(e).__name__}")
        assert e.exit_code == 2, f"{type(e).__name__} exit {e.exit_code}: {e}"
        assert "\n" not in str(e), str(e)
        assert not run_dir.exists(), f"refused after writing {run_dir}: {e}"
        return
    finally:
        torch.use_deterministic_algorithms(deterministic)  # train.deterministic is global
    event("trained")
    assert summary["status"] == "completed"
    assert (run_dir / "checkpoints" / "last.safetensors").is_file()


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          derandomize="DIGITLAB_FUZZ_EXAMPLES" not in os.environ,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(overrides=overrides)
def test_any_overrides_are_refused_or_train(overrides, no_analysis, digits_run):
    overrides = {k: str(digits_run) if v == "TEACHER" else v for k, v in overrides.items()}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        pinned = {**PINNED, "train.out": str(run_dir)}
        try:
            cfg = apply_overrides(Config(), {**overrides, **pinned})
        except ConfigError as e:
            event("refused by the config")
            assert "\n" not in str(e), str(e)
            return
        train_or_refuse(cfg, run_dir)


TRICKY_TEXT = ['"unterminated', "'x' y", '"a\\u0000b"', "nan", "-inf", "1e999", "[1, [2]]",
               "{a = 1}", "1979-05-27", "0x10", "[" * 50, "1\n[x]", '"""', "", " "]


@settings(max_examples=EXAMPLES * 8, deadline=None, database=None,
          derandomize="DIGITLAB_FUZZ_EXAMPLES" not in os.environ)
@given(key=st.sampled_from(sorted(FIELD_TYPES)) | st.text(max_size=12),
       raw=st.sampled_from(TRICKY_TEXT) | st.text(max_size=20))
def test_any_set_text_is_parsed_or_refused(key, raw):
    """`--set KEY=TEXT` gives a Config or one line of ConfigError, whatever the text."""
    try:
        build_config(sets=[f"{key}={raw}"])
    except ConfigError as e:
        assert "\n" not in str(e), str(e)
