"""Checkpoints: an exact round trip (weights, optimizer state, RNG, metadata) for Adam and
L-BFGS, and a SHA-256 over the payload that names a flipped bit or a truncated file."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import save

from digitlab.config import Config, ModelConfig, to_dict
from digitlab.errors import CheckpointError
from digitlab.models import build_model
from digitlab.training.checkpoint import (
    FORMAT,
    load_checkpoint,
    payload_digest,
    restore_model,
    restore_optimizer,
    restore_rng,
    rng_state,
    save_checkpoint,
)

META = {"config": to_dict(Config()), "classes": list("0123456789"), "mean": 0.1307,
        "std": 0.3081, "dataset": "synthetic", "epoch": 3, "step": 96,
        "metrics": {"test_accuracy": 0.5, "val_loss": float("nan")}, "state": {"best": None}}


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(name="mlp", hidden=(16,), batchnorm=True), 10)


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(32, 1, 28, 28, generator=gen), torch.randint(0, 10, (32,), generator=gen)


def train_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    """A few real steps, so that the optimizer has state (Adam moments, L-BFGS history)."""
    images, labels = batch()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        return loss

    for _ in range(steps):
        optimizer.step(closure)


OPTIMIZERS = {
    "adam": lambda params: torch.optim.Adam(params, lr=1e-2),
    "lbfgs": lambda params: torch.optim.LBFGS(params, lr=0.5, max_iter=4, history_size=3),
}


def assert_same(a, b, where: str = "") -> None:
    """Equal values, and bit-identical tensors of the same dtype (lists and tuples alike)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_round_trip_is_exact(name, tmp_path):
    model = tiny_model()
    optimizer = OPTIMIZERS[name](model.parameters())
    train_steps(model, optimizer, 3)
    rng_tensors, rng_meta = rng_state()
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, model, optimizer, dict(META, rng=rng_meta), rng_tensors)
    expected_rng = (torch.rand(3), np.random.rand(3), random.random())

    tensors, meta = load_checkpoint(path)
    assert meta["format"] == FORMAT and "sha256" not in meta
    assert {k: v for k, v in meta.items() if k not in ("format", "optimizer", "rng")} == \
        json.loads(json.dumps(META))  # the NaN metric included: JSON, not pickles
    restored = tiny_model(seed=99)  # other weights, to be overwritten
    restore_model(restored, tensors, str(path))
    restored_optimizer = OPTIMIZERS[name](restored.parameters())
    restore_optimizer(restored_optimizer, tensors, meta)
    assert_same(model.state_dict(), restored.state_dict(), "model")
    assert_same(optimizer.state_dict(), restored_optimizer.state_dict(), "optimizer")
    restore_rng(tensors, meta["rng"])
    assert_same(torch.rand(3), expected_rng[0], "torch rng")
    assert (np.random.rand(3) == expected_rng[1]).all() and random.random() == expected_rng[2]

    # and the proof that the state is whole: both continue identically
    train_steps(model, optimizer, 2)
    train_steps(restored, restored_optimizer, 2)
    assert_same(model.state_dict(), restored.state_dict(), "after two more steps")


# ---------------------------------------------------------------- the checksum


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.safetensors"
    model = tiny_model()
    optimizer = OPTIMIZERS["adam"](model.parameters())
    train_steps(model, optimizer, 1)
    save_checkpoint(path, model, optimizer, META)
    return path


def data_start(data: bytes) -> int:
    """Where a safetensors file's tensor bytes begin: after the 8-byte length and the header."""
    return 8 + int.from_bytes(data[:8], "little")


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_flipped_bit_in_the_tensors_is_named(saved, where):
    data = bytearray(saved.read_bytes())
    start = data_start(data)
    index = {"first": start, "middle": (start + len(data)) // 2, "last": len(data) - 1}[where]
    data[index] ^= 0x10
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch: the file is corrupt") as exc:
        load_checkpoint(saved)
    assert str(saved) in str(exc.value)


def test_a_changed_metadata_value_is_named(saved):
    data = saved.read_bytes()
    header = data[:data_start(data)]
    assert header.count(b"0.1307") == 2  # the checkpoint's mean and the config's data.mean
    saved.write_bytes(header.replace(b"0.1307", b"0.1357") + data[len(header):])
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(saved)


@pytest.mark.parametrize("keep", [0.99, 0.5, 0.01])
def test_a_truncated_file_is_named(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as exc:
        load_checkpoint(saved)
    assert str(saved) in str(exc.value)


def test_files_without_a_digest_still_load(tmp_path):
    """Checkpoints written before the digest existed have no "sha256": loaded unchecked."""
    model = tiny_model()
    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    path = tmp_path / "old.safetensors"
    path.write_bytes(save(tensors, metadata={"digitlab": json.dumps(dict(META, format=FORMAT))}))
    loaded, meta = load_checkpoint(path)
    assert meta["epoch"] == 3 and "sha256" not in meta
    assert_same(tensors, loaded)


def test_the_digest_covers_names_dtypes_shapes_and_bytes():
    base = {"a": torch.arange(6, dtype=torch.float32), "b": torch.zeros(2, dtype=torch.bfloat16)}
    digest = payload_digest(base, {"x": 1})
    variants = [
        {"a2": base["a"], "b": base["b"]},  # a renamed tensor
        {"a": base["a"].reshape(2, 3), "b": base["b"]},  # same bytes, another shape
        {"a": base["a"].view(torch.int32), "b": base["b"]},  # same bytes, another dtype
        {"a": base["a"], "b": base["b"] + 1},  # other bytes
    ]
    assert all(payload_digest(v, {"x": 1}) != digest for v in variants)
    assert payload_digest(base, {"x": 2}) != digest
    assert payload_digest(dict(reversed(base.items())), {"x": 1}) == digest  # order-free
