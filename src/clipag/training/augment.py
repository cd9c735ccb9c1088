"""Training augmentation for `clipag train --augment`: batched on the device, fixed by (seed, step).

    augment = TrainAugment(AugmentConfig())
    rgb = augment(rgba, generator)   # (B, 4, S, S) premultiplied RGBA in [0,1] -> (B, 3, S, S) in [0,1]

Per picture, in order: an affine warp (zoom in, which is a square random resized crop, or zoom out,
leaving a transparent border; a shift; a small rotation; a horizontal flip only if asked); the picture
composited over a background (a random solid colour or a two-colour linear gradient, or white); then
brightness, contrast and saturation (never hue: "a red apple" must stay red); a Gaussian blur; a
down-and-up resize. Opaque pictures (photos) get their alpha as 1, so a zoom-out shows the background.

Every random number comes from the `generator` the training loop seeds with (seed, step, micro-batch),
so a resumed run repeats an uninterrupted one bit for bit. kornia gives the kernels (warp_affine,
adjust_contrast_with_mean_subtraction, adjust_saturation, gaussian_blur2d); the parameters are drawn
here rather than by kornia.augmentation, which draws from torch's global generator.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.enhance import adjust_contrast_with_mean_subtraction, adjust_saturation
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import get_affine_matrix2d, warp_affine

from .config import AugmentConfig


class TrainAugment:
    def __init__(self, config: AugmentConfig):
        config.validate()
        self.config = config

    def __call__(self, rgba: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if rgba.shape[1] != 4:
            raise ValueError(f"TrainAugment takes premultiplied RGBA (B, 4, S, S), got {tuple(rgba.shape)}")
        if rgba.numel() == 0:
            return rgba[:, :3]
        draw = lambda *shape: torch.rand(*shape, generator=generator, device=generator.device).to(rgba.device)
        x = self._warp(rgba, draw)  # (B, 4, S, S)
        x = x[:, :3] + (1 - x[:, 3:]) * self._backgrounds(x, draw)  # (B, 3, S, S) over the background
        x = self._colour(x, draw)
        x = self._blur(x, draw)
        return self._down_up(x, draw).clamp(0, 1)

    def _warp(self, x: torch.Tensor, draw) -> torch.Tensor:
        B, _, H, W = x.shape
        c = self.config
        log_zoom = math.log(c.zoom_out) + draw(B) * (math.log(c.zoom_in) - math.log(c.zoom_out))  # (B,) log-uniform
        scale = log_zoom.exp().unsqueeze(1).expand(B, 2)  # (B, 2)
        shift = (draw(B, 2) * 2 - 1) * c.shift * torch.tensor([W, H], device=x.device)  # (B, 2) px
        angle = (draw(B) * 2 - 1) * c.rotate  # (B,) degrees
        centre = torch.tensor([(W - 1) / 2, (H - 1) / 2], device=x.device).expand(B, 2)
        matrix = get_affine_matrix2d(shift, centre, scale, angle)[:, :2]  # (B, 2, 3)
        if c.flip:
            flips = draw(B) < 0.5
            mirror = torch.tensor([[-1.0, 0, W - 1], [0, 1, 0], [0, 0, 1]], device=x.device)
            full = torch.cat([matrix, torch.tensor([[[0, 0, 1.0]]], device=x.device).expand(B, 1, 3)], 1)
            matrix = torch.where(flips.view(B, 1, 1), (full @ mirror)[:, :2], matrix)
        return warp_affine(x, matrix, (H, W), mode="bilinear", padding_mode="zeros", align_corners=True)

    def _backgrounds(self, x: torch.Tensor, draw) -> torch.Tensor:
        B, _, H, W = x.shape
        first, second = draw(B, 3, 1, 1), draw(B, 3, 1, 1)  # (B, 3, 1, 1) two colours
        direction = draw(B) * 2 * math.pi  # (B,)
        ys = torch.linspace(-0.5, 0.5, H, device=x.device).view(1, H, 1)
        xs = torch.linspace(-0.5, 0.5, W, device=x.device).view(1, 1, W)
        ramp = (xs * direction.cos().view(B, 1, 1) + ys * direction.sin().view(B, 1, 1)) / math.sqrt(0.5) + 0.5
        gradient = first + (second - first) * ramp.clamp(0, 1).unsqueeze(1)  # (B, 3, H, W)
        kind = draw(B).view(B, 1, 1, 1)  # < background/2: solid; < background: gradient; else white
        solid, white = first.expand(B, 3, H, W), torch.ones_like(gradient)
        share = self.config.background
        return torch.where(kind < share / 2, solid, torch.where(kind < share, gradient, white))

    def _colour(self, x: torch.Tensor, draw) -> torch.Tensor:
        B, c = x.shape[0], self.config
        x = x + ((draw(B) * 2 - 1) * c.brightness).view(B, 1, 1, 1)
        x = adjust_contrast_with_mean_subtraction(x.clamp(0, 1), 1 + (draw(B) * 2 - 1) * c.contrast)  # around the grey mean
        return adjust_saturation(x, 1 + (draw(B) * 2 - 1) * c.saturation)

    def _blur(self, x: torch.Tensor, draw) -> torch.Tensor:
        B = x.shape[0]
        chosen, sigma = draw(B) < self.config.blur, 0.3 + 0.9 * draw(B)  # (B,), (B,)
        if not chosen.any():
            return x
        blurred = gaussian_blur2d(x, (5, 5), sigma.view(B, 1).expand(B, 2).contiguous())
        return torch.where(chosen.view(B, 1, 1, 1), blurred, x)

    def _down_up(self, x: torch.Tensor, draw) -> torch.Tensor:
        B, _, H, W = x.shape
        chosen, factor = draw(B) < self.config.down_up, draw(B)  # (B,); factor picks 1/3 or 1/2
        for k, divisor in enumerate((3, 2)):
            pick = chosen & (factor >= k / 2) & (factor < (k + 1) / 2)
            if pick.any():
                small = F.interpolate(x, size=(max(1, H // divisor), max(1, W // divisor)), mode="bilinear",
                                      align_corners=False, antialias=True)
                back = F.interpolate(small, size=(H, W), mode="bilinear", align_corners=False)
                x = torch.where(pick.view(B, 1, 1, 1), back, x)
        return x
