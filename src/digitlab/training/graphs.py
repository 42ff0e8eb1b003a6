"""CUDA graphs for the training step (train.cuda_graphs): one launch a step instead of dozens.

On a GPU, a small model's step is a few microseconds of work behind about 2 ms of kernel
launches and Python. A CUDA graph records the step's kernels once and replays them with one
launch. `make_step` decides: "auto" uses graphs when the run is on CUDA and nothing in its
config needs the eager loop (`blockers`), else trains eagerly and, on CUDA, says why in one
line; true refuses such a run with the reasons; false never uses them.

What `GraphedStep` captures: forward, loss, backward, clipping, the optimizer step and the
epoch's loss and accuracy sums, reading the batch from static input buffers that each step
fills with one copy (the loader's gather and augmentation run before it, as in the eager
loop, so a graphed run draws the same batches). Around it, on the host: the copies in, the
schedule (it writes Python floats into the param groups; `DeviceHyperparams` copies changed
values into the device tensors the captured optimizer reads), and nothing else. The first
WARMUP steps, and a last partial batch, run eagerly through the same code (so cuDNN and cuBLAS
pick their kernels and Adam allocates its state before the capture); the optimizer then runs
its capturable multi-tensor kernels throughout, so a graphed run matches an eager one to
rounding, not bit for bit (the eager loop uses the fused kernel). Capture time is kept out of
the epoch's time and reported in summary.json ("cuda_graphs").
"""

from __future__ import annotations

import contextlib
import time

import torch
from rich.console import Console

from digitlab.config import Config, TrainConfig
from digitlab.errors import TrainingError, UsageError
from digitlab.i18n import N_, _
from digitlab.training.losses import Autocast, Criterion
from digitlab.training.optim import Schedule
from digitlab.training.step import EpochTotals, TrainStep, make_autocast

WARMUP = 3  # eager steps before the capture, on a side stream, as torch.cuda.graphs asks
CAPTURABLE = ("adam", "adamw")  # optimizers whose step runs from device tensors (capturable)


def blockers(cfg: Config, device: torch.device, distributed: bool) -> list[str]:
    """Why this run cannot replay its step as a graph; empty when it can."""
    reasons = []
    if device.type != "cuda":
        reasons.append(N_("the run is not on CUDA"))
    if cfg.optim.name not in CAPTURABLE:
        reasons.append(N_("optim.name is not adam or adamw"))
    if cfg.loss.teacher:
        reasons.append(N_("a teacher model (loss.teacher)"))
    if cfg.data.loader != "device":
        reasons.append(N_("data.loader = 'torch' (batches from the host)"))
    if cfg.data.balance == "weights":
        reasons.append(N_("data.balance = 'weights' (the loss changes between epochs)"))
    if cfg.loss.temperature != 1 or cfg.loss.temperature_final != 1:
        reasons.append(N_("an annealed loss temperature"))
    if cfg.train.compile:
        reasons.append(N_("train.compile (torch.compile makes graphs of its own)"))
    if cfg.train.amp == "fp16":
        reasons.append(N_("train.amp = 'fp16' (its gradient scaler checks on the host)"))
    if cfg.train.accum_steps > 1:
        reasons.append(N_("train.accum_steps > 1"))
    if distributed:
        reasons.append(N_("DDP (torchrun)"))
    return reasons


def decide(cfg: Config, device: torch.device, distributed: bool) -> tuple[bool, list[str]]:
    """(use graphs?, why not: untranslated reasons): train.cuda_graphs against what the run
    needs. True with a blocker is a usage error, raised before anything is written."""
    reasons = blockers(cfg, device, distributed)
    if cfg.train.cuda_graphs is True and reasons:
        raise UsageError(_("train.cuda_graphs = true, but this run cannot replay its step as a "
                           "CUDA graph: {reasons}; set it to \"auto\" or false").format(
            reasons="; ".join(_(r) for r in reasons)))
    if cfg.train.cuda_graphs is False:
        return False, [N_("train.cuda_graphs = false")]
    return not reasons, reasons


def make_step(cfg: Config, device: torch.device, distributed: bool, console: Console,
              model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule,
              scaler: torch.amp.GradScaler, criterion: Criterion) -> TrainStep:
    """The run's training step: a GraphedStep when CUDA graphs can be used, else the eager
    TrainStep (on CUDA with graphs on "auto", after a line that says why)."""
    use, reasons = decide(cfg, device, distributed)
    if use:  # autocast's weight cache would keep casts made during the capture
        return GraphedStep(model, optimizer, schedule, scaler,
                           make_autocast(device, cfg.train.amp, cache=False), criterion,
                           cfg.train, console)
    if device.type == "cuda" and cfg.train.cuda_graphs == "auto":
        console.print(_("CUDA graphs off, the eager loop instead: {reason}").format(
            reason="; ".join(_(r) for r in reasons)))
    step = TrainStep(model, optimizer, schedule, scaler, make_autocast(device, cfg.train.amp),
                     criterion, cfg.train)
    step.graphs = {"used": False, "reason": "; ".join(reasons)}  # summary.json: in English
    return step


class DeviceHyperparams:
    """Each param group's lr and betas as one-element device tensors, which a captured
    optimizer step reads. The schedule keeps writing Python floats into the groups (and
    checkpoints keep saving them); `refresh()` copies a value into its tensor when it changed,
    and `as_tensors()` puts the tensors into the groups while the optimizer runs."""

    KEYS = ("lr", "betas")

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device):
        self.groups = optimizer.param_groups
        self.tensors = [{"lr": torch.zeros((), device=device),
                         "betas": (torch.zeros((), device=device),
                                   torch.zeros((), device=device))} for _ in self.groups]
        self.copied: list[dict] = [{} for _ in self.groups]  # the floats last copied over
        for group in self.groups:  # the multi-tensor kernels that take device hyperparameters
            group.update(capturable=True, fused=False, foreach=True)

    def refresh(self) -> None:
        for group, tensors, copied in zip(self.groups, self.tensors, self.copied, strict=True):
            for key in self.KEYS:
                value = group[key]
                if copied.get(key) != value:
                    if key == "lr":
                        tensors["lr"].fill_(float(value))
                    else:
                        for tensor, beta in zip(tensors["betas"], value, strict=True):
                            tensor.fill_(float(beta))
                    copied[key] = value

    @contextlib.contextmanager
    def as_tensors(self):
        self.refresh()
        floats = [{key: group[key] for key in self.KEYS} for group in self.groups]
        for group, tensors in zip(self.groups, self.tensors, strict=True):
            group.update(tensors)
        try:
            yield
        finally:
            for group, values in zip(self.groups, floats, strict=True):
                group.update(values)


class GraphedStep(TrainStep):
    """TrainStep's contract (`step(images, labels, batch, batches_done)`), with full batches
    after the first WARMUP replayed from one CUDA graph; see the module's docstring."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 schedule: Schedule, scaler: torch.amp.GradScaler, autocast: Autocast,
                 criterion: Criterion, cfg: TrainConfig, console: Console):
        super().__init__(model, optimizer, schedule, scaler, autocast, criterion, cfg)
        self.console = console  # where a failed capture says it trains on eagerly
        self.hyper = DeviceHyperparams(self.optimizer, self.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: dict[str, torch.Tensor] = {}
        self.steps, self.eager_steps, self.capture_seconds, self.unreported = 0, 0, 0.0, 0.0
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), dtype=torch.long, device=self.device)
        self.failed: str | None = None  # why the capture failed ("auto" then stays eager)

    @property
    def graphs(self) -> dict:
        """summary.json's "cuda_graphs": the capture's time and the steps each way."""
        return {"used": self.failed is None, "reason": self.failed,
                "capture_seconds": self.capture_seconds,
                "batch_size": len(self.static["labels"]) if self.static else None,
                "eager_steps": self.eager_steps, "replayed_steps": self.steps - self.eager_steps}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def start_epoch(self, num_batches: int, balanced: bool, totals: EpochTotals,
                    rank_weights: list[float] | None = None) -> None:
        """The epoch's sums live in this step's tensors, which the graph adds to."""
        super().start_epoch(num_batches, balanced, totals, rank_weights)
        self.loss_sum.zero_()
        self.correct.zero_()
        totals.loss_sum, totals.correct = self.loss_sum, self.correct

    def pop_capture_seconds(self) -> float:
        seconds, self.unreported = self.unreported, 0.0
        return seconds

    def update(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Forward, loss, backward, clipping, optimizer step and the epoch's sums: what the
        graph holds (gradients were set to None before, so backward writes them afresh)."""
        with self.autocast():
            logits = self.model(images)
            loss = self.criterion(logits, labels, 0, self.balanced)  # no annealing (blockers)
        loss.backward()
        self.clip_gradients()  # no scaler here: fp16 keeps a run eager
        self.optimizer.step()
        self.loss_sum.add_(loss.detach().float(), alpha=len(labels))
        self.correct.add_((logits.detach().argmax(dim=1) == labels).sum())
        return logits, loss

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, batch: int,
                 batches_done: int) -> tuple[torch.Tensor, torch.Tensor]:
        if (self.graph is None and self.failed is None and self.steps >= WARMUP
                and batch + 1 < self.num_batches):  # a full batch: only the last may be smaller
            self.try_capture(images, labels)
        if self.graph is not None and len(labels) == len(self.static["labels"]):
            self.static["images"].copy_(images)
            self.static["labels"].copy_(labels)
            self.hyper.refresh()
            self.graph.replay()
            logits, loss = self.static["logits"], self.static["loss"]
        else:  # warm-up, or a last batch smaller than the captured one
            logits, loss = self.eager(images, labels)
        self.steps += 1
        self.totals.seen += len(labels)
        self.schedule.after_batch()
        return logits, loss

    def eager(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One step run as it comes: the warm-up before the capture (on a side stream, as
        torch.cuda.graph asks), or after it a last batch of another size."""
        self.eager_steps += 1
        self.optimizer.zero_grad(set_to_none=True)  # a replay left its gradients in place
        main = torch.cuda.current_stream(self.device)
        stream = torch.cuda.Stream(self.device) if self.graph is None else main
        stream.wait_stream(main)
        with torch.cuda.stream(stream), self.hyper.as_tensors():
            logits, loss = self.update(images, labels)
        main.wait_stream(stream)
        self.optimizer.zero_grad(set_to_none=True)
        return logits, loss

    def try_capture(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Capture, or with "auto" train on eagerly when CUDA refuses the capture (what
        torch cannot record: a host sync in a custom model's forward, for one)."""
        try:
            self.capture(images, labels)
        except RuntimeError as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if self.cfg.cuda_graphs is True:
                raise TrainingError(_("train.cuda_graphs = true, but CUDA could not capture the "
                                      "training step ({error}); set it to \"auto\" to train "
                                      "without graphs").format(error=first_line)) from None
            self.graph, self.failed = None, f"the capture failed: {first_line}"
            self.optimizer.zero_grad(set_to_none=True)
            self.console.print(_("CUDA graphs off, the eager loop instead: {reason}").format(
                reason=self.failed))

    def capture(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        torch.cuda.synchronize(self.device)
        started = time.perf_counter()
        self.static = {"images": images.clone(), "labels": labels.clone()}
        self.optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with self.hyper.as_tensors(), torch.cuda.graph(self.graph):
            self.static["logits"], self.static["loss"] = self.update(self.static["images"],
                                                                     self.static["labels"])
        torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - started
        self.capture_seconds += seconds
        self.unreported += seconds
