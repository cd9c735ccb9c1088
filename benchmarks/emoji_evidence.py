"""The evidence of PAG on the embedded emoji models, in one script (the numbers in docs/models/).

    python benchmarks/emoji_evidence.py --data data/emoji --out docs/evidence
    # or in parts, side by side on two cores:
    python benchmarks/emoji_evidence.py --parts generation --splits heldout --threads 1 --name heldout &
    python benchmarks/emoji_evidence.py --parts generation --splits train --threads 1 --name train &
    python benchmarks/emoji_evidence.py --parts robustness --name robustness

1. Robustness: zero-shot accuracy of clip-emoji, clipag-emoji and emoji-judge on the held-out emoji
   (each image among all held-out names), clean and under L2 attacks: the project's PGD and
   torchattacks' APGD-CE (clipag.measure.robustness).
2. Generation: each guide generates every prompt of a seeded sample of held-out (and training) names,
   from the GMM start, from noise, or ("other") from the real picture of another sampled name, which
   the ascent must turn into its own name; the independent judges (emoji-judge by default: another
   size, width and seed, never a guide; --judge names more, each judging the same pictures) score the
   images: R-Precision (top-1 of the generating name among the sample's names) and the mean cosine
   similarity to the generating name. "init" rows score the starting images alone, before any gradient
   step.
Prints Markdown tables, writes results-NAME.json and, per split and init, a grid: one row per prompt,
clip-emoji's seeds then clipag-emoji's (for the "other" start, after the name's real picture and the start).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import math
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

from clipag import GenerateConfig, Guide, ViewConfig, generate
from clipag.measure.aesthetic import pairwise_preference
from clipag.cli.args import positive_int
from clipag.generation.generate import GenerationRun
from clipag.generation.gmm import ClassGMM
from clipag.io import environment, image_grid, load_image, save_json, save_png
from clipag.measure.metrics import paired_similarity, r_precision
from clipag.models.registry import default_gmm
from clipag.measure.robustness import RobustnessConfig, evaluate_robustness, load_labelled_images

GUIDES = ("clip-emoji", "clipag-emoji")
PRESETS = {
    "notebook": {},
    "previous": {"grad_clip": 1.0, "weight_decay": 0.0, "samples_per_class": 8, "keep": "last"},
}
JUDGE = "emoji-judge"  # the shipped judge; --judge names others (e.g. local-dir:runs/v2/emoji-judge-vit-ft)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = Path(args.out)
    results = {"settings": vars(args), **environment()}
    if "robustness" in args.parts:
        results["robustness"] = robustness(args)
        print(robustness_table(results["robustness"], args))
    if "generation" in args.parts:
        results["generation"] = generation(args, out)
        print(generation_table(results["generation"]))
    if "real" in args.parts:
        results["real"] = real_pictures(args)
        print(generation_table(results["real"]))
    save_json(results, out / f"results-{args.name}.json")
    print(f"\nwrote {out / f'results-{args.name}.json'}" + (" and grids" if "generation" in args.parts else ""))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/emoji", help="folder written by `clipag data emoji`")
    p.add_argument("--out", default="outputs/emoji-evidence")
    p.add_argument("--names", type=int, default=24, help="names sampled per split for generation")
    p.add_argument("--sample-seed", type=int, default=0,
                   help="seed of the name sample (choose settings on another sample than the one you report)")
    p.add_argument("--splits", nargs="+", default=["heldout", "train"], choices=("heldout", "train"))
    p.add_argument("--inits", nargs="+", default=["gmm", "noise"], choices=("gmm", "noise", "other"),
                   help="other: start each name from the real Twemoji picture of the next sampled name")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--optimizer", default="adamw", choices=("adamw", "l2"), help="how the pixels climb (GenerateConfig)")
    p.add_argument("--lr", type=float, default=None, help="AdamW learning rate, or the L2 step (default: GenerateConfig's)")
    p.add_argument("--preset", default="notebook", choices=tuple(PRESETS),
                   help="notebook: GenerateConfig's defaults (the official notebook's, since issue 13); "
                        "previous: clipag's defaults before issue 13 (kornia views, unaugmented crops, "
                        "clip 1.0, no weight decay, 8 candidates per class, the last image)")
    p.add_argument("--with-last", action="store_true",
                   help="also judge each run's last-step picture (what --keep last returns) as 'GUIDE last', "
                        "paired against the kept best step of the same run")
    p.add_argument("--size", type=positive_int, default=None,
                   help="side of the generated pictures in pixels (default: the guide's input size, 32 px)")
    p.add_argument("--views", type=int, default=16)
    p.add_argument("--crops", type=int, default=16)
    p.add_argument("--eps", type=float, nargs="+", default=[0.43, 1.0], help="L2 radii of the robustness attack")
    p.add_argument("--attack-steps", type=int, default=10)
    p.add_argument("--attacks", nargs="+", default=["pgd", "apgd"], choices=("pgd", "apgd"))
    p.add_argument("--parts", nargs="+", default=["robustness", "generation"], choices=("robustness", "generation", "real"),
                   help="real: the judge on the real Twemoji picture of each sampled name, the ceiling of generation")
    p.add_argument("--name", default="all", help="results-NAME.json")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--judge", nargs="+", default=[JUDGE],
                   help="the independent judges (never a guide), each a registered name or local-dir:PATH; "
                        "every picture is judged by each, and the tables have one block per judge")
    p.add_argument("--guides", nargs="+", default=list(GUIDES),
                   help="guide models to compare, vanilla first (default: clip-emoji clipag-emoji)")
    args = p.parse_args()
    for judge in set(args.judge) & set(args.guides):
        p.error(f"--judge {judge} is also a guide; the judge must be independent: name another model")
    return args


# ---------------------------------------------------------------- 1. robustness on held-out emoji

def robustness(args) -> dict:
    images, labels, classes = load_labelled_images(Path(args.data) / "heldout.csv", 64, class_column="name")
    config = RobustnessConfig(eps=args.eps, norm="l2", attack_steps=args.attack_steps, attacks=args.attacks)
    rows = {reference: evaluate_robustness(Guide.from_pretrained(reference, device="cpu"), images, labels,
                                           classes, config) for reference in (*args.guides, *args.judge)}
    return {"images": len(images), "classes": len(classes), "accuracy": rows}


def robustness_table(result: dict, args) -> str:
    columns = list(next(iter(result["accuracy"].values())))
    lines = [f"\nZero-shot top-1 on {result['images']} held-out images among {result['classes']} held-out names "
             f"(L2 attacks, {args.attack_steps} steps):\n", "| model | " + " | ".join(columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for model, row in result["accuracy"].items():
        lines.append(f"| {model} | " + " | ".join(f"{100 * row[c]:.1f}%" for c in columns) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- 2. generation judged by another model

def sample_names(data: Path, split: str, count: int, seed: int = 0) -> list[str]:
    """A seeded sample of base names (no skin-tone variants) of one split."""
    file = data / ("heldout.csv" if split == "heldout" else "train.csv")
    with open(file, newline="") as f:
        names = sorted({row["name"] for row in csv.DictReader(f) if ":" not in row["name"]})
    return sorted(random.Random(seed).sample(names, min(count, len(names))))


def picture_of(data: Path, split: str, name: str) -> str:
    """The Twemoji picture of a name (its file path), for the "other" start."""
    return twemoji_pictures(data, split)[name]


@functools.lru_cache(maxsize=None)
def twemoji_pictures(data: Path, split: str) -> dict[str, str]:
    """name -> the first Twemoji picture of that name in the split's CSV (read once)."""
    pictures = {}
    with open(data / ("heldout.csv" if split == "heldout" else "train.csv"), newline="") as f:
        for row in csv.DictReader(f):
            if row["style"] == "twitter":
                pictures.setdefault(row["name"], str(data / row["filepath"]))
    return pictures


def start_of(config: GenerateConfig, init: str, data: Path, split: str, prompts: list[str], index: int):
    """The config for prompt `index`: with init "other", it starts from the next name's real picture."""
    if init != "other":
        return config
    return dataclasses.replace(config, init=picture_of(data, split, prompts[(index + 1) % len(prompts)]))


def real_pictures(args) -> dict:
    """Each judge's R-Precision on the real picture of each sampled name: what a perfect guide would reach."""
    rows = []
    for judge_name, judge in load_judges(args.judge).items():
        for split in args.splits:
            prompts = sample_names(Path(args.data), split, args.names, args.sample_seed)
            pictures = [load_image(picture_of(Path(args.data), split, name), judge.image_size[0])[0] for name in prompts]
            rows.append(judge_row(judge, judge_name, judge.encode_text(prompts), torch.arange(len(prompts)), split,
                                  "-", "real Twemoji pictures", pictures))
    return {"rows": rows, "seconds_per_image": {}, "judges": args.judge}


def load_judges(references: list[str]) -> dict[str, Guide]:
    return {reference: Guide.from_pretrained(reference, device="cpu") for reference in references}


def generation(args, out: Path) -> dict:
    judges = load_judges(args.judge)
    guides = {name: Guide.from_pretrained(name, device="cpu") for name in args.guides}
    gmm = ClassGMM.load(default_gmm("clipag-emoji"))
    rows, paired, timing = [], [], {}
    for split in args.splits:
        prompts = sample_names(Path(args.data), split, args.names, args.sample_seed)
        prompt_features = {j: judge.encode_text(prompts) for j, judge in judges.items()}  # each (P, D)
        for init in args.inits:
            config = GenerateConfig(steps=args.steps, init="gmm" if init == "gmm" else "noise",
                                    trajectory_frames=1, optimizer=args.optimizer, size=args.size,
                                    views=ViewConfig(views=args.views, crops=args.crops,
                                                     augment="kornia" if args.preset == "previous" else "diffaugment"),
                                    **PRESETS[args.preset], **({"lr": args.lr} if args.lr else {}))
            finals = {}
            for name, guide in guides.items():
                started = time.perf_counter()
                jobs = [(i, p, s) for i, p in enumerate(prompts) for s in args.seeds]
                runs = [run_one(guide, p, s, start_of(config, init, Path(args.data), split, prompts, i),
                                gmm if init == "gmm" else None, args.with_last)
                        for i, p, s in tqdm(jobs, desc=f"{split} {init} {name}", unit="picture", disable=args.quiet)]
                results = [result for result, _ in runs]
                timing[name] = (time.perf_counter() - started) / len(results)
                targets = torch.tensor([i for i in range(len(prompts)) for _ in args.seeds])
                finals[name] = [r.image for r in results]
                for j, judge in judges.items():
                    rows.append(judge_row(judge, j, prompt_features[j], targets, split, init, name, finals[name]))
                    if name != args.guides[0]:
                        paired.append(paired_row(rows, j, split, init, name, args.guides[0]))
                    if args.with_last:
                        rows.append(judge_row(judge, j, prompt_features[j], targets, split, init, f"{name} last",
                                              [last for _, last in runs]))
                        paired.append(paired_row(rows, j, split, init, f"{name} last", name))
                    if name == args.guides[0] or init == "gmm":  # the start depends on the guide (best of the GMM)
                        rows.append(judge_row(judge, j, prompt_features[j], targets, split, init, f"{name} init",
                                              [r.frames[0] for r in results]))
            size = finals[args.guides[0]][0].shape[-1]
            leading = ([[load_image(picture_of(Path(args.data), split, p), size)[0],
                         load_image(start_of(config, init, Path(args.data), split, prompts, i).init, size)[0]]
                        for i, p in enumerate(prompts)] if init == "other" else None)
            save_comparison_grid(finals, len(args.seeds), out / f"{split}-{init}.png", leading)
    return {"rows": rows, "paired": paired, "seconds_per_image": timing, "judges": args.judge}


def run_one(guide: Guide, prompt: str, seed: int, config: GenerateConfig, gmm, with_last: bool):
    """generate(), and with `with_last` also the picture after the last step (None without)."""
    if not with_last:
        return generate(guide, prompt, seed, config, gmm, progress=False), None
    run = GenerationRun(guide, prompt, seed, config, gmm)
    return run.run_to_end(run.text[:30], progress=False), run.image()


def judge_row(judge: Guide, judge_name: str, prompt_features: torch.Tensor, targets: torch.Tensor, split: str,
              init: str, guide: str, images: list[torch.Tensor]) -> dict:
    with torch.no_grad():
        features = judge.encode_image(torch.stack(images))  # (N, D)
    recognised = (features @ prompt_features.T).argmax(dim=1) == targets  # (N,)
    similarities = paired_similarity(features, prompt_features[targets])  # (N,)
    return {"judge": judge_name, "split": split, "init": init, "guide": guide, "images": len(images),
            "r_precision": r_precision(features, prompt_features, targets),
            "recognised": recognised.tolist(),
            "similarity": similarities.mean().item(),
            "similarities": similarities.tolist()}


def paired_row(rows: list[dict], judge: str, split: str, init: str, guide: str, baseline: str) -> dict:
    """How often JUDGE scores GUIDE's picture above BASELINE's for the same prompt and seed."""
    runs = {r["guide"]: r for r in rows if r["judge"] == judge and r["split"] == split and r["init"] == init}
    preference = pairwise_preference(runs[guide]["similarities"], runs[baseline]["similarities"])
    pairs = list(zip(runs[guide]["recognised"], runs[baseline]["recognised"]))
    only_guide = sum(a and not b for a, b in pairs)
    only_baseline = sum(b and not a for a, b in pairs)
    return {"judge": judge, "split": split, "init": init, "guide": guide, "baseline": baseline,
            "pairs": preference.prompts,
            "wins": preference.wins, "low": preference.low, "high": preference.high,
            "recognised_only_guide": only_guide, "recognised_only_baseline": only_baseline,
            "sign_test_p": sign_test(only_guide, only_baseline)}


def sign_test(a: int, b: int) -> float:
    """Exact two-sided sign test (McNemar's exact test) on the pairs where only one picture was recognised."""
    n = a + b
    tail = sum(math.comb(n, i) for i in range(min(a, b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def save_comparison_grid(finals: dict[str, list[torch.Tensor]], seeds: int, path: Path,
                         leading: list[list[torch.Tensor]] | None = None) -> None:
    """One row per prompt: its `leading` tiles if given, then each guide's seeds in the guides' order."""
    runs = list(finals.values())
    tiles = []
    for p in range(len(runs[0]) // seeds):
        tiles += leading[p] if leading else []
        for images in runs:
            tiles += images[p * seeds:(p + 1) * seeds]
    columns = len(runs) * seeds + (len(leading[0]) if leading else 0)
    save_png(image_grid([t.cpu() for t in tiles], columns=columns), path)


def generation_table(result: dict) -> str:
    lines = []
    for judge in result["judges"]:
        lines += judge_tables([r for r in result["rows"] if r["judge"] == judge],
                              [r for r in result.get("paired", []) if r["judge"] == judge], judge)
    if result["seconds_per_image"]:
        lines.append("\nseconds per image: " + ", ".join(f"{k} {v:.1f}" for k, v in result["seconds_per_image"].items()))
    return "\n".join(lines)


def judge_tables(rows: list[dict], paired: list[dict], judge: str) -> list[str]:
    lines = [f"\nGenerated images judged by {judge} (R-Precision: top-1 among the split's sampled names):\n",
             "| split | init | guide | images | R-Precision | judge similarity |", "|---|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['split']} | {r['init']} | {r['guide']} | {r['images']} | "
                     f"{100 * r['r_precision']:.1f}% | {r['similarity']:.3f} |")
    if paired:
        lines += [f"\nPaired by prompt and seed: how often {judge} scores the guide's picture above the baseline's "
                  "(95% Wilson interval), and the pairs where it recognised only one of the two pictures "
                  "(exact sign test):\n",
                  "| split | init | guide | baseline | pairs | guide higher | only guide's | only baseline's | p |",
                  "|---|---|---|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['split']} | {r['init']} | {r['guide']} | {r['baseline']} | {r['pairs']} | "
                  f"{100 * r['wins']:.0f}% [{100 * r['low']:.0f}, {100 * r['high']:.0f}] | "
                  f"{r['recognised_only_guide']} | {r['recognised_only_baseline']} | {r['sign_test_p']:.2f} |"
                  for r in paired]
    return lines


if __name__ == "__main__":
    main()
