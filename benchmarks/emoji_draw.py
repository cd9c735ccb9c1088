"""CLIPDraw with the emoji models, the guide fed raw [0,1] pixels (the notebooks) or normalised ones.

    python benchmarks/emoji_draw.py --names 12 --iterations 200 --threads 1 --out docs/evidence

Each guide (clip-emoji, clipag-emoji) draws every name of a seeded sample of held-out names, once with
`normalized_input=False` (the default, as kvfrans/clipdraw and royg27/CLIPAG feed CLIP) and once with
`normalized_input=True`, same seeds and strokes. The independent emoji-judge (never a guide) scores each
drawing: R-Precision (top-1 of the name among the sample's names) and its cosine with the name. Pairs
(same guide, name and seed) say how often the raw-pixel drawing scores higher. Prints Markdown tables,
writes results-draw-NAME.json and a grid (rows: names; columns: each guide raw, normalised).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from clipag import Guide
from clipag.measure.aesthetic import pairwise_preference
from clipag.tools.draw import DrawConfig, draw
from clipag.io import environment, save_json
from emoji_evidence import GUIDES, JUDGE, judge_row, sample_names, save_comparison_grid

INPUTS = {"raw": False, "normalised": True}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="data/emoji")
    p.add_argument("--out", default="outputs/emoji-draw")
    p.add_argument("--names", type=int, default=12)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--split", default="heldout", choices=("heldout", "train"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--strokes", type=int, default=256)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--name", default="heldout")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    judge = Guide.from_pretrained(JUDGE, device="cpu")
    names = sample_names(Path(args.data), args.split, args.names, args.sample_seed)
    name_features = judge.encode_text(names)  # (P, D)
    targets = torch.tensor([i for i in range(len(names)) for _ in args.seeds])
    rows, paired, finals, seconds = [], [], {}, {}
    for guide_name in GUIDES:
        guide = Guide.from_pretrained(guide_name, device="cpu")
        for label, normalised in INPUTS.items():
            config = DrawConfig(steps=args.iterations, strokes=args.strokes, normalized_input=normalised)
            started = time.perf_counter()
            images = [draw(guide, [n], s, config, progress=False).image for n in names for s in args.seeds]
            seconds[f"{guide_name} {label}"] = (time.perf_counter() - started) / len(images)
            finals[f"{guide_name} {label}"] = images
            rows.append(judge_row(judge, name_features, targets, args.split, label, guide_name, images))
        raw, norm = rows[-2], rows[-1]
        preference = pairwise_preference(raw["similarities"], norm["similarities"])
        paired.append({"guide": guide_name, "pairs": preference.prompts, "raw_higher": preference.wins,
                       "interval": [preference.low, preference.high]})
    save_comparison_grid(finals, len(args.seeds), out / f"draw-{args.name}.png")
    save_json({"settings": vars(args), "rows": rows, "paired": paired, "seconds_per_drawing": seconds,
               "judge": JUDGE, "names": names, **environment()}, out / f"results-draw-{args.name}.json")
    print(f"\nCLIPDraw on {len(names)} {args.split} names x {len(args.seeds)} seeds, {args.iterations} iterations, "
          f"judged by {JUDGE} (chance R-Precision {100 / len(names):.1f}%):\n")
    print("| guide | pixels | drawings | R-Precision | judge similarity |\n|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['guide']} | {r['init']} | {r['images']} | {100 * r['r_precision']:.1f}% | {r['similarity']:.3f} |")
    print("\n| guide | pairs | raw-pixel drawing scored higher |\n|---|---:|---:|")
    for r in paired:
        print(f"| {r['guide']} | {r['pairs']} | {100 * r['raw_higher']:.0f}% "
              f"[{100 * r['interval'][0]:.0f}, {100 * r['interval'][1]:.0f}] |")


if __name__ == "__main__":
    main()
