"""torch.distributed plumbing for torchrun, shared by training and evaluation: NCCL on GPUs, gloo on
CPUs, one process per device. Without torchrun's environment everything here is a single process and
costs nothing.

Evaluation shards items by stride (rank r takes items r, r + size, ...), so that every rank gets nearly
the same number of items, and `gather_shards` puts the rows back in the original order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .models.guide import resolve_device


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, count: int) -> list[int]:
        """The indices of `count` items that this rank handles."""
        return list(range(self.rank, count, self.size))


def init_world(device: str = "auto") -> World:
    """Join the process group torchrun describes in the environment; a single process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return World(rank=rank, size=size, local_rank=local_rank, device=resolved)


def close_world() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def gather_shards(rows: torch.Tensor, world: World, count: int) -> torch.Tensor:
    """Every rank's rows for `world.shard(count)` -> all `count` rows in their original order, on every rank."""
    if world.size == 1:
        return rows
    longest = -(-count // world.size)  # shards differ in length by at most one row
    padded = torch.zeros(longest, *rows.shape[1:], dtype=rows.dtype, device=world.device)
    padded[: rows.shape[0]] = rows.to(world.device)
    parts = [torch.zeros_like(padded) for _ in range(world.size)]
    dist.all_gather(parts, padded)
    merged = torch.empty(count, *rows.shape[1:], dtype=rows.dtype)
    for rank, part in enumerate(parts):
        merged[rank::world.size] = part[: len(range(rank, count, world.size))].cpu()
    return merged  # (count, ...)


def all_reduce_sum(value: float, world: World) -> float:
    if world.size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=world.device)
    dist.all_reduce(tensor)
    return float(tensor.item())


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
