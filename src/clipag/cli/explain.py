"""`clipag explain IMAGE... --target TEXT`: Grad-CAM overlays (+ raw maps), clean and attacked, and the
paper's Figure 5 layout (input | model A clean | A attacked | model B clean | B attacked)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..explain import explain, overlay, zero_shot_target
from ..guide import Guide
from ..io import atomic_path, environment, image_grid, load_image, save_json, save_png, slugify
from .args import add_device_args
from .generate import DEFAULT_MODEL


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "explain", help="Grad-CAM heatmaps of where a model looks for a text, clean and under attack",
        description="Write a heatmap overlay PNG and the raw map (.npy) per image and model. With --attack "
                    "negation, also after the supplementary's attack towards \"not TARGET\"; with two models, "
                    "a figure of input | A clean | A attacked | B clean | B attacked per image.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--target", help='the text to explain, e.g. "a dog" (default: the image\'s top ImageNet '
                   "class under the first model, zero-shot, as the paper chooses targets)")
    p.add_argument("--model", action="append", help=f"model; give two to compare (default {DEFAULT_MODEL})")
    p.add_argument("--attack", choices=("none", "negation"), default="none", help="also explain attacked images")
    p.add_argument("--out", default="outputs/explain", help="output folder (default outputs/explain)")
    add_device_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    models = args.model or [DEFAULT_MODEL]
    out = Path(args.out)
    rows, records = [], []
    guides = {ref: Guide.from_pretrained(ref, device=args.device, precision=args.precision) for ref in models}
    for path in args.images:
        image = load_image(path, max(g.image_size[0] for g in guides.values()))[0]  # (3, S, S)
        row = [image]
        target = args.target or zero_shot_target(next(iter(guides.values())), image)
        for reference, guide in guides.items():
            for attacked in ([False, True] if args.attack == "negation" else [False]):
                result = explain(guide, image, target, attack=attacked)
                stem = out / f"{slugify(Path(path).stem)}-{slugify(reference)}-{'attacked' if attacked else 'clean'}"
                with atomic_path(stem.with_suffix(".npy")) as tmp, open(tmp, "wb") as f:
                    np.save(f, result.heatmap)
                picture = overlay(result.image, result.heatmap)
                save_png(picture, stem.with_suffix(".png"))
                row.append(picture)
                records.append({"image": path, "model": reference, "attacked": attacked, "target": target,
                                "similarity": result.similarity, "negation_similarity": result.negation_similarity,
                                "overlay": str(stem.with_suffix(".png")), "heatmap": str(stem.with_suffix(".npy"))})
                print(f"{stem.with_suffix('.png')}  sim(target) {result.similarity:.3f}  "
                      f"sim(not target) {result.negation_similarity:.3f}")
        rows += row
    save_png(image_grid(rows, columns=len(rows) // len(args.images)), out / "figure.png")
    save_json({"records": records, "columns": ["input"] + [f"{m} {a}" for m in models for a in
              (["clean", "attacked"] if args.attack == "negation" else ["clean"])], **environment()}, out / "explain.json")
    print(f"{out / 'figure.png'}  one row per image")
    return 0
