"""torch.distributed plumbing for torchrun: NCCL on GPUs, gloo on CPUs, one process per device.

Gradients are averaged by hand, with one flattened all-reduce per optimiser step, rather than through a
DistributedDataParallel wrapper: the attack and the accumulation's cached-feature pass call the image
tower outside one forward/backward pair, which DDP's reducer does not support. During accumulation this
communicates exactly as DDP under no_sync() does: once per optimiser step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..guide import resolve_device


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


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


def gather_with_local_grad(features: torch.Tensor, world: World) -> torch.Tensor:
    """Concatenate every rank's (N_r, D) rows; only this rank's rows carry gradients.

    Ranks may hold different N_r (skipped corrupt samples), so rows are padded for the collective.
    """
    if world.size == 1:
        return features
    count = torch.tensor([features.shape[0]], device=features.device)
    counts = [torch.zeros_like(count) for _ in range(world.size)]
    dist.all_gather(counts, count)
    longest = int(max(c.item() for c in counts))
    padded = torch.zeros(longest, *features.shape[1:], device=features.device, dtype=features.dtype)
    padded[: features.shape[0]] = features.detach()
    gathered = [torch.zeros_like(padded) for _ in range(world.size)]
    dist.all_gather(gathered, padded)
    parts = [g[: int(c.item())] for g, c in zip(gathered, counts)]
    parts[world.rank] = features
    return torch.cat(parts)  # (sum N_r, D)


def sum_gradients(parameters: list[torch.nn.Parameter], world: World) -> None:
    """Sum .grad over ranks with one flattened all-reduce (losses are already scaled to the global batch)."""
    if world.size == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(parameters, grads):
        p.grad = flat[offset: offset + g.numel()].view_as(g).clone()
        offset += g.numel()


def all_reduce_sum(value: float, world: World) -> float:
    if world.size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=world.device)
    dist.all_reduce(tensor)
    return float(tensor.item())


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
