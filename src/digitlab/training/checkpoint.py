"""Checkpoints: one safetensors file holding tensors plus JSON metadata. Nothing is pickled.

Tensor keys: "model.<param>" for the weights, "optim.<param id>.<name>" for optimizer state.
Metadata (the header's "digitlab" entry, JSON): format version, config, epoch, step,
normalization, class names, the optimizer's non-tensor state (param groups, scalars), and
"sha256": a digest of every tensor (name, dtype, shape, bytes) and of the rest of the metadata,
checked on load so that a flipped bit is named instead of silently loaded. Files written before
the digest existed have no "sha256" and load unchecked. "calibration" holds the temperature
fitted at the end of training (training.calibration); files without it load with T = 1.
The file is written to a temp name and renamed, so it is either the old one or the new one.

`load_model` is the one way to get a model out of a checkpoint: it trusts nothing in the file
(crafted metadata, a layer of 10**12 units, NaN weights) and raises CheckpointError instead.
"""

from __future__ import annotations

import hashlib
import json
import math
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
from digitlab.plugins import PluginError

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


def _brief(value: object, limit: int = 200) -> str:
    """A value or error as at most `limit` characters: crafted metadata can be megabytes."""
    text = str(value) if isinstance(value, BaseException) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def payload_digest(tensors: dict[str, torch.Tensor], meta: dict) -> str:
    """SHA-256 over each tensor's name, dtype, shape and raw bytes (in sorted name order), then
    the metadata as sorted-key JSON: one pass over the bytes, cheap next to writing them."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key].detach().cpu().contiguous()
        digest.update(json.dumps([key, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # any dtype, as bytes
    digest.update(json.dumps(meta, sort_keys=True).encode())
    return digest.hexdigest()


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
    _write(path, tensors, meta)


def _write(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    # through JSON once, so that the digest sees what load_checkpoint will read back
    # (tuples become lists, integer keys become strings)
    meta = json.loads(json.dumps(meta))
    meta["sha256"] = payload_digest(tensors, meta)
    atomic_write_bytes(path, save(tensors, metadata={"digitlab": json.dumps(meta)}))


def set_calibration(path: str | Path, calibration: dict) -> None:
    """Rewrite a checkpoint with metadata["calibration"] = calibration (its tensors, so resume,
    unchanged; a new digest), atomically."""
    tensors, meta = load_checkpoint(path)
    _write(path, tensors, dict(meta, calibration=calibration))


def checked_temperature(meta: dict, path: Path) -> float:
    """The temperature inference divides the logits by: metadata["calibration"]["temperature"],
    1.0 for a checkpoint written before calibration; a CheckpointError unless finite and > 0."""
    calibration = meta.get("calibration")
    if calibration is None:
        return 1.0
    is_table = isinstance(calibration, dict)
    value = calibration.get("temperature") if is_table else calibration
    if not is_table or not _is_number(value) or value <= 0:
        raise CheckpointError(_("{path}: its metadata's calibration temperature must be a finite "
                                "number > 0, got {value}").format(path=path, value=_brief(value)))
    return float(value)


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a checkpoint, or a CheckpointError that names the file.

    The metadata comes back as it was saved: without the "sha256" entry, which is checked."""
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
    except (SafetensorError, OSError, KeyError, ValueError, RecursionError) as e:
        raise CheckpointError(
            _("{path} is not a readable digitlab checkpoint ({error_type}: {error}); "
              "it may be truncated or corrupt: use another checkpoint or retrain").format(
                path=path, error_type=type(e).__name__, error=_brief(e))
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(_("{path} has unknown checkpoint format {format_name!r}").format(
            path=path, format_name=_brief(meta.get("format") if isinstance(meta, dict) else meta)))
    expected = meta.pop("sha256", None)  # None: written before digests were stored
    if expected is not None and expected != payload_digest(tensors, meta):
        raise CheckpointError(_("{path}: checksum mismatch: the file is corrupt (a changed bit "
                                "in its tensors or metadata); use another checkpoint or "
                                "retrain").format(path=path))
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


# How an optimizer runs, not what it learned: a resumed run keeps its own (a run saved with
# CUDA graphs resumes on a CPU, where capturable kernels do not run, and the other way round).
KERNEL_FLAGS = ("capturable", "fused", "foreach")


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                      meta: dict) -> None:
    state = {int(pid): {name: _decode(value, tensors) for name, value in values.items()}
             for pid, values in meta["optimizer"]["state"].items()}
    kernels = [{k: group[k] for k in KERNEL_FLAGS if k in group}
               for group in optimizer.param_groups]
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    for group, flags in zip(optimizer.param_groups, kernels, strict=True):
        group.update(flags)


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


def model_spec(meta: dict, path: Path) -> tuple[Config, tuple[str, ...]]:
    """The config and class names in a checkpoint's metadata, each checked: a missing or
    mistyped entry, or a config that does not validate, is a CheckpointError naming the file."""
    for field in ("config", "classes", "mean", "std"):
        if field not in meta:
            raise CheckpointError(_("{path}: its metadata has no {field!r}; it was not written "
                                    "by digitlab train, or it was edited").format(path=path,
                                                                                  field=field))
    classes = meta["classes"]
    if not (isinstance(classes, list) and len(classes) >= 2
            and all(isinstance(name, str) for name in classes)):
        raise CheckpointError(_("{path}: its metadata's classes must be a list of two or more "
                                "names, got {value}").format(path=path, value=_brief(classes)))
    for field in ("mean", "std"):
        value = meta[field]
        if not _is_number(value) or (field == "std" and value <= 0):
            raise CheckpointError(_("{path}: its metadata's {field} must be a finite number"
                                    "{condition}, got {value}").format(
                path=path, field=field, condition=" > 0" if field == "std" else "",
                value=_brief(value)))
    config = meta["config"]
    try:
        if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
            raise TypeError(_("it must be a table of [sections]"))
        cfg = from_dict(config)
    except PluginError as e:  # its train.imports: the module's own one line
        raise CheckpointError(f"{path}: {e}") from e
    except (DigitlabError, TypeError, ValueError, OverflowError, AttributeError) as e:
        raise CheckpointError(_("{path}: its metadata is not a valid digitlab config ({error})")
                              .format(path=path, error=_brief(e, 300))) from None
    return cfg, tuple(classes)


def _check_fits(cfg: Config, num_classes: int, tensors: dict[str, torch.Tensor],
                path: Path) -> None:
    """The model the config describes, built on the meta device (no memory, no compute), must
    have exactly the checkpoint's tensors, name for name and shape for shape. So a crafted
    config cannot make us allocate more than the file itself holds."""
    try:
        with torch.device("meta"):
            skeleton = build_model(cfg.model, num_classes)
    except (RuntimeError, ValueError, OverflowError, TypeError, MemoryError) as e:
        raise CheckpointError(_("{path}: its config does not give a model ({error})")
                              .format(path=path, error=_brief(e))) from None
    expected = {f"model.{k}": tuple(v.shape) for k, v in skeleton.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items() if k.startswith("model.")}
    problem = None
    if missing := sorted(expected.keys() - found.keys()):
        problem = _("missing {names}").format(names=", ".join(missing[:3]))
    elif unexpected := sorted(found.keys() - expected.keys()):
        problem = _("unexpected {names}").format(names=", ".join(unexpected[:3]))
    elif wrong := [k for k in expected if expected[k] != found[k]]:
        problem = _("{name} has shape {shape}, the config needs {expected}").format(
            name=wrong[0], shape=list(found[wrong[0]]), expected=list(expected[wrong[0]]))
    if problem:
        raise CheckpointError(_("{path} does not fit a {model_name} model with {num_classes} "
                                "classes ({problem}); was it saved from another "
                                "architecture?").format(path=path, model_name=cfg.model.name,
                                                        num_classes=num_classes, problem=problem))


def _check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    for key, tensor in tensors.items():
        if key.startswith("model.") and tensor.is_floating_point() \
                and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(_("{path}: the model's weights are not finite (NaN or Infinity "
                                    "in {name}); the run diverged: use an earlier checkpoint or "
                                    "retrain with a lower learning rate").format(path=path,
                                                                                 name=key))


def load_model(source: str | Path) -> tuple[torch.nn.Module, Config, dict, Path]:
    """(model on the CPU in eval mode, its config, the checkpoint metadata, the file) for a run
    directory or checkpoint file; every problem is a CheckpointError naming the file.

    The metadata's classes, mean, std and calibration temperature are checked here (a list of
    names, finite numbers, std and temperature > 0), so callers may use them as they are."""
    path = reported_checkpoint(source)
    tensors, meta = load_checkpoint(path)
    cfg, classes = model_spec(meta, path)
    checked_temperature(meta, path)
    _check_fits(cfg, len(classes), tensors, path)
    _check_finite(tensors, path)
    model = build_model(cfg.model, len(classes))
    restore_model(model, tensors, str(path))
    return model.eval(), cfg, meta, path
