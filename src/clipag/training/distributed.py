"""Training's collectives, on top of clipag.distributed (the process group, shared with evaluation).

Gradients are averaged by hand, with one flattened all-reduce per optimiser step, rather than through a
DistributedDataParallel wrapper: the attack and the accumulation's cached-feature pass call the image
tower outside one forward/backward pair, which DDP's reducer does not support. During accumulation this
communicates exactly as DDP under no_sync() does: once per optimiser step.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from ..distributed import World, all_reduce_sum, barrier, close_world, init_world  # noqa: F401 (re-exported)


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
