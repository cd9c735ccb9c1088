"""Do CLIP's and CLIPAG's heatmaps fall on the object? Held-out emoji at known places, with distractors.

    python benchmarks/emoji_localisation.py --data data/emoji --count 100

Each scene is a 64-px white canvas split into four 32-px quadrants: one held-out emoji (the target, named
by its held-out name) in a random quadrant and two other held-out emoji in two others, so the target's
box is known. For clip-emoji and clipag-emoji, Grad-CAM of the target name (clipag.explain), clean and
after the negation attack, is scored by the pointing game (the map's peak inside the box) and the share
of its energy inside the box. A uniform map scores 25% on both (one quadrant of four).
"""
from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import torch

from clipag import Guide
from clipag.explain import energy_in_box, explain, overlay, pointing_game
from clipag.io import environment, image_grid, read_rgb, save_json, save_png, square_tensor

MODELS = ("clip-emoji", "clipag-emoji")
QUADRANTS = [(0, 0), (32, 0), (0, 32), (32, 32)]  # (x, y) of each 32-px quadrant


def heldout_pictures(data: Path) -> list[tuple[str, str]]:
    """(name, image path) of one twitter-style picture per held-out base name."""
    seen = {}
    with open(data / "heldout.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["style"] == "twitter" and ":" not in row["name"]:
                seen.setdefault(row["name"], str(data / row["filepath"]))
    return sorted(seen.items())


def scenes(pictures: list[tuple[str, str]], count: int, seed: int = 0):
    """Yield (canvas (3, 64, 64), target name, box (x0, y0, x1, y1))."""
    rng = random.Random(seed)
    for _ in range(count):
        (name, path), *distractors = rng.sample(pictures, 3)
        places = rng.sample(QUADRANTS, 3)
        canvas = torch.ones(3, 64, 64)
        for (x, y), (_, file) in zip(places, [(name, path), *distractors]):
            canvas[:, y:y + 32, x:x + 32] = square_tensor(read_rgb(file), 32)
        x, y = places[0]
        yield canvas, name, (x, y, x + 32, y + 32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/emoji")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--out", default="docs/evidence")
    args = p.parse_args()
    pictures = heldout_pictures(Path(args.data))
    guides = {name: Guide.from_pretrained(name, device="cpu") for name in MODELS}
    scores = {(m, a): {"pointing": 0, "energy": 0.0} for m in MODELS for a in ("clean", "attacked")}
    figure = []
    for index, (canvas, name, box) in enumerate(scenes(pictures, args.count)):
        row = [canvas]
        for model, guide in guides.items():
            for attacked in (False, True):
                result = explain(guide, canvas, name, attack=attacked)
                key = scores[(model, "attacked" if attacked else "clean")]
                key["pointing"] += pointing_game(result.heatmap, box)
                key["energy"] += energy_in_box(result.heatmap, box)
                if index < 8:
                    row.append(overlay(result.image, result.heatmap))
        if index < 8:
            figure += row
    save_png(image_grid(figure, columns=5), Path(args.out) / "localisation.png")
    rows = {f"{m} {a}": {k: v / args.count for k, v in s.items()} for (m, a), s in scores.items()}
    save_json({"scenes": args.count, "results": rows, **environment()}, Path(args.out) / "results-localisation.json")
    print(f"\n{args.count} scenes (held-out target + 2 held-out distractors, 64 px); uniform map: 25% / 0.250\n")
    print("| model | image | pointing game | energy in box |\n|---|---|---:|---:|")
    for key, row in rows.items():
        model, state = key.rsplit(" ", 1)
        print(f"| {model} | {state} | {100 * row['pointing']:.1f}% | {row['energy']:.3f} |")
    print(f"\nwrote {Path(args.out) / 'localisation.png'} (input | clip clean | clip attacked | clipag clean | clipag attacked)")


if __name__ == "__main__":
    main()
