"""Batched, differentiable views of an image for guidance, built on kornia.

Whole-image views get DiffAugment-style colour jitter, translation with rescaling, cutout and a little
Gaussian noise; crops are random resized crops. Every view of a step is made in one batched call, so
there is no Python loop over views.
"""
from __future__ import annotations

from dataclasses import dataclass

import kornia.augmentation as K
import torch
import torch.nn.functional as F


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
            views = self.view_augment(image.expand(self.config.views, -1, -1, -1))  # (V, 3, S, S)
            if tuple(views.shape[-2:]) != self.out_size:
                views = F.interpolate(views, size=self.out_size, mode="bilinear", antialias=True)
            parts.append(views)
        if self.config.crops:
            parts.append(self.crop(image.expand(self.config.crops, -1, -1, -1)))  # (C, 3, h, w)
        return torch.cat(parts)
