"""CUDA graphs for the training step (training/graphs.py), as far as a CPU can check them: the
decision (what needs the eager loop, and what each setting of train.cuda_graphs does with it),
the device hyperparameters the captured optimizer reads, and a checkpoint's optimizer flags.
The graphed step itself runs only on CUDA: tests/training/test_gpu.py."""

from __future__ import annotations

import io
import json

import pytest
import torch
from rich.console import Console

from digitlab.cli import main
from digitlab.config import Config, ModelConfig
from digitlab.config.loading import apply_overrides
from digitlab.errors import UsageError
from digitlab.models import build_model
from digitlab.training import graphs
from digitlab.training.checkpoint import load_checkpoint, restore_optimizer, save_checkpoint
from digitlab.training.losses import Criterion
from digitlab.training.optim import OPTIMIZERS, Schedule, param_groups
from digitlab.training.step import TrainStep

CUDA = torch.device("cuda")  # blockers() looks at the type only: no GPU needed to ask

# one setting each, and the reason it gives
BLOCKING = [
    ({"optim.name": "lbfgs"}, "optim.name is not adam or adamw"),
    ({"optim.name": "sgd"}, "optim.name is not adam or adamw"),
    ({"loss.name": "kl-div", "loss.teacher": "runs/teacher"}, "a teacher model (loss.teacher)"),
    ({"data.loader": "torch"}, "data.loader = 'torch' (batches from the host)"),
    ({"data.balance": "weights"}, "data.balance = 'weights' (the loss changes between epochs)"),
    ({"data.augment_shift": 2}, "data augmentation (its generator is reseeded every epoch)"),
    ({"loss.temperature": 0.5}, "an annealed loss temperature"),
    ({"train.compile": True}, "train.compile (torch.compile makes graphs of its own)"),
    ({"train.amp": "fp16"}, "train.amp = 'fp16' (its gradient scaler checks on the host)"),
    ({"train.accum_steps": 2}, "train.accum_steps > 1"),
]


def test_a_plain_cuda_run_can_be_graphed():
    assert graphs.blockers(Config(), CUDA, False) == []
    for preset in ({"optim.name": "adamw", "sched.name": "onecycle", "train.clip_norm": 1.0,
                    "train.amp": "bf16", "model.name": "cnn", "model.dropout": 0.2,
                    "data.balance": "sampler"},):
        assert graphs.blockers(apply_overrides(Config(), preset), CUDA, False) == []


@pytest.mark.parametrize("sets,reason", BLOCKING, ids=[r for _s, r in BLOCKING])
def test_each_blocker_is_named(sets, reason):
    assert graphs.blockers(apply_overrides(Config(), sets), CUDA, False) == [reason]


def test_cpu_and_ddp_block_too():
    assert graphs.blockers(Config(), torch.device("cpu"), False) == ["the run is not on CUDA"]
    assert graphs.blockers(Config(), CUDA, True) == ["DDP (torchrun)"]


def test_decide_follows_the_setting():
    blocked = apply_overrides(Config(), {"data.augment_shift": 2})
    assert graphs.decide(Config(), CUDA, False) == (True, [])
    assert graphs.decide(blocked, CUDA, False) == (
        False, ["data augmentation (its generator is reseeded every epoch)"])
    off = apply_overrides(Config(), {"train.cuda_graphs": False})
    assert graphs.decide(off, CUDA, False) == (False, ["train.cuda_graphs = false"])
    forced = apply_overrides(blocked, {"train.cuda_graphs": True})
    with pytest.raises(UsageError, match=r"cannot replay its step as a CUDA graph: data "
                                         r"augmentation .*; set it to \"auto\" or false"):
        graphs.decide(forced, CUDA, False)
    assert graphs.decide(apply_overrides(Config(), {"train.cuda_graphs": True}), CUDA,
                         False) == (True, [])


def eager_parts(cfg: Config):
    model = build_model(cfg.model, 10)
    optimizer = OPTIMIZERS.get(cfg.optim.name)(param_groups(model, cfg.optim), cfg.optim)
    schedule = Schedule(optimizer, cfg.sched, [10])
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    criterion = Criterion(cfg.loss, 10, 10, torch.device("cpu"))
    return model, optimizer, schedule, scaler, criterion


def test_auto_on_cuda_says_why_it_stays_eager():
    """The line a CUDA user sees when something in the config needs the eager loop."""
    cfg = apply_overrides(Config(), {"data.augment_shift": 2})
    out = io.StringIO()
    step = graphs.make_step(cfg, CUDA, False, Console(file=out, width=200), *eager_parts(cfg))
    assert type(step) is TrainStep
    assert out.getvalue().strip() == ("CUDA graphs off, the eager loop instead: data "
                                      "augmentation (its generator is reseeded every epoch)")
    assert step.graphs == {"used": False, "reason": "data augmentation (its generator is "
                                                   "reseeded every epoch)"}
    out = io.StringIO()  # on a CPU the eager loop is the only one: nothing to say
    graphs.make_step(cfg, torch.device("cpu"), False, Console(file=out), *eager_parts(cfg))
    assert out.getvalue() == ""


def test_true_on_a_cpu_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "synthetic", "--epochs", "1", "--device", "cpu",
                 "--set", "train.cuda_graphs=true", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "train.cuda_graphs = true, but this run cannot replay its step as a CUDA graph: " \
           "the run is not on CUDA" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_summary_says_why_a_run_was_eager(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--epochs", "1", "--device", "cpu",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cuda_graphs"] == {"used": False, "reason": "the run is not on CUDA"}


def adam_groups(sched: str = "onecycle"):
    cfg = apply_overrides(Config(), {"sched.name": sched, "optim.lr": 0.01})
    model, optimizer, schedule, _scaler, _criterion = eager_parts(cfg)
    return optimizer, schedule


@pytest.mark.filterwarnings("ignore:Detected call of .lr_scheduler.step")
def test_device_hyperparameters_follow_the_schedule():
    """The schedule writes floats (onecycle: lr and Adam's beta1); the tensors the captured
    step reads get them before each replay, and only changed values are copied."""
    optimizer, schedule = adam_groups()
    hyper = graphs.DeviceHyperparams(optimizer, torch.device("cpu"))
    group = optimizer.param_groups[0]
    assert (group["capturable"], group["fused"], group["foreach"]) == (True, False, True)
    for _ in range(3):
        hyper.refresh()
        assert hyper.tensors[0]["lr"].item() == pytest.approx(group["lr"])
        assert hyper.tensors[0]["betas"][0].item() == pytest.approx(group["betas"][0])
        assert hyper.tensors[0]["betas"][1].item() == pytest.approx(group["betas"][1])
        schedule.after_batch()
    fills = []
    real_fill = torch.Tensor.fill_
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.Tensor, "fill_", lambda t, v: fills.append(v) or real_fill(t, v))
        hyper.refresh()  # the lr and beta1 moved: the lr, then both betas (a pair) are copied
        assert len(fills) == 3
        fills.clear()
        hyper.refresh()
        assert fills == []  # nothing moved since


def test_as_tensors_swaps_and_restores_floats():
    optimizer, _schedule = adam_groups("none")
    hyper = graphs.DeviceHyperparams(optimizer, torch.device("cpu"))
    group = optimizer.param_groups[0]
    with hyper.as_tensors():
        assert group["lr"] is hyper.tensors[0]["lr"]
        assert group["betas"] == hyper.tensors[0]["betas"]
        assert isinstance(group["betas"][0], torch.Tensor)
    assert group["lr"] == 0.01 and group["betas"] == (0.9, 0.999)
    assert isinstance(group["lr"], float)
    # a checkpoint holds floats, and the capturable multi-tensor kernels run on a CPU too
    json.dumps(optimizer.state_dict()["param_groups"])


def test_a_checkpoint_keeps_the_running_optimizers_kernels(tmp_path):
    """A run saved with capturable kernels (CUDA graphs) resumes on a CPU with fused ones,
    and the other way round: the flags are how this process runs, not what was learned."""
    model = build_model(ModelConfig(name="mlp", hidden=(8,)), 10)
    graphed = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)
    model(torch.randn(4, 1, 28, 28)).sum().backward()
    graphed.step()
    for group in graphed.param_groups:  # as a GraphedStep leaves them (its steps need CUDA)
        group.update(capturable=True, fused=False, foreach=True)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model, graphed, {"config": {}})
    tensors, meta = load_checkpoint(path)
    assert meta["optimizer"]["param_groups"][0]["capturable"] is True
    resumed = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)
    restore_optimizer(resumed, tensors, meta)
    group = resumed.param_groups[0]
    assert (group["capturable"], group["fused"]) == (False, True)
    model(torch.randn(4, 1, 28, 28)).sum().backward()
    resumed.step()  # before the fix: capturable=True on CPU parameters raised here
