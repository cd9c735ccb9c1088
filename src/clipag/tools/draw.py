"""CLIPDraw (Frans et al., 2021) with any guide: strokes optimised so the drawing matches the prompts.

    result = draw(guide, ["a red apple", "blurry:-0.5"], seed=0, config=DrawConfig(steps=200))
    result.image, result.strokes                           # (3, S, S) in [0,1]; Strokes, for write_svg

Defaults follow the official notebook: 256 open cubic Bezier strokes of 1-3 segments from random walks,
widths in [1, 50], RGBA colours on white; Adam with lr 1.0 (points), 0.1 (widths), 0.01 (colours), the
points' lr dropped to 0.4 at 50% and 0.1 at 75% of the iterations; 1000 iterations; 4 augmented views
per step, RandomPerspective(0.5) then RandomResizedCrop(0.7-0.9). `augment=False` scores the drawing
itself (the paper's second setting). As in the notebooks (`use_normalized_clip = False`), the guide sees
the [0,1] pixels without its mean/std normalisation; `normalized_input=True` normalises them. Widths
and colours are clamped after each step, control points are not (`clamp_points=True` keeps them within
[-0.1, 1.1] of the canvas). The loss is
the weighted sum over prompts of -cos(view, prompt), averaged over views (the notebook sums over its 4
views; Adam's steps do not depend on that scale); a negative weight pushes away from its prompt.
docs/fidelity.md compares every setting. Rendering: clipag.tools.raster.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import kornia.augmentation as K
import torch

from ..generation.stepping import StepwiseRun
from ..configs import DrawConfig
from ..models.guide import Guide
from ..models.memory import plan_views
from ..io import environment, results_per_seed, save_result, save_trajectory
from ..generation.prompts import weighted_text_features
from .raster import Strokes, render, write_svg


@dataclass
class DrawResult:
    """One CLIPDraw drawing: its raster image, its strokes (for SVG), similarity and history."""
    prompts: list[str]
    seed: int
    image: torch.Tensor  # (3, S, S)
    strokes: Strokes
    similarity: float  # weighted mean cosine of the final drawing with the prompts
    history: list[float]
    frames: list[torch.Tensor]
    seconds: float


class DrawViews(torch.nn.Module):
    """CLIPDraw's views: perspective with white fill, then a resized crop to the guide's input size."""

    def __init__(self, out_size: tuple[int, int], views: int):
        super().__init__()
        self.views = views
        self.perspective = K.RandomPerspective(distortion_scale=0.5, p=1.0)
        self.crop = K.RandomResizedCrop(tuple(out_size), scale=(0.7, 0.9))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        batch = image.expand(self.views, -1, -1, -1)  # (V, 3, S, S)
        warped = 1 - self.perspective(1 - batch)  # kornia fills with 0: warp the inverse to fill white
        return self.crop(warped)  # (V, 3, h, w)


def draw(guide: Guide, prompts: Sequence[str], seed: int = 0, config: DrawConfig = DrawConfig(),
         progress: bool = True) -> DrawResult:
    """Optimise strokes for the (weighted, possibly negative) prompts with `guide`'s gradients."""
    return DrawRun(guide, prompts, seed, config).run_to_end("draw", progress, unit="it", shown="score")


class DrawRun(StepwiseRun):
    """One drawing, a step at a time (as `generate.GenerationRun`: `draw` runs it to the end)."""

    def __init__(self, guide: Guide, prompts: Sequence[str], seed: int = 0, config: DrawConfig = DrawConfig()):
        config.validate()
        self.started, self.prompts, self.seed, self.config = time.perf_counter(), list(prompts), seed, config
        torch.manual_seed(seed)  # kornia draws from the global generator
        self.guide = guide if config.normalized_input else guide.without_input_normalisation()
        self.size = size = config.size or guide.image_size[0]
        plan_views(size, config.views, 0, guide.image_size, guide.device, what="drawing")
        self.text, self.weights = weighted_text_features(self.guide, self.prompts)  # (P, D), (P,)
        strokes = Strokes.random(config.strokes, size, config.max_segments,
                                 generator=torch.Generator().manual_seed(seed))
        self.strokes = strokes = strokes.map(lambda t: t.to(guide.device))
        for tensor in (strokes.points, strokes.widths, strokes.colours):
            tensor.requires_grad_(True)
        self.optimisers = [torch.optim.Adam([strokes.points], lr=config.lr_points),
                           torch.optim.Adam([strokes.widths], lr=config.lr_widths),
                           torch.optim.Adam([strokes.colours], lr=config.lr_colours)]
        self.views = DrawViews(guide.image_size, config.views)
        self.frame_steps = {round(config.steps * (k + 1) / config.trajectory_frames)
                            for k in range(config.trajectory_frames)}
        self.frames = [render(strokes, size).detach().cpu()] if config.trajectory_frames else []
        self.history: list[float] = []

    def step(self) -> float:
        """One optimiser step on the strokes; returns the weighted similarity of its views."""
        config, size = self.config, self.size
        _drop_point_lr(self.optimisers[0], self.steps_done, config)
        image = render(self.strokes, size).unsqueeze(0)  # (1, 3, S, S)
        batch = self.views(image) if config.augment else image
        cosine = self.guide.encode_image(batch) @ self.text.T  # (V, P)
        loss = -(cosine.mean(dim=0) * self.weights).sum()
        for optimiser in self.optimisers:
            optimiser.zero_grad(set_to_none=True)
        loss.backward()
        for optimiser in self.optimisers:
            optimiser.step()
        self.strokes.clamp_(size, config.max_width, points=config.clamp_points)
        self.history.append(float(-loss.detach()))
        if self.steps_done in self.frame_steps:
            self.frames.append(render(self.strokes, size).detach().cpu())
        return self.history[-1]

    def image(self) -> torch.Tensor:
        with torch.no_grad():
            return render(self.strokes, self.size).cpu()

    def result(self) -> DrawResult:
        with torch.no_grad():
            final = render(self.strokes, self.size)
            cosine = (self.guide.encode_image(final.unsqueeze(0)) @ self.text.T)[0]
            similarity = float(cosine @ self.weights / self.weights.abs().sum())
        detached = self.strokes.map(lambda t: t.detach().cpu())
        frames = self.frames + ([final.cpu()] if self.frames and not self.done else [])
        return DrawResult(self.prompts, self.seed, final.cpu(), detached, similarity, list(self.history), frames,
                          time.perf_counter() - self.started)


def _drop_point_lr(optimiser: torch.optim.Optimizer, step: int, config: DrawConfig) -> None:
    for fraction, lr in ((0.5, 0.4), (0.75, 0.1)):
        if step == int(config.steps * fraction):
            for group in optimiser.param_groups:
                group["lr"] = lr * config.lr_points


def draw_to_folder(guide: Guide, prompts: Sequence[str], seeds: Sequence[int], out_dir: str | Path,
                   config: DrawConfig = DrawConfig(), model_reference: str = "", progress: bool = True,
                   overwrite: bool = False) -> list[dict]:
    """One drawing per seed for the prompt set: PNG, SVG, settings JSON (and a trajectory if asked).

    A drawing already in `out_dir` with the same settings is kept; other settings need `overwrite`.
    """
    config.validate()
    model = model_reference or guide.name

    def make(seed: int, stem: Path) -> dict:
        return write_drawing(draw(guide, prompts, seed, config, progress), stem, config, model)

    identity = {"model": model, "prompts": list(prompts), "settings": dataclasses.asdict(config)}
    return results_per_seed(out_dir, " ".join(prompts), seeds, identity, make, overwrite)


def write_drawing(result: DrawResult, stem: str | Path, config: DrawConfig, model: str, **extra) -> dict:
    """A drawing as STEM.png, STEM.svg and STEM.json (and its trajectory), as `clipag draw` writes it."""
    stem, prompts = Path(stem), result.prompts
    record = {"svg": str(stem.with_suffix(".svg")), "prompt": prompts[0] if len(prompts) == 1 else "; ".join(prompts),
              "prompts": list(prompts), "model": model, "seed": result.seed, "method": "draw",
              "similarity": result.similarity, "seconds": round(result.seconds, 3),
              "settings": dataclasses.asdict(config), "score_history": [round(s, 5) for s in result.history],
              **extra, **environment()}
    companions = [lambda: write_svg(result.strokes, result.image.shape[-1], stem.with_suffix(".svg"))]
    if result.frames:
        companions.append(lambda: save_trajectory(result.frames, stem))
    return save_result(result.image, record, stem, companions)
