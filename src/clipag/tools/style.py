"""CLIPStyler (Kwon & Ye, CVPR 2022) with any guide: restyle an image from a text prompt.

    result = style(guide, content, "a watercolor painting", config=StyleConfig(steps=200))

Two variants, as the CLIPAG paper compares: the reference's StyleNet (a residual U-Net down to 1/8,
615,267 parameters at its width 16; `style_net="small-unet"` is clipag's earlier 118k-parameter one) maps
the content image to the stylised one, or, with `network=False`, the pixels are optimised directly. The
content image is resized to `width` x `height` (512 x 512, multiples of 8), as the reference resizes it.
Losses (weights 9000 / 500 / 150 / 2e-3 by default):
  patch     directional CLIP loss on 64 random 128-px crops with perspective augmentation: 1 - cos of
            (crop embedding - content embedding) with (prompt - "a Photo"), zeroed below 0.7 (the reference's
            rejection threshold), averaged;
  global    the same direction loss on the whole image;
  content   MSE of VGG19 relu4_2 and relu5_2 features (the reference's layers '21' and '31'), from
            torchvision's own weights file (`vgg_weights`, default torchvision's cache path; absent, a
            one-line error says how to get it); `content_loss="pixels"` compares the pixels at 1/4
            resolution instead, a named option for machines without those weights;
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

from ..generation.stepping import StepwiseRun
from ..configs import CONTENT_LOSSES, POSTPROCESS, STYLE_NETS, StyleConfig
from ..errors import ClipagError
from ..models.guide import Guide
from ..models.memory import plan_views
from ..io import (environment, image_grid, load_image_resized, results_per_seed, save_png, save_result,
                 save_trajectory)
from ..generation.prompts import parse_weighted_prompt

SOURCE_TEXT = "a Photo"


VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's VGG19_Weights.IMAGENET1K_V1
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"


def reference_postprocess(image: torch.Tensor) -> torch.Tensor:
    """CLIPStyler's output step: clamp to [0,1], torchvision's adjust_contrast by 1.5, then stretch the
    image's own minimum and maximum to 0 and 1 (what save_image(normalize=True) does)."""
    from torchvision.transforms.functional import adjust_contrast
    image = adjust_contrast(image.clamp(0, 1), 1.5)
    low, high = image.min(), image.max()
    return (image - low) / (high - low).clamp_min(1e-5)


@dataclass
class StyleResult:
    """One stylised picture with its losses at each logged step and its trajectory frames."""
    prompts: list[str]
    image: torch.Tensor  # (3, S, S)
    losses: list[dict]
    content_loss: str  # what the content loss compared
    seconds: float
    frames: list[torch.Tensor] = dataclasses.field(default_factory=list)  # content first, then the trajectory


class _Residual(nn.Module):
    """Two 3x3 conv + InstanceNorm + ReLU layers, plus a 1x1 convolution of the input (StyleNet's unit)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1), nn.InstanceNorm2d(c_out), nn.ReLU(),
                                  nn.Conv2d(c_out, c_out, 3, 1, 1), nn.InstanceNorm2d(c_out), nn.ReLU())
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class StyleNet(nn.Module):
    """CLIPStyler's style network (cyclomon/CLIPstyler StyleNet.py `UNet`), rebuilt from its layer list.

    A 1x1 stem and a residual unit at full size; three downsampling stages (a residual unit, then a 4x4
    stride-2 convolution) to 1/8; a residual unit at 8x the width; three upsampling stages (bilinear x2,
    the stage's pre-downsampling features concatenated, a residual unit); a residual unit on the result
    and the stem's features; a 1x1 convolution and a sigmoid. 615,267 parameters at width 16.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.stem, self.first = nn.Conv2d(3, w, 1), _Residual(w, w)
        self.down = nn.ModuleList([_Residual(w, w), _Residual(w, 2 * w), _Residual(2 * w, 4 * w)])
        self.downsample = nn.ModuleList([nn.Conv2d(c, c, 4, 2, 1) for c in (w, 2 * w, 4 * w)])
        self.middle = _Residual(4 * w, 8 * w)
        self.up = nn.ModuleList([_Residual(8 * w + 4 * w, 4 * w), _Residual(4 * w + 2 * w, 2 * w),
                                 _Residual(2 * w + w, w)])
        self.last, self.head = _Residual(2 * w, w), nn.Conv2d(w, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.first(self.stem(x))  # (B, w, H, W)
        h, skips = stem, []
        for unit, down in zip(self.down, self.downsample):
            skip = unit(h)  # (B, c, H/2^k, W/2^k)
            skips.append(skip)
            h = down(skip)  # half the size
        h = self.middle(h)  # (B, 8w, H/8, W/8)
        for unit, skip in zip(self.up, reversed(skips)):
            h = unit(torch.cat([F.interpolate(h, scale_factor=2, mode="bilinear"), skip], dim=1))
        return torch.sigmoid(self.head(self.last(torch.cat([h, stem], dim=1))))  # (B, 3, H, W)


class StyleUNet(nn.Module):
    """clipag's earlier, smaller U-Net (`style_net="small-unet"`): three resolutions, 118,307 parameters."""

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


def default_vgg_weights() -> Path:
    """Where torchvision keeps VGG19's weights once downloaded: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def vgg_content_features(path: Optional[str] = None) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """torchvision VGG19 content features of [0,1] images (relu_content_features), weights from `path`
    (default torchvision's cache file); a missing file is a one-line error that says how to get it."""
    from torchvision.models import vgg19
    from ..models.loading import read_state_dict
    path = path or str(default_vgg_weights())
    if not Path(path).is_file():
        raise ClipagError(f"VGG19 weights not found at {path}, for the reference's content loss; download "
                          f"{VGG19_URL} there (or give --vgg-weights FILE), or use --content-loss pixels")
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
    return StyleRun(guide, content, prompts, seed, config).run_to_end("style", progress, unit="it")


class StyleRun(StepwiseRun):
    """One restyled picture, a step at a time (as `generate.GenerationRun`: `style` runs it to the end)."""

    def __init__(self, guide: Guide, content: torch.Tensor, prompts: str | Sequence[str], seed: int = 0,
                 config: StyleConfig = StyleConfig()):
        config.validate()
        self.started, self.seed, self.config, self.guide = time.perf_counter(), seed, config, guide
        torch.manual_seed(seed)
        self.content = content = content.to(guide.device)
        plan_views(max(content.shape[-2:]), 0, config.crops, guide.image_size, guide.device, what="style transfer")
        if config.content_loss == "vgg":
            self.content_features = vgg_content_features(config.vgg_weights)
            self.content_kind = "VGG19 relu4_2 + relu5_2 features"
        else:
            self.content_features = pixel_content_features
            self.content_kind = "pixels at 1/4 resolution (--content-loss pixels)"
        self.prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        self.direction = text_direction(guide, self.prompts)  # (D,)
        with torch.no_grad():
            self.source = guide.encode_image(content).float()  # (1, D)
            self.target_content = [f.detach() for f in self.content_features(content)]
        if config.network:
            network = (StyleNet() if config.style_net == "stylenet" else StyleUNet()).to(guide.device)
            parameters, self.render = list(network.parameters()), lambda: network(content)
        else:
            pixels = content.clone().requires_grad_(True)
            parameters, self.render = [pixels], lambda: pixels.clamp(0, 1)
        self.optimiser = torch.optim.Adam(parameters, lr=config.lr or (5e-4 if config.network else 5e-3))
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimiser, step_size=100, gamma=0.5)
        self.crop = K.RandomCrop((config.crop_size, config.crop_size))
        self.perspective = K.RandomPerspective(distortion_scale=0.5, p=1.0)
        self.losses: list[dict] = []
        self.frames = [content[0].cpu()] if config.trajectory_frames else []
        self.finish = reference_postprocess if config.postprocess == "reference" else (lambda image: image.clamp(0, 1))
        self.frame_steps = {round(config.steps * (k + 1) / config.trajectory_frames)
                            for k in range(config.trajectory_frames)}

    def step(self) -> float:
        """One optimiser step; returns the total loss."""
        config, guide = self.config, self.guide
        target = self.render()  # (1, 3, S, S)
        patches = self.perspective(self.crop(target.expand(config.crops, -1, -1, -1)))  # (N, 3, c, c)
        patch_direction = F.normalize(guide.encode_image(patches).float() - self.source, dim=-1)
        patch = 1 - patch_direction @ self.direction  # (N,)
        patch = torch.where(patch < config.threshold, torch.zeros_like(patch), patch).mean()
        glob = 1 - F.normalize(guide.encode_image(target).float() - self.source, dim=-1) @ self.direction
        content_loss = sum(F.mse_loss(a, b) for a, b in zip(self.content_features(target), self.target_content))
        tv = total_variation(target)
        loss = (config.lambda_patch * patch + config.lambda_global * glob.mean()
                + config.lambda_content * content_loss + config.lambda_tv * tv)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        self.scheduler.step()
        self.losses.append({"total": loss.item(), "patch": patch.item(), "global": glob.mean().item(),
                            "content": float(content_loss.detach()), "tv": tv.item()})
        if self.steps_done in self.frame_steps:
            self.frames.append(self.finish(target.detach()[0]).cpu())
        return self.losses[-1]["total"]

    @property
    def history(self) -> list[float]:
        return [loss["total"] for loss in self.losses]

    def image(self) -> torch.Tensor:
        with torch.no_grad():
            return self.finish(self.render()[0].detach()).cpu()

    def result(self) -> StyleResult:
        return StyleResult(self.prompts, self.image(), list(self.losses), self.content_kind,
                           time.perf_counter() - self.started, list(self.frames))


def style_to_folder(guide: Guide, content_path: str | Path, prompts: Sequence[str], seeds: Sequence[int],
                    out_dir: str | Path, config: StyleConfig = StyleConfig(), model_reference: str = "",
                    progress: bool = True, overwrite: bool = False) -> list[dict]:
    """The content image restyled towards the prompts (all of them shape one picture), once per seed: PNG,
    a before|after pair, settings JSON, and a strip and GIF of the trajectory when frames are kept.

    A result already in `out_dir` with the same settings is kept; other settings need `overwrite`."""
    config.validate()
    content = load_image_resized(str(content_path), config.width, config.height)  # (1, 3, H, W)
    model = model_reference or guide.name

    def make(seed: int, stem: Path) -> dict:
        return write_style(style(guide, content, prompts, seed, config, progress), stem, content, content_path,
                           config, model, seed)

    identity = {"model": model, "content": str(content_path), "prompts": list(prompts),
                "settings": dataclasses.asdict(config)}
    return results_per_seed(out_dir, Path(content_path).stem + " " + " ".join(prompts), seeds, identity, make,
                            overwrite)


def write_style(result: StyleResult, stem: str | Path, content: torch.Tensor, content_path: str | Path,
                config: StyleConfig, model: str, seed: int = 0, **extra) -> dict:
    """A restyled picture as STEM.png, STEM-pair.png (before | after) and STEM.json, as `clipag style` writes it."""
    stem, prompts = Path(stem), result.prompts
    record = {"content": str(content_path),
              "prompt": prompts[0] if len(prompts) == 1 else "; ".join(prompts), "prompts": list(prompts),
              "model": model, "seed": seed, "method": "style",
              "content_loss": result.content_loss, "seconds": round(result.seconds, 3),
              "settings": dataclasses.asdict(config), "losses": result.losses, **extra, **environment()}
    pair = str(stem) + "-pair.png"
    companions = [lambda: save_png(image_grid([content[0], result.image], columns=2), pair)]
    if result.frames:
        companions.append(lambda: save_trajectory(result.frames, stem))
    return save_result(result.image, record, stem, companions)
