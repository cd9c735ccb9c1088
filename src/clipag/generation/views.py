"""Batched, differentiable views of an image for guidance: the official notebook's DiffAugment.

By default (`augment="diffaugment"`) views and crops are made as royg27/CLIPAG's `CLIPAG_T2I.ipynb`
makes them:

- views: the image plus N(0, noise_std) noise, then DiffAugment (Zhao et al. 2020) with the policy
  color,translation,resize,cutout: brightness + U(-0.5, 0.5); saturation x U(0, 2) around the
  per-pixel channel mean; contrast x U(0.5, 1.5) around the image mean; an integer shift of up to
  1/8 of the side with zero padding; one resize of 0.8-1.2 per batch, zero-padded or centre-cropped
  back; a zeroed square of half the side. Nothing is clamped.
- crops: the image plus one N(0, noise_std) noise map shared by the batch, fixed-size random crops
  (128 of 224 px: `crop_share` of the side), resized to the model's size, clamped to [0, 1], then the
  same DiffAugment.

`augment="kornia"` keeps clipag's earlier views (kornia's clamped colour jitter, reflection-padded
affine, erasing with p 0.5; RandomResizedCrop crops with no augmentation), for comparison.

DiffAugment's operations are written here, not taken from kornia: kornia's colour operations clamp to
[0, 1], its saturation works in HSV and its contrast does not centre on the mean, so none gives the
notebook's arithmetic. They are a few tensor operations each, on the whole batch at once (no Python
loop over views). Every random draw of a step is made before any view is built (`sample`), so
`chunks` can build the same views a slice at a time when a step's batch would not fit in memory.
"""
from __future__ import annotations

from typing import Iterator

import kornia.augmentation as K
import torch
import torch.nn.functional as F

from ..configs import AUGMENT_CHOICES, POLICY_OPS, ViewConfig, check_view_config

_UNBATCHED_PARAMS = ("order", "forward_input_shape")  # kornia keys with no batch dimension


# ---------------------------------------------------------------- DiffAugment, batched


def sample_diffaugment(n: int, size: tuple[int, int], config: ViewConfig, device) -> dict:
    """Every random draw of DiffAugment for a batch of `n` images of `size` (H, W)."""
    H, W = size
    shift = torch.tensor([int(H * config.translate + 0.5), int(W * config.translate + 0.5)], device=device)
    cut = (int(H * config.cutout + 0.5), int(W * config.cutout + 0.5))
    low, high = config.resize
    return {
        "brightness": torch.rand(n, 1, 1, 1, device=device) - 0.5,
        "saturation": torch.rand(n, 1, 1, 1, device=device) * 2,
        "contrast": torch.rand(n, 1, 1, 1, device=device) + 0.5,
        "shift": (torch.rand(n, 2, device=device) * (2 * shift + 1)).floor().long() - shift,  # (n, 2) rows, cols
        "ratio": float(torch.rand(()) * (high - low) + low),  # one per batch, as the notebook's np.random
        "cutout_centre": torch.stack([torch.randint(0, H + 1 - cut[0] % 2, (n,), device=device),
                                      torch.randint(0, W + 1 - cut[1] % 2, (n,), device=device)], 1),
        "cutout_size": cut,
    }


def diffaugment(x: torch.Tensor, params: dict, ops: tuple[str, ...] = POLICY_OPS) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, H, W): DiffAugment with the draws `params` (from `sample_diffaugment`)."""
    if "color" in ops:
        x = x + params["brightness"]
        x = (x - x.mean(1, keepdim=True)) * params["saturation"] + x.mean(1, keepdim=True)
        x = (x - x.mean((1, 2, 3), keepdim=True)) * params["contrast"] + x.mean((1, 2, 3), keepdim=True)
    if "translation" in ops:
        x = translate(x, params["shift"])
    if "resize" in ops:
        x = resize_keep_size(x, params["ratio"])
    if "cutout" in ops:
        x = cutout(x, params["cutout_centre"], params["cutout_size"])
    return x


def translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """out[b, :, i, j] = x[b, :, i + shift[b, 0], j + shift[b, 1]], zero outside the image."""
    B, _, H, W = x.shape
    rows = (torch.arange(H, device=x.device) + shift[:, :1] + 1).clamp(0, H + 1)  # (B, H) into the padded image
    cols = (torch.arange(W, device=x.device) + shift[:, 1:] + 1).clamp(0, W + 1)  # (B, W)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # (B, H+2, W+2, 3), a zero border
    batch = torch.arange(B, device=x.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, 3, H, W)


def resize_keep_size(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zoom by `ratio` (bilinear), then zero-pad or centre-crop back to the input's size."""
    H, W = x.shape[-2:]
    h, w = int(ratio * H), int(ratio * W)
    zoomed = F.interpolate(x, size=(h, w), mode="bilinear")  # (B, 3, h, w)
    top, left = abs(H - h) // 2, abs(W - w) // 2
    if h < H:  # ratio < 1 shrinks both sides alike
        return F.pad(zoomed, (left, W - w - left, top, H - h - top))
    return zoomed[:, :, top:top + H, left:left + W]


def cutout(x: torch.Tensor, centre: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero a size[0] x size[1] square around each image's `centre` (B, 2), clipped to the image.

    As DiffAugment indexes the square with clamped coordinates, a square over the border still zeroes
    the border row or column it is clamped to.
    """
    H, W = x.shape[-2:]
    top = (centre[:, :1] - size[0] // 2).clamp(0, H - 1)  # (B, 1)
    bottom = (centre[:, :1] - size[0] // 2 + size[0] - 1).clamp(0, H - 1)
    left = (centre[:, 1:] - size[1] // 2).clamp(0, W - 1)
    right = (centre[:, 1:] - size[1] // 2 + size[1] - 1).clamp(0, W - 1)
    rows, cols = torch.arange(H, device=x.device), torch.arange(W, device=x.device)
    in_rows = (rows >= top) & (rows <= bottom)  # (B, H)
    in_cols = (cols >= left) & (cols <= right)  # (B, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (B, H, W)
    return x * keep.unsqueeze(1).to(x.dtype)


_SHARED_DRAWS = ("crop_noise",)  # one draw for the whole batch, not one per image


def _slice(params: dict, start: int, stop: int) -> dict:
    """Rows start:stop of every batched draw; per-batch values (ratio, sizes, shared noise) are kept."""
    return {key: value[start:stop] if torch.is_tensor(value) and value.ndim and key not in _SHARED_DRAWS
            else value for key, value in params.items()}


# ---------------------------------------------------------------- the views of one step

class GuidanceViews(torch.nn.Module):
    """(1, 3, S, S) image -> (views + crops, 3, h, w) batch at the model's input size (h, w)."""

    def __init__(self, out_size: tuple[int, int], config: ViewConfig = ViewConfig()):
        super().__init__()
        self.out_size = tuple(out_size)
        self.config = config
        self.kornia = _KorniaViews(self.out_size) if config.augment == "kornia" else None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.cat([batch for _, batch in self.chunks(image, self.config.views + self.config.crops)])

    def chunks(self, image: torch.Tensor, size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """(first index, batch of at most `size`) over the same views and crops `forward` makes."""
        if self.kornia is not None:
            yield from self.kornia.chunks(image, self.config.views, self.config.crops, size)
            return
        n_views, n_crops = self.config.views, self.config.crops
        view_draws = self._draw_views(image) if n_views else None
        crop_draws = self._draw_crops(image) if n_crops else None
        for start in range(0, n_views, size):
            stop = min(start + size, n_views)
            yield start, self._views(image, _slice(view_draws, start, stop))
        for start in range(0, n_crops, size):
            stop = min(start + size, n_crops)
            yield n_views + start, self._crops(image, _slice(crop_draws, start, stop))

    # the draws of a step, made before any view is built

    def _draw_views(self, image: torch.Tensor) -> dict:
        n = self.config.views
        noise = torch.randn(n, *image.shape[1:], device=image.device) * self.config.noise_std
        return {"noise": noise, **sample_diffaugment(n, self.out_size, self.config, image.device)}

    def _draw_crops(self, image: torch.Tensor) -> dict:
        n, (H, W) = self.config.crops, image.shape[-2:]
        side = (max(1, round(H * self.config.crop_share)), max(1, round(W * self.config.crop_share)))
        corner = torch.stack([torch.randint(0, H - side[0] + 1, (n,), device=image.device),
                              torch.randint(0, W - side[1] + 1, (n,), device=image.device)], 1)
        noise = torch.randn(1, *image.shape[1:], device=image.device) * self.config.noise_std  # shared
        return {"crop_noise": noise, "corner": corner, "side": side,
                **sample_diffaugment(n, self.out_size, self.config, image.device)}

    # building them

    def _views(self, image: torch.Tensor, draws: dict) -> torch.Tensor:
        views = self._resize(image + draws["noise"])  # (n, 3, h, w)
        return diffaugment(views, draws, self.config.policy_ops())

    def _crops(self, image: torch.Tensor, draws: dict) -> torch.Tensor:
        crops = crop_batch(image + draws["crop_noise"], draws["corner"], draws["side"])  # (n, 3, c, c)
        crops = self._resize(crops).clamp(0, 1)  # (n, 3, h, w)
        return diffaugment(crops, draws, self.config.policy_ops())

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[-2:]) != self.out_size:
            images = F.interpolate(images, size=self.out_size, mode="bilinear", antialias=True)
        return images


def crop_batch(image: torch.Tensor, corner: torch.Tensor, side: tuple[int, int]) -> torch.Tensor:
    """(1, 3, H, W) and top-left corners (n, 2) -> (n, 3, side[0], side[1]) crops."""
    rows = corner[:, :1] + torch.arange(side[0], device=image.device)  # (n, side0)
    cols = corner[:, 1:] + torch.arange(side[1], device=image.device)  # (n, side1)
    pixels = image[0].permute(1, 2, 0)  # (H, W, 3)
    return pixels[rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


class _KorniaViews:
    """clipag's earlier views, kept as `augment="kornia"`: kornia colour jitter, affine and erasing."""

    def __init__(self, out_size: tuple[int, int]):
        self.out_size = out_size
        self.view_augment = K.AugmentationSequential(
            K.ColorJiggle(brightness=0.2, contrast=0.3, saturation=0.5, p=1.0),
            K.RandomAffine(degrees=0, translate=(0.125, 0.125), scale=(0.8, 1.1), padding_mode="reflection", p=1.0),
            K.RandomErasing(scale=(0.02, 0.25), ratio=(0.5, 2.0), value=0.0, p=0.5),
            K.RandomGaussianNoise(std=0.02, p=1.0),
        )
        self.crop = K.RandomResizedCrop(out_size, scale=(0.25, 0.9), ratio=(0.8, 1.25))

    def chunks(self, image: torch.Tensor, n_views: int, n_crops: int, size: int):
        shape = image.shape[1:]
        view_params = self.view_augment.forward_parameters(torch.Size((n_views, *shape))) if n_views else None
        crop_params = self.crop.forward_parameters(torch.Size((n_crops, *shape))) if n_crops else None
        for start in range(0, n_views, size):
            stop = min(start + size, n_views)
            params = [type(p)(p.name, _slice_kornia(p.data, start, stop)) for p in view_params]
            views = self.view_augment(image.expand(stop - start, -1, -1, -1), params=params)
            if tuple(views.shape[-2:]) != self.out_size:
                views = F.interpolate(views, size=self.out_size, mode="bilinear", antialias=True)
            yield start, views
        for start in range(0, n_crops, size):
            stop = min(start + size, n_crops)
            crops = self.crop(image.expand(stop - start, -1, -1, -1), params=_slice_kornia(crop_params, start, stop))
            yield n_views + start, crops


def _slice_kornia(params: dict, start: int, stop: int) -> dict:
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


