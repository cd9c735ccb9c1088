"""VQGAN+CLIP with any guide: optimise a VQGAN latent so that its decoded image matches the prompts.

    vqgan = load_vqgan("vqgan_imagenet_f16_16384.yaml", "vqgan_imagenet_f16_16384.ckpt")
    result = vqgan_clip(guide, vqgan, ["a lighthouse at dusk"], seed=0, config=VQGANCLIPConfig(steps=500))

As nerdyrodent/VQGAN-CLIP does it: the latent starts from random codebook entries (or an init image's
encoding); each step decodes it through straight-through quantisation, takes `cutouts` crops of random
size (the average of adaptive average- and max-pooling to the guide's input size), augments them with
kornia (flip, affine, perspective, colour jitter, noise), and descends the weighted squared spherical
distance between crop and prompt embeddings (a negative weight repels). Adam lr 0.1, 500 steps; the
latent is clamped to the codebook's range.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .errors import ClipagError, check_finite
from .guide import Guide
from .memory import plan_views
from .io import environment, results_per_seed, save_gif, save_result
from .prompts import weighted_text_features
from .vqgan_model import VQGAN


@dataclass
class VQGANCLIPConfig:
    steps: int = 500
    lr: float = 0.1
    size: int = 256  # output side; rounded down to a multiple of the VQGAN's downsampling
    cutouts: int = 32
    cut_pow: float = 1.0
    init_image: Optional[str] = None
    save_every: int = 0  # keep a frame every N steps (0: none)

    def validate(self) -> None:
        check_finite(self)
        if self.steps <= 0 or self.cutouts <= 0 or self.lr <= 0:
            raise ClipagError("steps, cutouts and lr must be positive")


@dataclass
class VQGANCLIPResult:
    prompts: list[str]
    seed: int
    image: torch.Tensor  # (3, S, S)
    history: list[float]
    frames: list[torch.Tensor]
    seconds: float


class Cutouts(torch.nn.Module):
    """Random-size crops pooled to the guide's input size, then augmented (the reference's MakeCutouts)."""

    def __init__(self, cut_size: int, cutn: int, cut_pow: float = 1.0):
        super().__init__()
        self.cut_size, self.cutn, self.cut_pow = cut_size, cutn, cut_pow
        self.augment = K.AugmentationSequential(
            K.RandomHorizontalFlip(p=0.5),
            K.RandomSharpness(0.3, p=0.4),
            K.RandomAffine(degrees=15, translate=(0.1, 0.1), p=0.7, padding_mode="border"),
            K.RandomPerspective(0.2, p=0.4),
            K.ColorJitter(hue=0.01, saturation=0.01, p=0.7),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        side = image.shape[-1]
        min_size = min(side, self.cut_size)
        crops = []
        for _ in range(self.cutn):
            size = int(torch.rand([]) ** self.cut_pow * (side - min_size) + min_size)
            x, y = (int(torch.randint(0, side - size + 1, ())) for _ in range(2))
            crop = image[:, :, y:y + size, x:x + size]
            pooled = (F.adaptive_avg_pool2d(crop, self.cut_size) + F.adaptive_max_pool2d(crop, self.cut_size)) / 2
            crops.append(pooled)
        batch = self.augment(torch.cat(crops))  # (cutn, 3, c, c)
        noise = 0.1 * torch.rand(self.cutn, 1, 1, 1, device=batch.device) * torch.randn_like(batch)
        return (batch + noise).clamp(0, 1)


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between unit vectors: (N, D), (P, D) -> (N, P)."""
    return ((a.unsqueeze(1) - b.unsqueeze(0)).norm(dim=-1) / 2).clamp(max=1).arcsin().pow(2) * 2


def vqgan_clip(guide: Guide, vqgan: VQGAN, prompts: Sequence[str], seed: int = 0,
               config: VQGANCLIPConfig = VQGANCLIPConfig(), progress: bool = True) -> VQGANCLIPResult:
    config.validate()
    started = time.perf_counter()
    torch.manual_seed(seed)
    device = guide.device
    vqgan = vqgan.to(device)
    text, weights = weighted_text_features(guide, list(prompts))  # (P, D), (P,)
    latent = initial_latent(vqgan, config, device).requires_grad_(True)  # (1, D, h, w)
    codebook = vqgan.quantize.embedding.weight
    z_min, z_max = codebook.min(dim=0).values.view(1, -1, 1, 1), codebook.max(dim=0).values.view(1, -1, 1, 1)
    optimiser = torch.optim.Adam([latent], lr=config.lr)
    cutouts = Cutouts(guide.image_size[0], config.cutouts, config.cut_pow)
    plan_views(config.size, 0, config.cutouts, guide.image_size, guide.device, what="VQGAN+CLIP")
    history, frames = [], []
    for step in tqdm(range(config.steps), desc="vqgan", unit="step", disable=not progress, leave=False):
        image = decode(vqgan, latent)  # (1, 3, S, S) in [0,1]
        embeddings = guide.encode_image(cutouts(image)).float()  # (N, D)
        loss = (spherical_distance(embeddings, text.float()).mean(dim=0) * weights).sum()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            latent.copy_(torch.maximum(torch.minimum(latent, z_max), z_min))
        history.append(loss.item())
        if config.save_every and (step + 1) % config.save_every == 0:
            frames.append(image.detach()[0].cpu())
    with torch.no_grad():
        final = decode(vqgan, latent)[0].cpu()
    return VQGANCLIPResult(list(prompts), seed, final, history, frames, time.perf_counter() - started)


def decode(vqgan: VQGAN, latent: torch.Tensor) -> torch.Tensor:
    return ((vqgan.decode(latent) + 1) / 2).clamp(0, 1)


def initial_latent(vqgan: VQGAN, config: VQGANCLIPConfig, device) -> torch.Tensor:
    side = config.size // vqgan.downsampling
    if side < 1:
        raise ClipagError(f"size {config.size} is below the VQGAN's downsampling factor {vqgan.downsampling}")
    if config.init_image:
        from .io import load_image
        image = load_image(config.init_image, side * vqgan.downsampling).to(device)
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
        result = vqgan_clip(guide, vqgan, prompts, seed, config, progress)
        record = {"prompt": "; ".join(prompts), "prompts": list(prompts),
                  "model": model, "seed": seed, "method": "vqgan",
                  "vqgan_config": vqgan_files[0], "vqgan_checkpoint": vqgan_files[1],
                  "seconds": round(result.seconds, 3), "settings": dataclasses.asdict(config),
                  "loss_history": [round(value, 5) for value in result.history], **environment()}
        companions = []
        if result.frames:
            companions.append(lambda: save_gif(result.frames + [result.image], stem.with_suffix(".gif")))
        return save_result(result.image, record, stem, companions)

    identity = {"model": model, "prompts": list(prompts), "vqgan_checkpoint": vqgan_files[1],
                "settings": dataclasses.asdict(config)}
    return results_per_seed(out_dir, " ".join(prompts), seeds, identity, make, overwrite)
