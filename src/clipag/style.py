"""CLIPStyler (Kwon & Ye, CVPR 2022) with any guide: restyle an image from a text prompt.

    result = style(guide, content, "a watercolor painting", config=StyleConfig(iterations=200))

Two variants, as the CLIPAG paper compares: a small U-Net style network maps the content image to the
stylised one (the reference's approach), or, with `network=False`, the pixels are optimised directly.
Losses (weights 9000 / 500 / 150 / 2e-3 by default):
  patch     directional CLIP loss on 64 random 128-px crops with perspective augmentation: 1 - cos of
            (crop embedding - content embedding) with (prompt - "a Photo"), zeroed below 0.7 (the reference's
            rejection threshold), averaged;
  global    the same direction loss on the whole image;
  content   MSE of VGG19 relu4_2 and relu5_2 features (the reference's layers '21' and '31') when torchvision VGG19 weights are given
            (`vgg_weights`), else MSE of the pixels at 1/4 resolution, and the result says which;
  tv        total variation as the reference computes it: the L2 norms of four neighbour differences.
Text directions average the 80 ImageNet templates (OpenCLIP's metadata). Adam lr 5e-4 (the network) or
5e-3 (pixels), halved every 100 steps, 200 steps.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES
from torch import nn

from .errors import ClipagError, check_finite
from .guide import Guide
from .memory import plan_views
from .io import (environment, image_grid, load_image, results_per_seed, save_png, save_result,
                 save_trajectory)
from .prompts import parse_weighted_prompt

SOURCE_TEXT = "a Photo"


@dataclass
class StyleConfig:
    iterations: int = 200
    network: bool = True
    lr: Optional[float] = None  # None: 5e-4 for the network, 5e-3 for pixels
    crops: int = 64
    crop_size: int = 128
    threshold: float = 0.7
    lambda_patch: float = 9000.0
    lambda_global: float = 500.0
    lambda_content: float = 150.0
    lambda_tv: float = 2e-3
    size: int = 512  # side of the content image
    vgg_weights: Optional[str] = None  # torchvision vgg19 state dict file
    trajectory_frames: int = 0  # > 0: keep this many frames for a strip and a GIF
    postprocess: str = "reference"  # "reference": contrast x1.5 then min-max, as CLIPStyler saves; "none"

    def validate(self) -> None:
        check_finite(self)
        if self.iterations <= 0 or self.crops <= 0:
            raise ClipagError("iterations and crops must be positive integers")
        if self.postprocess not in POSTPROCESS:
            raise ClipagError(f"unknown postprocess {self.postprocess!r}; use {' or '.join(POSTPROCESS)}")
        if not 16 <= self.crop_size <= self.size:
            raise ClipagError(f"crop size {self.crop_size} must be between 16 and the image size {self.size}")


POSTPROCESS = ("reference", "none")


def reference_postprocess(image: torch.Tensor) -> torch.Tensor:
    """CLIPStyler's output step: clamp to [0,1], torchvision's adjust_contrast by 1.5, then stretch the
    image's own minimum and maximum to 0 and 1 (what save_image(normalize=True) does)."""
    from torchvision.transforms.functional import adjust_contrast
    image = adjust_contrast(image.clamp(0, 1), 1.5)
    low, high = image.min(), image.max()
    return (image - low) / (high - low).clamp_min(1e-5)


@dataclass
class StyleResult:
    prompts: list[str]
    image: torch.Tensor  # (3, S, S)
    losses: list[dict]
    content_loss: str  # what the content loss compared
    seconds: float
    frames: list[torch.Tensor] = dataclasses.field(default_factory=list)  # content first, then the trajectory


class StyleUNet(nn.Module):
    """A small U-Net: three resolutions down and up with skip connections, sigmoid output in [0,1]."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = [width, width * 2, width * 4]
        self.down = nn.ModuleList([_block(3, w[0]), _block(w[0], w[1]), _block(w[1], w[2])])
        self.up = nn.ModuleList([_block(w[2] + w[1], w[1]), _block(w[1] + w[0], w[0])])
        self.out = nn.Conv2d(w[0], 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear"), skip], dim=1))
        return torch.sigmoid(self.out(x))


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.InstanceNorm2d(c_out), nn.LeakyReLU(0.2),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.InstanceNorm2d(c_out), nn.LeakyReLU(0.2))


def template_features(guide: Guide, text: str) -> torch.Tensor:
    features = guide.encode_text([t(text) for t in OPENAI_IMAGENET_TEMPLATES], cache=False)  # (80, D)
    return F.normalize(features.float().mean(dim=0), dim=-1)  # (D,)


def text_direction(guide: Guide, prompts: Sequence[str]) -> torch.Tensor:
    """The unit direction from the source text to the prompts' weighted mean ("TEXT:WEIGHT"; a negative weight
    steers away from a text). One prompt of weight 1 gives the reference's target - source."""
    parsed = [parse_weighted_prompt(p) for p in prompts]
    target = sum(w * template_features(guide, text) for text, w in parsed) / sum(abs(w) for _, w in parsed)  # (D,)
    return F.normalize(target - template_features(guide, SOURCE_TEXT), dim=-1)  # (D,)


def vgg_content_features(path: str) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """torchvision VGG19 (weights from `path`) content features of [0,1] images; see content_features."""
    from torchvision.models import vgg19
    from .loading import read_state_dict
    model = vgg19()
    try:
        model.load_state_dict(read_state_dict(Path(path)))
    except RuntimeError as err:
        raise ClipagError(f"{path} is not torchvision's VGG19 state dict ({str(err).splitlines()[0]}); "
                          f"give vgg19-dcbb9e9d.pth") from None
    return relu_content_features(model.features)


# The reference keeps features '21' and '31' of torchvision's VGG19: the conv4_2 output, which the
# in-place ReLU after it rectifies before the loss reads it, and relu5_2. So both are ReLU outputs.
CONTENT_LAYERS = (22, 31)  # relu4_2, relu5_2


def relu_content_features(vgg_features: nn.Sequential) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """[0,1] images -> VGG19 relu4_2 and relu5_2 features (ImageNet normalisation inside)."""
    layers = vgg_features[:max(CONTENT_LAYERS) + 1].eval().requires_grad_(False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def features(images: torch.Tensor) -> list[torch.Tensor]:
        x, kept = (images - mean.to(images)) / std.to(images), []
        for index, layer in enumerate(layers.to(images.device)):
            x = layer(x)
            if index in CONTENT_LAYERS:
                kept.append(x)
        return kept
    return features


def pixel_content_features(images: torch.Tensor) -> list[torch.Tensor]:
    return [F.avg_pool2d(images, 4)]


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """The reference's image prior: the sum of the L2 norms (not squared) of the horizontal, vertical and
    both diagonal neighbour differences of (B, 3, H, W) images."""
    differences = (images[..., :, :-1] - images[..., :, 1:], images[..., :-1, :] - images[..., 1:, :],
                   images[..., 1:, :-1] - images[..., :-1, 1:], images[..., :-1, :-1] - images[..., 1:, 1:])
    return sum(torch.linalg.vector_norm(d) for d in differences)


def style(guide: Guide, content: torch.Tensor, prompts: str | Sequence[str], seed: int = 0,
          config: StyleConfig = StyleConfig(), progress: bool = True) -> StyleResult:
    """Restyle `content` (1, 3, S, S) in [0,1] towards the prompts (one text, or several "TEXT:WEIGHT");
    returns the image and the loss history."""
    from tqdm import tqdm
    config.validate()
    started = time.perf_counter()
    torch.manual_seed(seed)
    content = content.to(guide.device)
    plan_views(content.shape[-1], 0, config.crops, guide.image_size, guide.device, what="style transfer")
    content_features = vgg_content_features(config.vgg_weights) if config.vgg_weights else pixel_content_features
    content_kind = "VGG19 relu4_2 + relu5_2 features" if config.vgg_weights else \
        "pixels at 1/4 resolution (no VGG19 weights given: pass --vgg-weights vgg19-dcbb9e9d.pth for the reference's loss)"
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    direction = text_direction(guide, prompts)  # (D,)
    with torch.no_grad():
        source = guide.encode_image(content).float()  # (1, D)
        target_content = [f.detach() for f in content_features(content)]
    if config.network:
        network = StyleUNet().to(guide.device)
        parameters, render = list(network.parameters()), lambda: network(content)
    else:
        pixels = content.clone().requires_grad_(True)
        parameters, render = [pixels], lambda: pixels.clamp(0, 1)
    optimiser = torch.optim.Adam(parameters, lr=config.lr or (5e-4 if config.network else 5e-3))
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=100, gamma=0.5)
    crop = K.RandomCrop((config.crop_size, config.crop_size))
    perspective = K.RandomPerspective(distortion_scale=0.5, p=1.0)
    losses, frames = [], [content[0].cpu()] if config.trajectory_frames else []
    finish = reference_postprocess if config.postprocess == "reference" else (lambda image: image.clamp(0, 1))
    frame_steps = {round(config.iterations * (k + 1) / config.trajectory_frames) for k in range(config.trajectory_frames)}
    for step in tqdm(range(config.iterations), desc="style", unit="it", disable=not progress, leave=False):
        target = render()  # (1, 3, S, S)
        patches = perspective(crop(target.expand(config.crops, -1, -1, -1)))  # (N, 3, c, c)
        patch_direction = F.normalize(guide.encode_image(patches).float() - source, dim=-1)
        patch = 1 - patch_direction @ direction  # (N,)
        patch = torch.where(patch < config.threshold, torch.zeros_like(patch), patch).mean()
        glob = 1 - F.normalize(guide.encode_image(target).float() - source, dim=-1) @ direction
        content_loss = sum(F.mse_loss(a, b) for a, b in zip(content_features(target), target_content))
        tv = total_variation(target)
        loss = (config.lambda_patch * patch + config.lambda_global * glob.mean()
                + config.lambda_content * content_loss + config.lambda_tv * tv)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        scheduler.step()
        losses.append({"total": loss.item(), "patch": patch.item(), "global": glob.mean().item(),
                       "content": float(content_loss.detach()), "tv": tv.item()})
        if step + 1 in frame_steps:
            frames.append(finish(target.detach()[0]).cpu())
    with torch.no_grad():
        final = finish(render()[0].detach()).cpu()
    return StyleResult(prompts, final, losses, content_kind, time.perf_counter() - started, frames)


def style_to_folder(guide: Guide, content_path: str | Path, prompts: Sequence[str], seeds: Sequence[int],
                    out_dir: str | Path, config: StyleConfig = StyleConfig(), model_reference: str = "",
                    progress: bool = True, overwrite: bool = False) -> list[dict]:
    """The content image restyled towards the prompts (all of them shape one picture), once per seed: PNG,
    a before|after pair, settings JSON, and a strip and GIF of the trajectory when frames are kept.

    A result already in `out_dir` with the same settings is kept; other settings need `overwrite`."""
    config.validate()
    content = load_image(str(content_path), config.size)  # (1, 3, S, S)
    model = model_reference or guide.name

    def make(seed: int, stem: Path) -> dict:
        result = style(guide, content, prompts, seed, config, progress)
        record = {"content": str(content_path),
                  "prompt": prompts[0] if len(prompts) == 1 else "; ".join(prompts), "prompts": list(prompts),
                  "model": model, "seed": seed, "method": "style",
                  "content_loss": result.content_loss, "seconds": round(result.seconds, 3),
                  "settings": dataclasses.asdict(config), "losses": result.losses, **environment()}
        pair = str(stem) + "-pair.png"
        companions = [lambda: save_png(image_grid([content[0], result.image], columns=2), pair)]
        if result.frames:
            companions.append(lambda: save_trajectory(result.frames, stem))
        return save_result(result.image, record, stem, companions)

    identity = {"model": model, "content": str(content_path), "prompts": list(prompts),
                "settings": dataclasses.asdict(config)}
    return results_per_seed(out_dir, Path(content_path).stem + " " + " ".join(prompts), seeds, identity, make,
                            overwrite)
