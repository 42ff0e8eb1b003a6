"""Checkpoints: one safetensors file holding tensors plus JSON metadata. Nothing is pickled.

Tensor keys: "model.<param>" for the weights, "optim.<param id>.<name>" for optimizer state.
Metadata (the header's "digitlab" entry, JSON): format version, config, epoch, step,
normalization, class names, and the optimizer's non-tensor state (param groups, scalars).
The file is written to a temp name and renamed, so it is either the old one or the new one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from digitlab.config import Config, from_dict, load_run_config
from digitlab.errors import CheckpointError, DigitlabError
from digitlab.i18n import _
from digitlab.io import atomic_write_bytes
from digitlab.models import build_model

FORMAT = "digitlab-checkpoint-1"


def _encode(value, key: str, tensors: dict[str, torch.Tensor]):
    """JSON for the optimizer state's structure; each tensor goes to `tensors` under `key`."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous()
        return {"tensor": key}
    if isinstance(value, (list, tuple)):  # e.g. L-BFGS's curvature history
        return [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]
    return value  # int, float, bool, None


def _decode(value, tensors: dict[str, torch.Tensor]):
    if isinstance(value, dict) and "tensor" in value:
        return tensors[value["tensor"]]
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    return value


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    encoded = {str(pid): {name: _encode(value, f"optim.{pid}.{name}", tensors)
                          for name, value in values.items()}
               for pid, values in state["state"].items()}
    return tensors, {"param_groups": state["param_groups"], "state": encoded}


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """Every random generator a run draws from: torch (CPU and each CUDA device), numpy, python."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    version, python_state, python_gauss = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
            "python": [version, list(python_state), python_gauss]}
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss,
                         gauss))
    version, python_state, python_gauss = meta["python"]
    random.setstate((version, tuple(python_state), python_gauss))


def save_checkpoint(path: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None, meta: dict,
                    extra: dict[str, torch.Tensor] | None = None) -> None:
    """model.*, optim.* and `extra` tensors (e.g. rng.*), plus JSON metadata, in one file."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({k: v.detach().cpu().contiguous() for k, v in (extra or {}).items()})
    meta = dict(meta, format=FORMAT)
    if optimizer is not None:
        optim_tensors, meta["optimizer"] = _optimizer_tensors(optimizer)
        tensors.update(optim_tensors)
    atomic_write_bytes(path, save(tensors, metadata={"digitlab": json.dumps(meta)}))


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a checkpoint, or a CheckpointError that names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(_("checkpoint {path} does not exist; train a run first").format(
            path=path))
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            # clone: a fresh, aligned allocation; reductions over unaligned memory can round
            # differently, which would break bit-exact resume (seen with L-BFGS's dot products)
            tensors = {key: f.get_tensor(key).clone() for key in f.keys()}
        meta = json.loads(header["digitlab"])
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise CheckpointError(
            _("{path} is not a readable digitlab checkpoint ({error_type}: {error}); "
              "it may be truncated or corrupt: use another checkpoint or retrain").format(
                path=path, error_type=type(e).__name__, error=e)
        ) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(_("{path} has unknown checkpoint format {format_name!r}").format(
            path=path, format_name=meta.get("format")))
    return tensors, meta


def restore_model(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: str) -> None:
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(
            _("{path} does not fit a {model_class} ({error}); "
              "was it saved from another architecture?").format(
                path=path, model_class=type(model).__name__,
                error=first[-1].strip() if first else e)
        ) from None


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                      meta: dict) -> None:
    state = {int(pid): {name: _decode(value, tensors) for name, value in values.items()}
             for pid, values in meta["optimizer"]["state"].items()}
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})


def reported_checkpoint(source: str | Path) -> Path:
    """The one rule for which checkpoint a run reports: a .safetensors file is itself; a run
    directory gives best.safetensors when early stopping restored it, else last.safetensors.

    Used by evaluate, predict, serve, export, the figures and the distillation teacher."""
    source = Path(source)
    if source.is_file():
        return source
    if not source.is_dir():
        raise CheckpointError(_("{source} is neither a run directory nor a checkpoint file")
                              .format(source=source))
    config = source / "config.toml"
    if not config.is_file():
        raise CheckpointError(_("{run_dir} is not a run directory (no config.toml there)")
                              .format(run_dir=source))
    best = source / "checkpoints" / "best.safetensors"
    if load_run_config(config).train.early_stop_patience and best.is_file():
        return best
    return source / "checkpoints" / "last.safetensors"


def load_model(source: str | Path) -> tuple[torch.nn.Module, Config, dict, Path]:
    """(model on the CPU in eval mode, its config, the checkpoint metadata, the file) for a run
    directory or checkpoint file; every problem is a CheckpointError naming the file."""
    path = reported_checkpoint(source)
    tensors, meta = load_checkpoint(path)
    try:
        cfg = from_dict(meta["config"])
        classes = meta["classes"]
        model = build_model(cfg.model, len(classes))
    except (KeyError, TypeError, AttributeError, ValueError, DigitlabError) as e:
        raise CheckpointError(_("{path}: its metadata is not a valid digitlab config ({error})")
                              .format(path=path, error=e)) from None
    restore_model(model, tensors, str(path))
    return model.eval(), cfg, meta, path
