"""Evaluation: the tutorial's test loop done right (eval mode, no_grad, one sync at the end),
and `digitlab evaluate RUN_DIR`, which re-checks a saved model on the test split."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from digitlab.config import load_run_config
from digitlab.data import SOURCES
from digitlab.errors import CheckpointError
from digitlab.i18n import _
from digitlab.models import build_model
from digitlab.training.checkpoint import load_checkpoint, restore_model


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, loss_fn, num_classes: int) -> dict:
    """Mean loss over samples, accuracy (0..1), and the confusion matrix (true x predicted)."""
    was_training = model.training
    model.eval()
    total_loss, confusion = None, None
    for images, labels in loader:
        logits = model(images)
        batch_loss = loss_fn(logits, labels).float() * len(labels)  # batch mean -> sum
        pairs = labels * num_classes + logits.argmax(dim=1)
        counts = torch.bincount(pairs, minlength=num_classes * num_classes)
        total_loss = batch_loss if total_loss is None else total_loss + batch_loss
        confusion = counts if confusion is None else confusion + counts
    model.train(was_training)
    confusion = confusion.view(num_classes, num_classes).cpu()  # the one host sync
    total = int(confusion.sum())
    return {
        "loss": float(total_loss) / total,
        "accuracy": float(confusion.diag().sum()) / total,
        "num_samples": total,
        "confusion": confusion,
    }


def resolve_device(name: str) -> torch.device:
    from digitlab.errors import UsageError

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(_("train.device is {device!r} but CUDA is not available here; "
                           "use --device auto or --device cpu").format(device=name))
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise UsageError(_("train.device is 'mps' but MPS is not available; "
                           "use --device auto"))
    return torch.device(name)


def evaluate_run(run_dir: str | Path, data_dir: str | None = None, device: str = "auto") -> dict:
    """Re-evaluate a run's model on its test split; rewrite evaluation.json, plots, report.

    The model is the one the run reported: the best checkpoint when early stopping restored
    it, else the last one."""
    from digitlab.training.analysis import analyze

    run_dir = Path(run_dir)
    config_path = run_dir / "config.toml"
    if not config_path.is_file():
        raise CheckpointError(_("{run_dir} is not a run directory (no config.toml there)")
                              .format(run_dir=run_dir))
    cfg = load_run_config(config_path)
    if data_dir:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dir=data_dir))
    best = run_dir / "checkpoints" / "best.safetensors"
    use_best = cfg.train.early_stop_patience > 0 and best.is_file()
    checkpoint = best if use_best else run_dir / "checkpoints" / "last.safetensors"
    tensors, meta = load_checkpoint(checkpoint)
    dev = resolve_device(device)
    dataset = SOURCES.get(cfg.data.name)(cfg.data)
    model = build_model(cfg.model, len(dataset.classes))
    restore_model(model, tensors, str(checkpoint))
    model.to(dev)
    (run_dir / "plots").mkdir(exist_ok=True)
    return analyze(model, dataset, cfg, dev, run_dir,
                   extra={"checkpoint": str(checkpoint), "epoch": meta.get("epoch"),
                          "device": str(dev)})
