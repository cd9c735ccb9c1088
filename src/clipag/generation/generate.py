"""Generator-free text-to-image: gradient ascent on CLIP similarity, from the best GMM sample.

Follows the CLIPAG supplementary material and the official notebook (royg27/CLIPAG `CLIPAG_T2I.ipynb`;
docs/fidelity.md compares every setting): start from the best of many samples of a per-class Gaussian
mixture over 16x16 images, then K steps of AdamW on the pixels, each step scoring a batch of
DiffAugment views and crops against the prompt, with gradient-norm clipping and dynamic thresholding
keeping the pixels in range; the image kept is the one with the best view loss. With a PAG model the
gradients draw the object; with vanilla CLIP they draw adversarial noise, which is the paper's point.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .stepping import StepwiseRun
from .views import GuidanceViews, ViewConfig
from ..configs import ADAMW_WEIGHT_DECAY, INIT_CHOICES, KEEP_CHOICES, OPTIMIZER_CHOICES, GenerateConfig
from ..errors import ClipagError
from .gmm import ClassGMM
from ..models.registry import default_gmm, missing_gmm_message
from ..models.guide import Guide
from ..models.memory import plan_views
from .prompts import full_prompt
from ..io import (DISPLAY_SIDE, earlier_result, environment, image_grid, load_image, save_png, save_result,
                 save_trajectory, unique_stems)


@dataclass
class GenerationResult:
    """One generated image with its similarity, history, trajectory frames and how it started."""
    prompt: str  # the full prompt, prefix included
    seed: int
    image: torch.Tensor  # (3, S, S) in [0,1]
    similarity: float  # cosine similarity of the final clean image to the prompt
    initial_similarity: float
    history: list[float]  # mean similarity of the views and crops at each step
    kept_step: int  # the step whose image is returned (1-based; config.keep)
    frames: list[torch.Tensor]  # trajectory frames, init first and final last, when asked
    init: dict  # how the start was chosen
    seconds: float


def generate(guide: Guide, prompt: str, seed: int = 0, config: GenerateConfig = GenerateConfig(),
             gmm: Optional[ClassGMM] = None, progress: bool = True) -> GenerationResult:
    """Make one image for `prompt` with `guide`'s gradients. The library's entry point.

    With init "gmm" and neither `gmm` nor config.gmm_path, the model's own GMM is used, as the CLI does
    (`with_default_gmm`, keyed by `guide.name`)."""
    run = GenerationRun(guide, prompt, seed, config, gmm)
    return run.run_to_end(run.text[:30], progress, shown="sim")


class GenerationRun(StepwiseRun):
    """One generation, a step at a time: `generate` runs it to the end; `clipag serve` steps several
    guides side by side and may stop one early, keeping the best image so far.

    The augmentations draw from torch's global generator, seeded here: a caller that interleaves runs
    swaps each run's generator state around its steps (`clipag.serve`), so each equals `generate`."""

    def __init__(self, guide: Guide, prompt: str, seed: int = 0, config: GenerateConfig = GenerateConfig(),
                 gmm: Optional[ClassGMM] = None):
        config.validate()
        if gmm is None:
            config = with_default_gmm(config, guide.name)
        self.guide, self.config, self.seed = guide, config, seed
        self.text = full_prompt(prompt, config.prefix)
        self.started = time.perf_counter()
        torch.manual_seed(seed)  # kornia's augmentations draw from the global generator
        generator = torch.Generator().manual_seed(seed)
        self.text_features = guide.encode_text([self.text])[0]  # (D,)
        size = config.size or guide.image_size[0]
        self.chunk = views_per_pass(guide, config, size)
        self.start, self.init_info = initial_image(guide, self.text_features, config, gmm, size, generator)  # (1, 3, S, S)
        self.pixels = self.start.to(guide.device).clone().requires_grad_(True)
        self.optimizer = make_optimizer(self.pixels, config)
        self.make_views = GuidanceViews(guide.image_size, config.views)
        self.frame_steps = _frame_steps(config.steps, config.trajectory_frames)
        self.frames = [self.start[0].cpu()] if config.trajectory_frames else []
        self.history: list[float] = []
        self.best_loss, self.kept, self.kept_step = float("inf"), self.pixels.detach().clone(), 0

    def step(self) -> float:
        """One ascent step; returns the mean similarity of its views and crops."""
        cosine = guidance_step(self.guide, self.pixels, self.text_features, self.optimizer, self.make_views,
                               self.config, self.chunk)  # (V + C,)
        self.history.append(float(cosine.mean()))
        loss = view_loss(cosine, self.config)
        if self.config.keep == "last" or loss < self.best_loss:  # as the notebook: the image after the best step
            self.best_loss, self.kept, self.kept_step = loss, self.pixels.detach().clone(), self.steps_done
        if self.steps_done in self.frame_steps:
            self.frames.append(self.pixels.detach()[0].to("cpu", copy=True))  # a copy: on the CPU .cpu() aliases
        return self.history[-1]

    def image(self) -> torch.Tensor:
        """The picture now, (3, S, S) in [0,1]."""
        return self.pixels.detach()[0].cpu()

    def result(self) -> GenerationResult:
        """The kept image (the best so far when stopped early) with its numbers."""
        frames = list(self.frames)
        if frames and self.done:
            frames[-1] = self.kept[0].cpu()  # the strip ends with the picture saved
        elif frames:
            frames.append(self.kept[0].cpu())
        return GenerationResult(
            prompt=self.text, seed=self.seed, image=self.kept[0].cpu(),
            similarity=float(self.guide.score(self.kept, self.text_features)[0]),
            initial_similarity=float(self.guide.score(self.start.to(self.guide.device), self.text_features)[0]),
            history=list(self.history), kept_step=self.kept_step, frames=frames, init=self.init_info,
            seconds=time.perf_counter() - self.started)


def view_loss(cosine: torch.Tensor, config: GenerateConfig) -> float:
    """The notebook's best-image criterion: 1 - mean cosine of the whole-image views (crops if none)."""
    part = cosine[:config.views.views] if config.views.views else cosine
    return float(1 - part.mean())


def guidance_step(guide: Guide, pixels: torch.Tensor, text_features: torch.Tensor,
                  optimizer: torch.optim.Optimizer, make_views: GuidanceViews, config: GenerateConfig,
                  chunk: Optional[int] = None) -> torch.Tensor:
    """One ascent step on the pixels; returns the (views + crops,) cosines of the step, detached.

    With `chunk` below the batch, the views are scored `chunk` at a time and their gradients summed:
    the same views and the same gradient, in less memory.
    """
    n_views, n_crops = config.views.views, config.views.crops
    if chunk is None or chunk >= n_views + n_crops:
        batch = make_views(pixels)  # (V + C, 3, h, w)
        cosine = guide.encode_image(batch) @ text_features  # (V + C,)
        loss = 0.0
        if n_views:
            loss = loss + config.view_weight * (1 - cosine[:n_views]).mean()
        if n_crops:
            loss = loss + config.crop_weight * (1 - cosine[n_views:]).mean()
        (pixels.grad,) = torch.autograd.grad(loss, [pixels])  # gradients reach the pixels only
    else:
        cosines, pixels.grad = [], torch.zeros_like(pixels)
        for first, batch in make_views.chunks(pixels, chunk):  # (<= chunk, 3, h, w)
            part = guide.encode_image(batch) @ text_features
            pixels.grad += torch.autograd.grad(_view_loss(part, first, config), [pixels])[0]
            cosines.append(part.detach())
        cosine = torch.cat(cosines)
    torch.nn.utils.clip_grad_norm_([pixels], config.grad_clip)
    optimizer.step()
    with torch.no_grad():
        pixels.copy_(dynamic_threshold(pixels, config.threshold_quantile))
    return cosine.detach()


def _view_loss(cosine: torch.Tensor, first: int, config: GenerateConfig) -> torch.Tensor:
    """The share of the step's loss of views/crops first..first+len(cosine) (the summands of the means)."""
    n_views, n_crops = config.views.views, config.views.crops
    index = torch.arange(first, first + len(cosine), device=cosine.device)
    is_view = index < n_views
    weight = torch.where(is_view, config.view_weight / max(n_views, 1), config.crop_weight / max(n_crops, 1))
    return (weight * (1 - cosine)).sum()


def views_per_pass(guide: Guide, config: GenerateConfig, size: int) -> int:
    """How many views and crops one pass scores: all of them unless memory (or config.chunk) says fewer."""
    total = config.views.views + config.views.crops
    plan = plan_views(size, config.views.views, config.views.crops, guide.image_size, guide.device,
                      what="generation")
    return min(total, plan.chunk, config.chunk or total)


class NormalisedGradientDescent(torch.optim.Optimizer):
    """Steps of fixed length along each image's gradient: PGD's L2 step without the projection.

    AdamW divides every pixel's gradient by its own running scale, so pixels with tiny, noisy
    gradients move as far as the rest; this keeps the gradient's direction, which is what
    Perceptually Aligned Gradients are about (Santurkar et al. 2019 synthesise images this way).
    lr is a root-mean-square change per pixel value (an L2 step of lr * sqrt(C*H*W)), so one lr serves
    every image size and compares with AdamW's. Written here: torch has no per-sample normalised step.
    """

    def __init__(self, params, lr: float):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.flatten(1)  # (B, C*H*W)
                length = group["lr"] * grad.shape[1] ** 0.5
                p.sub_((grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)).view_as(p), alpha=length)


def make_optimizer(pixels: torch.Tensor, config: GenerateConfig) -> torch.optim.Optimizer:
    if config.optimizer == "l2":
        return NormalisedGradientDescent([pixels], lr=config.lr)
    decay = ADAMW_WEIGHT_DECAY if config.weight_decay is None else config.weight_decay
    return torch.optim.AdamW([pixels], lr=config.lr, weight_decay=decay)


def dynamic_threshold(images: torch.Tensor, quantile: float = 0.95) -> torch.Tensor:
    """Imagen's dynamic thresholding on [0,1] images: rescale by the per-image |x| quantile in [-1,1]."""
    centred = images * 2 - 1  # (B, 3, H, W) in about [-1, 1]
    s = torch.quantile(centred.abs().flatten(1).float(), quantile, dim=1).clamp_min(1.0)  # (B,)
    s = s.view(-1, 1, 1, 1)
    return (torch.maximum(torch.minimum(centred, s), -s) / s + 1) / 2


# ---------------------------------------------------------------- initialisation

def initial_image(guide: Guide, text_features: torch.Tensor, config: GenerateConfig,
                  gmm: Optional[ClassGMM], size: int, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """The starting image (1, 3, S, S) and a description of how it was chosen."""
    if config.init == "gmm":
        if gmm is None and config.gmm_path:
            gmm = ClassGMM.load(config.gmm_path)
        if gmm is None:
            warnings.warn("no GMM file given (--gmm); starting from noise instead. "
                          "Fit one with `clipag gmm fit DATASET --out FILE`.", stacklevel=3)
            return noise_image(size, generator), {"init": "noise", "reason": "no GMM given"}
        image, index, scores = best_of_gmm(guide, text_features, gmm, config.samples_per_class, size, generator)
        class_name = gmm.classes[index // config.samples_per_class]
        return image, {"init": "gmm", "class": class_name, "candidates": len(scores),
                       "similarity": float(scores[index])}
    if config.init == "noise":
        return noise_image(size, generator), {"init": "noise"}
    return load_image(config.init, size), {"init": "image", "path": str(config.init)}


def with_default_gmm(config: GenerateConfig, model_reference: str) -> GenerateConfig:
    """`config` with the model's own GMM when init is "gmm" and no GMM file is named: the one rule for the
    library and the CLI. A named model whose GMM is not made yet (the Tiny-ImageNet GMM) is an error that
    says how to make it: a real model never starts from noise unasked."""
    if config.init != "gmm" or config.gmm_path:
        return config
    if missing_gmm_message(model_reference):
        raise ClipagError(missing_gmm_message(model_reference))
    path = default_gmm(model_reference)
    return dataclasses.replace(config, gmm_path=str(path)) if path else config


def noise_image(size: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=generator)


def best_of_gmm(guide: Guide, text_features: torch.Tensor, gmm: ClassGMM, per_class: int, size: int,
                generator: torch.Generator) -> tuple[torch.Tensor, int, torch.Tensor]:
    """Draw `per_class` samples from every class, keep the one most similar to the text, upsampled.

    Candidates are scored at the guide's input size, which is all the guide sees (at the default size,
    the output's, this is the same arithmetic), in batches: memory does not grow with --size.
    """
    samples, _ = gmm.sample(per_class, generator)  # (C*M, 3, s, s)
    scored = guide.image_size[0] if guide.image_size[0] == guide.image_size[1] else size
    scores = torch.cat([guide.score(_upsample(chunk, scored), text_features).cpu()
                        for chunk in samples.split(64)])  # (C*M,)
    index = int(scores.argmax())
    return _upsample(samples[index:index + 1], size), index, scores


def _upsample(samples: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(samples, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def _frame_steps(steps: int, frames: int) -> set[int]:
    if frames <= 0:
        return set()
    count = min(frames, steps)
    return {round(steps * (i + 1) / count) for i in range(count)}


# ---------------------------------------------------------------- runs with outputs

def generate_to_folder(guide: Guide, prompts: Sequence[str], seeds: Sequence[int], out_dir: str | Path,
                       config: GenerateConfig = GenerateConfig(), model_reference: str = "",
                       progress: bool = True, overwrite: bool = False) -> list[dict]:
    """Generate every prompt x seed, writing a PNG and a settings JSON for each (and a grid).

    With --init gmm and no GMM file, the model's default GMM (`registry.default_gmm`) is used; a named
    model that has none (the Tiny-ImageNet GMM not yet made) is an error that says how to make it.
    File names are unique within the call (`io.unique_stems`). A result already in `out_dir` with the
    same settings is kept and not made again; one with other settings is an error unless `overwrite`.
    Returns one record per image with its paths and numbers.
    """
    config.validate()
    prompts, seeds = list(dict.fromkeys(prompts)), list(dict.fromkeys(seeds))
    texts = [full_prompt(prompt, config.prefix) for prompt in prompts]
    out_dir = Path(out_dir)
    config = with_default_gmm(config, model_reference or guide.name)
    if config.init not in INIT_CHOICES:
        load_image(config.init, 16)  # fail now, not after the first image
    model = model_reference or guide.name
    jobs = [(prompt, text, seed, out_dir / f"{stem}-seed{seed}")
            for prompt, text, stem in zip(prompts, texts, unique_stems(texts)) for seed in seeds]
    earlier = {stem: earlier_result(stem, {"model": model, "prompt": text, "seed": seed,
                                           "settings": dataclasses.asdict(config)}, overwrite)
               for _, text, seed, stem in jobs}  # every conflict is reported before any compute
    gmm = None
    if config.init == "gmm" and config.gmm_path and not all(earlier.values()):
        gmm = ClassGMM.load(config.gmm_path)
    records, images = [], []
    for prompt, _, seed, stem in tqdm(jobs, desc="images", unit="img", disable=not progress or len(jobs) == 1):
        if earlier[stem]:
            records.append({**earlier[stem], "skipped": True})
            images.append(load_image(stem.with_suffix(".png"), config.size or guide.image_size[0])[0])
            continue
        result = generate(guide, prompt, seed, config, gmm, progress)
        records.append(write_generation(result, stem, config, guide, model))
        images.append(result.image)
    if len(images) > 1:
        save_png(image_grid(images, columns=len(seeds), min_side=DISPLAY_SIDE), out_dir / "grid.png")
    return records


def write_generation(result: GenerationResult, stem: Path, config: GenerateConfig, guide: Guide, model: str,
                     **extra) -> dict:
    """A generated image as STEM.png and STEM.json (and its trajectory), as `clipag generate` writes it."""
    record = {
        "model": model,
        "prompt": result.prompt,
        "seed": result.seed,
        "similarity": result.similarity,
        "initial_similarity": result.initial_similarity,
        "kept_step": result.kept_step,
        "init": result.init,
        "seconds": round(result.seconds, 3),
        "steps_per_second": round(config.steps / result.seconds, 3),
        "device": str(guide.device),
        "precision": guide.precision,
        "settings": dataclasses.asdict(config),
        "similarity_history": [round(s, 5) for s in result.history],
        **extra,
        **environment(),
    }
    companions = [lambda: save_trajectory(result.frames, stem)] if result.frames else []
    return save_result(result.image, record, stem, companions)
