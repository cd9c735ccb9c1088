"""`clipag explain IMAGE... --target TEXT`: Grad-CAM overlays (+ raw maps), clean and attacked, and the
paper's Figure 5 layout (input | model A clean | A attacked | model B clean | B attacked)."""
from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from ..files import atomic_path, save_json
from .args import add_device_args, add_quiet
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
    p.add_argument("--map-size", choices=("image", "model"), default="image",
                   help="write maps and overlays at each picture's own size (default; the model sees its centre "
                        "crop, the rest is dimmed) or at the model's input size")
    p.add_argument("--out", default="outputs/explain", help="output folder (default outputs/explain)")
    add_quiet(p)
    add_device_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..explain import explain_picture
    from ..models.guide import Guide
    from ..io import environment, read_picture, save_png, titled_grid, unique_stems
    models = list(dict.fromkeys(args.model or [DEFAULT_MODEL]))
    images = list(dict.fromkeys(args.images))
    out = Path(args.out)
    pictures = {path: read_picture(path) for path in images}  # every file checked before any model loads
    guides = {ref: Guide.from_pretrained(ref, device=args.device, precision=args.precision) for ref in models}
    model_stems = dict(zip(models, unique_stems(models)))
    tiles, records = [], []
    for path, stem in tqdm(list(zip(images, image_stems(images))), desc="explain", unit="image", disable=args.quiet,
                           leave=False):
        picture = pictures[path]
        rows = explain_picture(guides, picture, args.target, attack=args.attack == "negation", map_size=args.map_size)
        tiles += [rows[0].result.image] + [row.tile for row in rows]  # the first row explains the clean crop
        for row in rows:
            name = out / f"{stem}-{model_stems[row.model]}-{'attacked' if row.attacked else 'clean'}"
            records.append(write_explanation(row, name, path, args.map_size))
    columns = ["input"] + [f"{m} {a}" for m in models for a in (["clean", "attacked"] if args.attack == "negation"
                                                                 else ["clean"])]
    save_png(titled_grid(tiles, columns=len(tiles) // len(images), titles=columns), out / "figure.png")
    save_json({"records": records, "columns": columns, "settings": {k: v for k, v in vars(args).items()
               if k != "run"}, **environment()}, out / "explain.json")
    print(f"{out / 'figure.png'}  one row per image")
    return 0


def write_explanation(row, name: Path, image: str, map_size: str) -> dict:
    """NAME.npy (the map) and NAME.png (the overlay); returns their record for explain.json."""
    import numpy as np

    from ..explain import centre_crop_box
    from ..io import save_png
    with atomic_path(name.with_suffix(".npy")) as tmp, open(tmp, "wb") as f:
        np.save(f, row.heatmap)
    save_png(row.overlay, name.with_suffix(".png"))
    tqdm.write(f"{name.with_suffix('.png')}  sim(target) {row.result.similarity:.3f}  "
               f"sim(not target) {row.result.negation_similarity:.3f}")
    return {"image": image, "model": row.model, "attacked": row.attacked, "target": row.target,
            "similarity": row.result.similarity, "negation_similarity": row.result.negation_similarity,
            "map_size": list(row.heatmap.shape),
            "crop_box": list(centre_crop_box(*row.heatmap.shape)) if map_size == "image" else None,
            "overlay": str(name.with_suffix(".png")), "heatmap": str(name.with_suffix(".npy"))}


def image_stems(paths: list[str]) -> list[str]:
    """File stems of the images' names; two images of one name (lab/red/0.png, lab/blue/0.png) get the
    hash of their full paths added, so neither overwrites the other."""
    from ..io import short_hash, slugify
    names = [slugify(Path(p).stem) for p in paths]
    return [f"{n}-{short_hash(str(Path(p).resolve()))}" if names.count(n) > 1 else n for n, p in zip(names, paths)]
