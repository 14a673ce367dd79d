"""One process or many (``torchrun``): device, rank and DistributedDataParallel.

Under ``torchrun --nproc_per_node N`` the environment names the rank and the
world size; the process group uses NCCL on GPUs and Gloo on CPUs. Every rank
trains on its share of each global batch; rank 0 alone writes checkpoints and
logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from wpgdkit.device import resolve_device

__all__ = ["DistributedContext", "setup_distributed"]


@dataclass
class DistributedContext:
    """Rank, world size and device of this process."""

    rank: int
    world_size: int
    device: torch.device
    initialised: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.initialised:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if not self.initialised:
            return tensor
        tensor = tensor.to(self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(tensor)
        return tensor.cpu()

    def close(self) -> None:
        if self.initialised and dist.is_initialized():
            dist.destroy_process_group()


def setup_distributed(device: str) -> DistributedContext:
    """Read torchrun's environment (if any) and start the process group.

    Under torchrun the group is started even for one process
    (``--nproc_per_node 1``): the run then goes through
    DistributedDataParallel and its all-reduces (NCCL on a GPU) exactly as a
    larger one does, with the weights of a plain run (the mean of one
    gradient is that gradient).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world == 1 and "TORCHELASTIC_RUN_ID" not in os.environ:  # torchrun sets it; a plain process has no group
        return DistributedContext(0, 1, resolved)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    return DistributedContext(rank, world, resolved, initialised=True)
