"""Speed of the guided tools at their defaults, and of the stroke rasteriser. Prints a table.

    python benchmarks/guided_tools.py [--steps 3] [--models clipag-emoji ViT-B-32:random]

Per method and guide: seconds per optimisation step at the method's default settings (CLIPDraw:
256 strokes, 4 views, canvas = the guide's input size; VQGAN+CLIP: a randomly initialised
vqgan_imagenet_f16_16384-sized VQGAN, 256 px, 32 cutouts; CLIPStyler: 512 px, 64 crops of 128 px, style
network), timed over --steps steps after one warm-up step. Rasteriser: ms per forward render, and per
forward + backward, of 256 random strokes at 224 px.
"""
from __future__ import annotations

import argparse
import time

import torch

from clipag import Guide
from clipag.tools.draw import DrawConfig, draw
from clipag.tools.raster import Strokes, render
from clipag.tools.style import StyleConfig, default_vgg_weights, style
from clipag.tools.vqgan import VQGANCLIPConfig, vqgan_clip
from clipag.tools.vqgan_model import VQGAN, VQGANConfig


def per_step(run, steps: int) -> float:
    run(1)  # warm-up
    started = time.perf_counter()
    run(steps)
    return (time.perf_counter() - started) / steps


def rasteriser_ms(repeats: int = 3) -> tuple[float, float]:
    strokes = Strokes.random(256, 224, generator=torch.Generator().manual_seed(0))
    strokes.points.requires_grad_(True)
    started = time.perf_counter()
    for _ in range(repeats):
        with torch.no_grad():
            render(strokes, 224)
    forward = (time.perf_counter() - started) / repeats * 1000
    started = time.perf_counter()
    for _ in range(repeats):
        render(strokes, 224).sum().backward()
    return forward, (time.perf_counter() - started) / repeats * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--models", nargs="+", default=["clipag-emoji", "ViT-B-32:random"])
    args = p.parse_args()
    torch.manual_seed(0)
    forward, backward = rasteriser_ms()
    print(f"rasteriser, 256 strokes at 224 px: {forward:.0f} ms forward, {backward:.0f} ms forward + backward\n")
    vqgan = VQGAN(VQGANConfig()).eval().requires_grad_(False)  # vqgan_imagenet_f16_16384's shape, random weights
    content = torch.rand(1, 3, 512, 512)
    content_loss = "vgg" if default_vgg_weights().is_file() else "pixels"  # the default needs torchvision's file
    print("| method | guide | s/step |\n|---|---|---:|")
    for reference in args.models:
        guide = Guide.from_pretrained(reference, device="cpu")
        runs = {
            "draw (CLIPDraw)": lambda n: draw(guide, ["a red apple"], 0, DrawConfig(steps=n), progress=False),
            "vqgan (VQGAN+CLIP)": lambda n: vqgan_clip(guide, vqgan, ["a red apple"], 0,
                                                       VQGANCLIPConfig(steps=n), progress=False),
            f"style (CLIPStyler, {content_loss} content loss)": lambda n: style(
                guide, content, "a watercolor painting", 0, StyleConfig(steps=n, content_loss=content_loss),
                progress=False),
        }
        for method, run in runs.items():
            print(f"| {method} | {reference} | {per_step(run, args.steps):.2f} |", flush=True)


if __name__ == "__main__":
    main()
