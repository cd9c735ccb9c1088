"""Batched, differentiable views of an image for guidance, built on kornia.

Whole-image views get DiffAugment-style colour jitter, translation with rescaling, cutout and a little
Gaussian noise; crops are random resized crops. Every view of a step is made in one batched call, so
there is no Python loop over views. When a step's batch would not fit in memory, `chunks` draws every
random parameter for the whole batch first (the same draws `forward` makes) and applies them a slice
at a time, so a chunked step gives the same views.
"""
from __future__ import annotations

from dataclasses import dataclass

import kornia.augmentation as K
from typing import Iterator

import torch
import torch.nn.functional as F

_UNBATCHED_PARAMS = ("order", "forward_input_shape")  # kornia keys with no batch dimension


@dataclass
class ViewConfig:
    views: int = 32  # augmented whole-image views per step
    crops: int = 32  # random resized crops per step
    crop_scale: tuple[float, float] = (0.25, 0.9)  # crop area as a share of the image
    brightness: float = 0.2
    contrast: float = 0.3
    saturation: float = 0.5
    translate: float = 0.125  # share of the side, as DiffAugment's default
    scale: tuple[float, float] = (0.8, 1.1)
    cutout_p: float = 0.5
    noise_std: float = 0.02


class GuidanceViews(torch.nn.Module):
    """(1, 3, S, S) image -> (views + crops, 3, h, w) batch at the model's input size (h, w)."""

    def __init__(self, out_size: tuple[int, int], config: ViewConfig = ViewConfig()):
        super().__init__()
        self.out_size = tuple(out_size)
        self.config = config
        self.view_augment = K.AugmentationSequential(
            K.ColorJiggle(brightness=config.brightness, contrast=config.contrast,
                          saturation=config.saturation, p=1.0),
            K.RandomAffine(degrees=0, translate=(config.translate, config.translate), scale=config.scale,
                           padding_mode="reflection", p=1.0),
            K.RandomErasing(scale=(0.02, 0.25), ratio=(0.5, 2.0), value=0.0, p=config.cutout_p),
            K.RandomGaussianNoise(std=config.noise_std, p=1.0),
        )
        self.crop = K.RandomResizedCrop(self.out_size, scale=config.crop_scale, ratio=(0.8, 1.25))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.config.views:
            parts.append(self._resize(self.view_augment(image.expand(self.config.views, -1, -1, -1))))
        if self.config.crops:
            parts.append(self.crop(image.expand(self.config.crops, -1, -1, -1)))  # (C, 3, h, w)
        return torch.cat(parts)

    def chunks(self, image: torch.Tensor, size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """(first index, batch of at most `size`) over the same views and crops `forward` makes."""
        n_views, n_crops = self.config.views, self.config.crops
        shape = image.shape[1:]
        view_params = self.view_augment.forward_parameters(torch.Size((n_views, *shape))) if n_views else None
        crop_params = self.crop.forward_parameters(torch.Size((n_crops, *shape))) if n_crops else None
        for start in range(0, n_views, size):
            stop = min(start + size, n_views)
            params = [type(p)(p.name, _slice(p.data, start, stop)) for p in view_params]
            yield start, self._resize(self.view_augment(image.expand(stop - start, -1, -1, -1), params=params))
        for start in range(0, n_crops, size):
            stop = min(start + size, n_crops)
            crops = self.crop(image.expand(stop - start, -1, -1, -1), params=_slice(crop_params, start, stop))
            yield n_views + start, crops

    def _resize(self, views: torch.Tensor) -> torch.Tensor:
        if tuple(views.shape[-2:]) != self.out_size:  # (V, 3, S, S) -> (V, 3, h, w)
            views = F.interpolate(views, size=self.out_size, mode="bilinear", antialias=True)
        return views


def _slice(params: dict, start: int, stop: int) -> dict:
    """Rows start:stop of a kornia parameter dict drawn for a whole batch."""
    sliced = {}
    for key, value in params.items():
        if key == "forward_input_shape":
            value = value.clone()
            value[0] = stop - start
        elif key not in _UNBATCHED_PARAMS and torch.is_tensor(value) and value.ndim:
            value = value[start:stop]
        sliced[key] = value
    return sliced
