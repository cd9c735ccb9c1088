"""VQGAN+CLIP with any guide: optimise a VQGAN latent so that its decoded image matches the prompts.

    vqgan = load_vqgan("vqgan_imagenet_f16_16384.yaml", "vqgan_imagenet_f16_16384.ckpt")
    result = vqgan_clip(guide, vqgan, ["a lighthouse at dusk"], seed=0, config=VQGANCLIPConfig(steps=500))

As nerdyrodent/VQGAN-CLIP's `generate.py` does it by default (docs/fidelity.md compares each setting):
the latent starts from random codebook entries (or an init image's encoding); each step decodes it
through straight-through quantisation and a clamp that lets gradients through when they point back into
range (ClampWithGrad); the `latest` cutouts are `crops` copies of the whole image, each the average of
its adaptive average- and max-pooling to the guide's input size, augmented by kornia with the `augments`
list (default Af, Pe, Ji, Er: affine, perspective, colour jitter, erasing, each with p 0.7), plus
U(0, 0.1)-scaled Gaussian noise, unclamped. The loss is the weighted squared spherical distance
between cutout and prompt embeddings (text prompts, and image prompts embedded through the same
cutouts); a negative weight repels. Adam lr 0.1, 500 steps; the latent is clamped to the codebook's
range. `cut_method="pooled-crops"` keeps clipag's earlier cutouts (random-size crops, pooled, with
flips, sharpness, affine, perspective and light jitter, clamped).

ClampWithGrad and the cutouts are written here: no maintained library has them, and they are a few
lines each.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import kornia.augmentation as K
import torch
import torch.nn.functional as F

from ..generation.stepping import StepwiseRun
from ..configs import CUT_METHODS, DEFAULT_AUGMENTS, VQGAN_AUGMENTS, VQGANCLIPConfig
from ..errors import ClipagError
from ..models.guide import Guide
from ..models.memory import plan_views
from ..io import environment, results_per_seed, save_gif, save_result
from ..generation.prompts import parse_weighted_prompt, weighted_text_features
from .vqgan_model import VQGAN

AUGMENTS = {  # generate.py's MakeCutouts choices, with its parameters
    "Ji": lambda size: K.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1, p=0.7),
    "Sh": lambda size: K.RandomSharpness(sharpness=0.3, p=0.5),
    "Gn": lambda size: K.RandomGaussianNoise(mean=0.0, std=1.0, p=0.5),
    "Pe": lambda size: K.RandomPerspective(distortion_scale=0.7, p=0.7),
    "Ro": lambda size: K.RandomRotation(degrees=15, p=0.7),
    "Af": lambda size: K.RandomAffine(degrees=15, translate=(0.1, 0.1), shear=5, p=0.7, padding_mode="zeros"),
    "Et": lambda size: K.RandomElasticTransform(p=0.7),
    "Ts": lambda size: K.RandomThinPlateSpline(scale=0.8, same_on_batch=True, p=0.7),
    "Cr": lambda size: K.RandomCrop(size=(size, size), pad_if_needed=True, padding_mode="reflect", p=0.5),
    "Er": lambda size: K.RandomErasing(scale=(0.1, 0.4), ratio=(0.3, 1 / 0.3), same_on_batch=True, p=0.7),
    "Re": lambda size: K.RandomResizedCrop(size=(size, size), scale=(0.1, 1), ratio=(0.75, 1.333),
                                           cropping_mode="resample", p=0.5),
}


def default_size(device: torch.device) -> int:
    """generate.py's default side: 512 on a GPU with more than 8 GB, 304 on a smaller one, 256 without."""
    if device.type != "cuda":
        return 256
    return 512 if torch.cuda.get_device_properties(device).total_memory > 2 ** 33 else 304


@dataclass
class VQGANCLIPResult:
    """One VQGAN+CLIP image with its similarity history and trajectory frames."""
    prompts: list[str]
    seed: int
    image: torch.Tensor  # (3, S, S)
    history: list[float]
    frames: list[torch.Tensor]
    seconds: float
    size: int = 0


class ClampWithGrad(torch.autograd.Function):
    """Clamp to [low, high]; the gradient passes wherever following it moves the value back into range."""

    @staticmethod
    def forward(ctx, x, low: float, high: float):
        ctx.low, ctx.high = low, high
        ctx.save_for_backward(x)
        return x.clamp(low, high)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        outside = x - x.clamp(ctx.low, ctx.high)  # > 0 above, < 0 below, 0 inside
        return grad * (grad * outside >= 0), None, None


def clamp_with_grad(x: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    return ClampWithGrad.apply(x, low, high)


def pool_to(image: torch.Tensor, size: int) -> torch.Tensor:
    """The average of adaptive average- and max-pooling to size x size."""
    return (F.adaptive_avg_pool2d(image, size) + F.adaptive_max_pool2d(image, size)) / 2


class Cutouts(torch.nn.Module):
    """The reference's cutouts: `latest` (whole-image pooled copies, augmented) or clipag's earlier ones."""

    def __init__(self, cut_size: int, cutn: int, cut_pow: float = 1.0, method: str = "latest",
                 augments: Sequence[str] = DEFAULT_AUGMENTS):
        super().__init__()
        self.cut_size, self.cutn, self.cut_pow, self.method = cut_size, cutn, cut_pow, method
        if method == "latest":
            self.augment = torch.nn.Sequential(*(AUGMENTS[name](cut_size) for name in augments))
        else:
            self.augment = K.AugmentationSequential(
                K.RandomHorizontalFlip(p=0.5),
                K.RandomSharpness(0.3, p=0.4),
                K.RandomAffine(degrees=15, translate=(0.1, 0.1), p=0.7, padding_mode="border"),
                K.RandomPerspective(0.2, p=0.4),
                K.ColorJitter(hue=0.01, saturation=0.01, p=0.7),
            )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.method == "latest":
            copies = pool_to(image, self.cut_size).expand(self.cutn, -1, -1, -1)  # (N, 3, c, c)
            return self._noisy(self.augment(copies))
        return self._noisy(self.augment(self._random_crops(image))).clamp(0, 1)

    def _random_crops(self, image: torch.Tensor) -> torch.Tensor:
        side = image.shape[-1]
        min_size = min(side, self.cut_size)
        crops = []
        for _ in range(self.cutn):
            size = int(torch.rand([]) ** self.cut_pow * (side - min_size) + min_size)
            x, y = (int(torch.randint(0, side - size + 1, ())) for _ in range(2))
            crops.append(pool_to(image[:, :, y:y + size, x:x + size], self.cut_size))
        return torch.cat(crops)  # (N, 3, c, c)

    def _noisy(self, batch: torch.Tensor) -> torch.Tensor:
        scale = 0.1 * torch.rand(self.cutn, 1, 1, 1, device=batch.device)  # U(0, 0.1) per cutout
        return batch + scale * torch.randn_like(batch)


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between unit vectors: (N, D), (P, D) -> (N, P)."""
    return ((a.unsqueeze(1) - b.unsqueeze(0)).norm(dim=-1) / 2).clamp(max=1).arcsin().pow(2) * 2


def vqgan_clip(guide: Guide, vqgan: VQGAN, prompts: Sequence[str], seed: int = 0,
               config: VQGANCLIPConfig = VQGANCLIPConfig(), progress: bool = True) -> VQGANCLIPResult:
    return VQGANCLIPRun(guide, vqgan, prompts, seed, config).run_to_end("vqgan", progress)


class VQGANCLIPRun(StepwiseRun):
    """One VQGAN+CLIP image, a step at a time (as `generate.GenerationRun`: `vqgan_clip` runs it to the end)."""

    def __init__(self, guide: Guide, vqgan: VQGAN, prompts: Sequence[str], seed: int = 0,
                 config: VQGANCLIPConfig = VQGANCLIPConfig()):
        config.validate()
        if not prompts and not config.image_prompts:
            raise ClipagError("give a text prompt or an image prompt (--image-prompt PATH)")
        self.started, self.prompts, self.seed, self.config = time.perf_counter(), list(prompts), seed, config
        torch.manual_seed(seed)
        self.guide, device = guide, guide.device
        self.vqgan = vqgan = vqgan.to(device)
        self.size = size = config.size or default_size(device)
        self.text, self.weights = weighted_text_features(guide, self.prompts) if prompts else (None, None)  # (P, D), (P,)
        self.latent = initial_latent(vqgan, config, size, device).requires_grad_(True)  # (1, D, h, w)
        codebook = vqgan.quantize.embedding.weight
        self.z_min = codebook.min(dim=0).values.view(1, -1, 1, 1)
        self.z_max = codebook.max(dim=0).values.view(1, -1, 1, 1)
        self.optimiser = torch.optim.Adam([self.latent], lr=config.lr)
        self.cutouts = Cutouts(guide.image_size[0], config.crops, config.cut_pow, config.cut_method, config.augments)
        plan_views(size, 0, config.crops, guide.image_size, guide.device, what="VQGAN+CLIP")
        self.targets = image_prompt_features(guide, self.cutouts, config.image_prompts,
                                             self.latent.shape[-1] * vqgan.downsampling)
        self.history: list[float] = []
        self.frames: list[torch.Tensor] = []

    def step(self) -> float:
        """One Adam step on the latent; returns its loss (spherical distance, lower is closer)."""
        image = clamp_with_grad((self.vqgan.decode(self.latent) + 1) / 2)  # (1, 3, S, S) in [0,1]
        embeddings = self.guide.encode_image(self.cutouts(image)).float()  # (N, D)
        loss = sum(weight * spherical_distance(embeddings, features).mean() for features, weight in self.targets)
        if self.text is not None:
            loss = loss + (spherical_distance(embeddings, self.text.float()).mean(dim=0) * self.weights).sum()
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        with torch.no_grad():
            self.latent.copy_(torch.maximum(torch.minimum(self.latent, self.z_max), self.z_min))
        self.history.append(loss.item())
        if self.config.save_every and self.steps_done % self.config.save_every == 0:
            self.frames.append(image.detach()[0].cpu())
        return self.history[-1]

    def image(self) -> torch.Tensor:
        with torch.no_grad():
            return decode(self.vqgan, self.latent)[0].cpu()

    def result(self) -> VQGANCLIPResult:
        return VQGANCLIPResult(self.prompts, self.seed, self.image(), list(self.history), list(self.frames),
                               time.perf_counter() - self.started, self.size)


def image_prompt_features(guide: Guide, cutouts: Cutouts, image_prompts: Sequence[str],
                          size: int) -> list[tuple[torch.Tensor, float]]:
    """Each image prompt's cutout embeddings (N, D) and weight, as the reference embeds `-ip` images."""
    from ..io import load_image
    targets = []
    for prompt in image_prompts:
        path, weight = parse_weighted_prompt(prompt)
        with torch.no_grad():
            features = guide.encode_image(cutouts(load_image(path, size).to(guide.device))).float()
        targets.append((features, weight))
    return targets


def decode(vqgan: VQGAN, latent: torch.Tensor) -> torch.Tensor:
    return ((vqgan.decode(latent) + 1) / 2).clamp(0, 1)


def initial_latent(vqgan: VQGAN, config: VQGANCLIPConfig, size: int, device) -> torch.Tensor:
    side = size // vqgan.downsampling
    if side < 1:
        raise ClipagError(f"size {size} is below the VQGAN's downsampling factor {vqgan.downsampling}")
    if config.init:
        from ..io import load_image
        image = load_image(config.init, side * vqgan.downsampling).to(device)
        with torch.no_grad():
            return vqgan.encode(image * 2 - 1)
    codes = torch.randint(vqgan.config.n_embed, (side * side,), device=device)
    return vqgan.quantize.embedding(codes).view(1, side, side, -1).permute(0, 3, 1, 2).clone()  # (1, D, h, w)


def vqgan_to_folder(guide: Guide, vqgan: VQGAN, prompts: Sequence[str], seeds: Sequence[int], out_dir: str | Path,
                    config: VQGANCLIPConfig = VQGANCLIPConfig(), model_reference: str = "",
                    vqgan_files: tuple[str, str] = ("", ""), progress: bool = True,
                    overwrite: bool = False) -> list[dict]:
    """One image per seed for the prompt set: PNG, settings JSON, and a GIF when frames are saved.

    An image already in `out_dir` with the same settings is kept; other settings need `overwrite`.
    """
    config.validate()
    model = model_reference or guide.name

    def make(seed: int, stem: Path) -> dict:
        return write_vqgan(vqgan_clip(guide, vqgan, prompts, seed, config, progress), stem, config, model, vqgan_files)

    identity = {"model": model, "prompts": list(prompts), "vqgan_checkpoint": vqgan_files[1],
                "settings": dataclasses.asdict(config)}
    name = " ".join(prompts) or " ".join(Path(parse_weighted_prompt(p)[0]).stem for p in config.image_prompts)
    return results_per_seed(out_dir, name, seeds, identity, make, overwrite)


def write_vqgan(result: VQGANCLIPResult, stem: str | Path, config: VQGANCLIPConfig, model: str,
                vqgan_files: tuple[str, str] = ("", ""), **extra) -> dict:
    """A VQGAN+CLIP image as STEM.png and STEM.json (and a GIF of its frames), as `clipag vqgan` writes it."""
    stem = Path(stem)
    record = {"prompt": "; ".join(result.prompts), "prompts": list(result.prompts),
              "model": model, "seed": result.seed, "method": "vqgan",
              "vqgan_config": vqgan_files[0], "vqgan_checkpoint": vqgan_files[1],
              "seconds": round(result.seconds, 3), "settings": dataclasses.asdict(config),
              "loss_history": [round(value, 5) for value in result.history], **extra, **environment()}
    companions = []
    if result.frames:
        companions.append(lambda: save_gif(result.frames + [result.image], stem.with_suffix(".gif")))
    return save_result(result.image, record, stem, companions)
