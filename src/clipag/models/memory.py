"""How much memory a guided run needs, and how many views fit in one pass.

A guided step holds every augmented view of the image at the image's own size, with what autograd
keeps of each, plus the guide's activations at its input size. At 2048 px one view alone takes about
1 GB, so a step's views are evaluated in chunks that fit (`clipag.generation.views.GuidanceViews.chunks`), and a
run whose fixed part cannot fit is refused before it starts. The per-view factors below were measured on
this project's CPU runs with `benchmarks/memory.py` (peak RSS over one step) and rounded up; they are
estimates for planning, not exact. Written here: no library budgets differentiable augmentations.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import ClipagError

FLOAT = 4  # bytes; pixels and views are fp32
VIEW_COPIES = 24  # image-size tensors one augmented view keeps for backward (measured 16-26)
CROP_COPIES = 4  # for a resized crop (measured 3), at the image's size
MODEL_COPIES = 64  # input-size tensors of the guide's activations per image (measured 40-50, ViT-B/32)
TRAIN_COPIES = 150  # input-size tensors per image of a training micro-batch: clean and attacked passes, the
# contrastive loss (measured 143: the first release's clip-emoji, a 64 px ViT, CPU, 32 vs 128 images, peak RSS 1.11 vs 1.78 GB)
FIXED_COPIES = 6  # the pixels, their gradient, AdamW's two moments, the start and a frame
SAFETY = 0.8  # plan on this share of what is free


def available_bytes(device: torch.device) -> int:
    """Free memory of `device`: the GPU's free memory, else the machine's available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@dataclass
class MemoryPlan:
    chunk: int  # views and crops evaluated per pass
    fixed_bytes: int  # what the run holds whatever the chunk
    per_item_bytes: int  # what each view or crop of a pass adds
    available_bytes: int

    def peak_bytes(self) -> int:
        return self.fixed_bytes + self.chunk * self.per_item_bytes


def plan_views(size: int, views: int, crops: int, input_size: tuple[int, int], device: torch.device,
               what: str = "this run", available: int | None = None) -> MemoryPlan:
    """The largest chunk of views and crops that fits; ClipagError when not even one does."""
    image = 3 * size * size * FLOAT
    model_item = MODEL_COPIES * 3 * input_size[0] * input_size[1] * FLOAT
    per_item = max(VIEW_COPIES if views else 0, CROP_COPIES if crops else 0) * image + model_item
    fixed = FIXED_COPIES * image + views * image  # kornia draws every view's noise at full size up front
    free = int((available if available is not None else available_bytes(device)) * SAFETY)
    chunk = min(views + crops, (free - fixed) // per_item) if free > fixed else 0
    if chunk < 1:
        raise ClipagError(
            f"{what} needs about {_gb(fixed + per_item)} at {size} px with {views} views, but {device} has "
            f"{_gb(free / SAFETY)} free; lower --size or --views")
    return MemoryPlan(int(chunk), fixed, per_item, free)


def check_training_batch(micro_batch: int, input_size: tuple[int, int], model: torch.nn.Module,
                         device: torch.device, available: int | None = None) -> int:
    """Refuse (ClipagError) a training micro-batch whose activations cannot fit; returns the estimate.

    Per image a training step keeps about TRAIN_COPIES input-size tensors (the attack's steps run one
    after another, so they do not add up); the model holds its weights, and for trained parameters
    their gradients and AdamW's two moments."""
    weights = sum(p.numel() for p in model.parameters()) * FLOAT
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad) * FLOAT
    per_image = TRAIN_COPIES * 3 * input_size[0] * input_size[1] * FLOAT
    needed = weights + 3 * trained + micro_batch * per_image
    free = int((available if available is not None else available_bytes(device)) * SAFETY)
    if needed > free:
        raise ClipagError(
            f"a micro-batch of {micro_batch} images at {input_size[0]} px needs about {_gb(needed)}, but {device} "
            f"has {_gb(free / SAFETY)} free; raise --accum-steps or lower --batch-size")
    return needed


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB"
