"""CUDA graphs for the training step (training/graphs.py), as far as a CPU can check them: the
decision (what needs the eager loop, and what each setting of train.cuda_graphs does with it),
the device hyperparameters the captured optimizer reads, and a checkpoint's optimizer flags.
The graphed step itself runs only on CUDA: tests/training/test_gpu.py."""

from __future__ import annotations

import contextlib
import copy
import importlib
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
    ({"loss.temperature": 0.5}, "an annealed loss temperature"),
    ({"train.compile": True}, "train.compile (torch.compile makes graphs of its own)"),
    ({"train.amp": "fp16"}, "train.amp = 'fp16' (its gradient scaler checks on the host)"),
    ({"train.accum_steps": 2}, "train.accum_steps > 1"),
]


def test_a_plain_cuda_run_can_be_graphed():
    assert graphs.blockers(Config(), CUDA, False) == []
    for preset in ({"optim.name": "adamw", "sched.name": "onecycle", "train.clip_norm": 1.0,
                    "train.amp": "bf16", "model.name": "cnn", "model.dropout": 0.2,
                    "data.balance": "sampler", "data.augment_shift": 2,
                    "data.augment_rotate": 10},):
        assert graphs.blockers(apply_overrides(Config(), preset), CUDA, False) == []


@pytest.mark.parametrize("sets,reason", BLOCKING, ids=[r for _s, r in BLOCKING])
def test_each_blocker_is_named(sets, reason):
    assert graphs.blockers(apply_overrides(Config(), sets), CUDA, False) == [reason]


def test_cpu_and_ddp_block_too():
    assert graphs.blockers(Config(), torch.device("cpu"), False) == ["the run is not on CUDA"]
    assert graphs.blockers(Config(), CUDA, True) == ["DDP (torchrun)"]


def test_decide_follows_the_setting():
    blocked = apply_overrides(Config(), {"optim.name": "sgd"})
    assert graphs.decide(Config(), CUDA, False) == (True, [])
    assert graphs.decide(blocked, CUDA, False) == (
        False, ["optim.name is not adam or adamw"])
    off = apply_overrides(Config(), {"train.cuda_graphs": False})
    assert graphs.decide(off, CUDA, False) == (False, ["train.cuda_graphs = false"])
    forced = apply_overrides(blocked, {"train.cuda_graphs": True})
    with pytest.raises(UsageError, match=r"cannot replay its step as a CUDA graph: optim.name "
                                         r"is not adam or adamw; set it to \"auto\" or false"):
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
    cfg = apply_overrides(Config(), {"optim.name": "sgd"})
    out = io.StringIO()
    step = graphs.make_step(cfg, CUDA, False, Console(file=out, width=200), *eager_parts(cfg))
    assert type(step) is TrainStep
    assert out.getvalue().strip() == ("CUDA graphs off, the eager loop instead: optim.name is "
                                      "not adam or adamw")
    assert step.graphs == {"used": False, "reason": "optim.name is not adam or adamw"}
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


# ---- the graphed step, run on a CPU with CUDA's graph calls emulated -------------------------
# A CUDA graph records a step's kernels without running them and replays them later, reading
# the same memory. The emulation: a capture runs the step and then undoes it (weights,
# optimizer state, sums, RNG); a replay runs GraphedStep.update again on the static inputs with
# the param groups holding the device-hyperparameter tensors (what the recorded kernels read),
# writing its outputs into the static tensors. Both refuse a host sync (.item(), bool(), ...),
# which CUDA refuses while capturing. What is left untested here: CUDA's own rules.

SYNCS = ("item", "tolist", "__bool__", "__float__", "__int__")


@contextlib.contextmanager
def no_host_sync():
    saved = {name: getattr(torch.Tensor, name) for name in SYNCS}

    def refuse(name):
        def method(self, *args, **kwargs):
            raise RuntimeError(f"host sync ({name}) inside a CUDA graph")
        return method

    for name in SYNCS:
        setattr(torch.Tensor, name, refuse(name))
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


class FakeGraph:
    step = None  # the GraphedStep being captured (the fixture registers them)

    def replay(self):
        step, groups = self.step, self.step.optimizer.param_groups
        floats = [{k: g[k] for k in ("lr", "betas")} for g in groups]
        for group, tensors in zip(groups, step.hyper.tensors, strict=True):
            group.update(tensors)
        step.optimizer.zero_grad(set_to_none=True)  # backward writes the gradients afresh
        try:
            with no_host_sync():
                logits, loss = step.update(step.static["images"], step.static["labels"])
        finally:
            for group, values in zip(groups, floats, strict=True):
                group.update(values)
        step.static["logits"].copy_(logits.detach())
        step.static["loss"].copy_(loss.detach())


class FakeStream:
    def __init__(self, *args):
        pass

    def wait_stream(self, other):
        pass


@pytest.fixture
def emulated_cuda(monkeypatch):
    built = []
    real_init = graphs.GraphedStep.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        built.append(self)

    @contextlib.contextmanager
    def capture(graph):
        step = built[-1]
        graph.step = step
        saved = (copy.deepcopy(step.model.state_dict()),
                 copy.deepcopy(step.optimizer.state_dict()["state"]),
                 step.loss_sum.clone(), step.correct.clone(), torch.get_rng_state())
        with no_host_sync():
            yield
        model_state, optimizer_state, loss_sum, correct, rng = saved
        step.model.load_state_dict(model_state)  # the capture ran nothing
        for index, param in enumerate(p for g in step.optimizer.param_groups
                                      for p in g["params"]):
            for key, value in optimizer_state.get(index, {}).items():
                step.optimizer.state[param][key].copy_(value)
        step.loss_sum.copy_(loss_sum)
        step.correct.copy_(correct)
        torch.set_rng_state(rng)
        step.optimizer.zero_grad(set_to_none=True)

    monkeypatch.setattr(graphs.GraphedStep, "__init__", init)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", capture)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(importlib.import_module("torch.optim.adam"),
                        "_get_capturable_supported_devices",
                        lambda *a, **k: ["cuda", "cpu"])
    real_decide = graphs.decide
    monkeypatch.setattr(graphs, "decide", lambda cfg, device, distributed: (
        cfg.train.cuda_graphs is not False, []) if device.type == "cpu"
        else real_decide(cfg, device, distributed))
    return built


EMULATED = {
    "mlp": [],
    "onecycle-clip-dropout": ["model.name=mlp", "model.hidden=[32]", "model.dropout=0.2",
                              "model.batchnorm=true", "sched.name=onecycle", "optim.lr=0.01",
                              "train.clip_norm=0.5", "optim.name=adamw",
                              "data.balance=sampler", "data.augment_shift=2"],
}


def emulated_run(out, *sets, epochs=2) -> tuple[dict, dict]:
    from digitlab.config import build_config
    from digitlab.training import loop

    cfg, _explicit = build_config(sets=["data.name=synthetic", f"train.epochs={epochs}",
                                        "train.device=cpu", "data.batch_size=32",
                                        f"train.out={out}", *sets])
    summary = loop.train(cfg, console=Console(quiet=True))
    tensors, _meta = load_checkpoint(out / "checkpoints" / "last.safetensors")
    return summary, {k: v for k, v in tensors.items() if k.startswith("model.")}


@pytest.mark.parametrize("recipe", list(EMULATED))
def test_emulated_replays_match_the_same_steps_run_eagerly(tmp_path, monkeypatch,
                                                          emulated_cuda, recipe):
    """With the lr, Adam's betas (onecycle moves both) and the inputs copied in before each
    replay, the replays compute exactly what the same step computes run eagerly (WARMUP past
    the run's end: nothing captured)."""
    graphed, weights = emulated_run(tmp_path / "graphed", *EMULATED[recipe])
    info = graphed["cuda_graphs"]
    assert info["used"] and info["replayed_steps"] > 0 and info["batch_size"] == 32
    assert info["eager_steps"] == graphs.WARMUP + 2  # the warm-up and each epoch's last batch
    monkeypatch.setattr(graphs, "WARMUP", 10**9)
    eager, eager_weights = emulated_run(tmp_path / "eager", *EMULATED[recipe])
    assert eager["cuda_graphs"]["replayed_steps"] == 0
    for key, value in weights.items():
        assert torch.equal(value, eager_weights[key]), key
    assert graphed["train_loss"] == eager["train_loss"]
    assert graphed["test_accuracy"] == eager["test_accuracy"]


def test_emulated_graphs_follow_the_eager_loop(tmp_path, emulated_cuda):
    """Against the plain loop (fused Adam): the same run to rounding."""
    graphed, weights = emulated_run(tmp_path / "graphed")
    eager, eager_weights = emulated_run(tmp_path / "eager", "train.cuda_graphs=false")
    for key, value in weights.items():
        torch.testing.assert_close(value, eager_weights[key], rtol=1e-4, atol=1e-5)
    assert abs(graphed["test_accuracy"] - eager["test_accuracy"]) <= 0.01


def test_emulated_graphed_run_resumes_exactly(tmp_path, emulated_cuda):
    whole, weights = emulated_run(tmp_path / "whole", epochs=2)
    out = tmp_path / "split"
    emulated_run(out, epochs=1)
    from digitlab.cli import main as cli

    assert cli(["train", "--resume", str(out), "--epochs", "2"]) == 0
    tensors, _meta = load_checkpoint(out / "checkpoints" / "last.safetensors")
    for key, value in weights.items():
        torch.testing.assert_close(tensors[key], value, rtol=1e-5, atol=1e-6)


def test_a_failed_capture_falls_back_with_auto(tmp_path, emulated_cuda, monkeypatch):
    """A step CUDA cannot record (here: a host sync in it) trains on eagerly under "auto",
    says why, and is an error under true."""
    real_update = graphs.GraphedStep.update

    def syncing(self, images, labels):
        logits, loss = real_update(self, images, labels)
        float(loss.detach())  # a custom model's .item(), say
        return logits, loss

    monkeypatch.setattr(graphs.GraphedStep, "update", syncing)
    summary, _weights = emulated_run(tmp_path / "auto")
    info = summary["cuda_graphs"]
    assert info["used"] is False and info["replayed_steps"] == 0
    assert info["reason"].startswith("the capture failed: host sync (__float__)")
    assert summary["test_accuracy"] > 0.5  # it trained on
    from digitlab.errors import TrainingError

    with pytest.raises(TrainingError, match="could not capture the training step"):
        emulated_run(tmp_path / "true", "train.cuda_graphs=true")
