"""Data parallelism through `torch.distributed` (gloo on CPU, NCCL on GPU), launched by `torchrun`.

Gradients are summed across ranks with one all-reduce of a flat buffer per step, after local
gradient accumulation. Each rank's loss is already divided by the *global* number of loss tokens,
so the sum is exactly the gradient of the global mean loss, and an N-process run follows the same
trajectory as one process with the same global batch. (An all-reduce of every parameter also covers
experts that a rank's tokens did not reach, which `DistributedDataParallel` would need
`find_unused_parameters` for.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init(device: str) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if device == "cuda":  # one GPU per rank: "cuda" then means this rank's own device
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size())


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensors: list[torch.Tensor], info: DistInfo) -> None:
    """Sum `tensors` in place across ranks through one float32 buffer (exact for counts below 2**24)."""
    if info.world == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t).to(t.dtype))
        offset += n


def reduce_grads(model: torch.nn.Module, info: DistInfo) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    all_reduce_sum([p.grad for p in params], info)
