"""`clipag robustness DATA --model M...`: zero-shot accuracy clean and under attack, as a table."""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from ..configs import ATTACKS, NORMS, RobustnessConfig
from ..files import atomic_path, save_json
from .args import add_device_args, add_quiet, add_renamed, non_negative_float, positive_int, seed


def add_parser(subparsers) -> None:
    d = RobustnessConfig()
    p = subparsers.add_parser(
        "robustness", help="zero-shot accuracy of models, clean and under PGD / APGD",
        description="Classify labelled images zero-shot (class names through templates) with each model, "
                    "clean and under attack; print a table and write results.json and results.csv. Under "
                    "torchrun the images are sharded across ranks.")
    p.add_argument("data", help="a folder of class subfolders, or a CSV with a filepath and a class column")
    p.add_argument("--model", action="append", required=True, help="model reference; repeat to compare models")
    p.add_argument("--class-column", help="for a CSV: the column of class names (e.g. name)")
    p.add_argument("--eps", type=non_negative_float, nargs="+", default=d.eps,
                   help=f"attack radii: l2 in [0,1] pixel units, linf in /255 units (default {' '.join(f'{e:g}' for e in d.eps)})")
    p.add_argument("--norm", choices=NORMS, default=d.norm, help=f"threat model (default {d.norm})")
    p.add_argument("--attack-steps", type=positive_int, default=d.attack_steps, help=f"attack steps (default {d.attack_steps})")
    add_renamed(p, "--steps", "--attack-steps", type=positive_int)
    p.add_argument("--attack", nargs="+", choices=ATTACKS, default=list(d.attacks),
                   help="pgd (clipag's) and/or apgd (APGD-CE, Croce & Hein; matches torchattacks') (default pgd)")
    p.add_argument("--templates", default=d.templates,
                   help="name ('{}'), simple or openai (OpenCLIP's ImageNet templates), or a file (default name)")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"images per batch (default {d.batch_size})")
    p.add_argument("--seed", type=seed, default=d.seed, help=f"seed of the attacks' random starts, 0 to 2**32-1 (default {d.seed})")
    p.add_argument("--out", default="outputs/robustness", help="folder for results.json and results.csv")
    add_quiet(p)
    add_device_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..distributed import close_world, init_world
    from ..io import environment
    config = RobustnessConfig(eps=[e for e in args.eps if e > 0], norm=args.norm, attack_steps=args.attack_steps,
                              attacks=args.attack, templates=args.templates, batch_size=args.batch_size,
                              seed=args.seed)
    config.validate()
    world = init_world(args.device)  # under torchrun: each rank attacks a shard of the images
    try:
        rows, labels, classes = _accuracies(args, config, world)
    finally:
        close_world()
    if not world.is_main:
        return 0
    print(f"zero-shot top-1 on {len(labels)} images, {len(classes)} classes ({config.attack_steps} attack steps)")
    print(_table(rows))
    out = Path(args.out)
    save_json({"data": args.data, "images": len(labels), "classes": len(classes), "settings": vars(config),
               "accuracy": rows, "ranks": world.size, **environment()}, out / "results.json")
    _write_csv(rows, out / "results.csv")
    print(f"wrote {out / 'results.json'} and {out / 'results.csv'}")
    return 0


def _accuracies(args: argparse.Namespace, config: RobustnessConfig, world):
    from ..models.guide import Guide
    from ..measure.robustness import evaluate_robustness, load_labelled_images
    rows, by_size = {}, {}  # images decoded once per input size, not once per model
    for reference in args.model:
        guide = Guide.from_pretrained(reference, device=str(world.device), precision=args.precision)
        size = guide.image_size[0]
        if size not in by_size:
            by_size[size] = load_labelled_images(args.data, size, args.class_column)
        images, labels, classes = by_size[size]
        rows[reference] = evaluate_robustness(guide, images, labels, classes, config, world, progress=not args.quiet)
    return rows, labels, classes


def _table(rows: dict[str, dict[str, float]]) -> str:
    columns = list(next(iter(rows.values())))
    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    lines += [f"| {model} | " + " | ".join(f"{100 * row[c]:.1f}%" for c in columns) + " |"
              for model, row in rows.items()]
    return "\n".join(lines)


def _write_csv(rows: dict[str, dict[str, float]], path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "setting", "accuracy"])
        for model, row in rows.items():
            writer.writerows([model, setting, f"{value:.6f}"] for setting, value in row.items())
