"""Multi-process training with PyTorch's own launcher.

``torchrun --nproc_per_node=K -m ciaosr train ...`` starts K processes and sets
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; we read
them, join the process group (NCCL on GPUs, gloo on CPU) and wrap the model in
DistributedDataParallel. Without those variables everything runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .. import runtime
from ..errors import CiaosrError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info_from_env() -> DistInfo:
    """The process's place in a torchrun job (rank 0 of 1 when not launched by torchrun)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise CiaosrError("WORLD_SIZE, RANK and LOCAL_RANK must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise CiaosrError(f"bad distributed setting: RANK={rank}, WORLD_SIZE={world}")
    return DistInfo(rank, local, world)


def resolve_device(requested: str | None, info: DistInfo) -> torch.device:
    """The training device, through the one resolver (``ciaosr.runtime.resolve_device``):
    cpu or cuda only; ``auto`` -> this process's GPU if there is one, else the CPU (never
    MPS); under torchrun each process takes ``cuda:<LOCAL_RANK>``."""
    return runtime.resolve_device(requested or "auto", allowed=("cpu", "cuda"), purpose="training",
                                  local_rank=info.local_rank if info.enabled else None)


def init_process_group(info: DistInfo, device: torch.device) -> None:
    if not info.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        try:
            dist.init_process_group("nccl", rank=info.rank, world_size=info.world_size, device_id=device)
        except TypeError:  # torch < 2.3 has no device_id
            dist.init_process_group("nccl", rank=info.rank, world_size=info.world_size)
    else:
        dist.init_process_group("gloo", rank=info.rank, world_size=info.world_size)


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def max_int(value: int, info: DistInfo, device: torch.device) -> int:
    """The largest ``value`` over all processes (e.g. the strongest reason to stop)."""
    if not (info.enabled and dist.is_initialized()):
        return value
    t = torch.tensor([int(value)], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def mean_scalar(value: float, info: DistInfo, device: torch.device) -> float:
    """The mean of one number over all processes (for logging the loss)."""
    if not (info.enabled and dist.is_initialized()):
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / info.world_size


def cleanup(info: DistInfo, synchronise: bool = True) -> None:
    """Final barrier (skipped after an error, when the others may never reach it), then
    leave the process group."""
    if info.enabled and dist.is_initialized():
        try:
            if synchronise:
                dist.barrier()
        finally:
            dist.destroy_process_group()
