"""Devices and processes: which device a run uses, and DDP under torchrun.

`resolve_device` turns "auto", "cpu", "cuda:N" or "mps" into a torch.device, for training and
inference alike.

`torchrun --nproc_per_node=N -m digitlab train ...` sets RANK, WORLD_SIZE and LOCAL_RANK; we
start a process group (nccl on CUDA, gloo on CPU), give each rank a disjoint slice of every
global batch, let DDP average the gradients, all-reduce the metrics, and let rank 0 alone write.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from digitlab.errors import UsageError
from digitlab.i18n import _


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def setup(device: torch.device) -> World:
    """Join the process group when launched by torchrun; a single process otherwise."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return World()
    world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                  int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return world


def rank_device(device: torch.device, world: World) -> torch.device:
    """One GPU per process: cuda becomes cuda:LOCAL_RANK."""
    if device.type == "cuda" and world.distributed:
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return device


def all_reduce_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    if world.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast(value: object, world: World) -> object:
    """Rank 0's value on every rank (e.g. the run directory it chose)."""
    if not world.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def cleanup(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(name: str) -> torch.device:
    """"auto" (cuda, then mps, then cpu), "cpu", "mps", "cuda" or "cuda:N" -> a torch.device
    that exists here; anything else is a UsageError that names the choices."""
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
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(_("unknown device {device!r}; use auto, cpu, cuda, cuda:N or "
                           "mps").format(device=name)) from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(_("unknown device {device!r}; use auto, cpu, cuda, cuda:N or "
                           "mps").format(device=name))
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UsageError(_("{device!r}: this machine has {count} CUDA device(s), numbered from "
                           "0").format(device=name, count=torch.cuda.device_count()))
    return device


def is_main_process() -> bool:
    """Rank 0 under torchrun (RANK set), or a plain single process: the one that writes."""
    return int(os.environ.get("RANK", "0")) == 0
