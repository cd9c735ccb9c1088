"""`clipag pag DATA --model M... --judge J`: the targeted measure of PAG (clipag.measure.pag), as a table and a
strip."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..configs import PagConfig
from ..files import atomic_path, save_json
from .args import add_device_args, positive_float, positive_int, seed


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "pag", help="measure PAG: can a targeted L2 attack on a model make a picture show another name?",
        description="From one real picture of each of a seeded sample of names, an L2 PGD on each model "
                    "raises its similarity to another name of the sample; an independent judge says whether "
                    "the result shows that name (target hit), still shows its own (source kept), or neither. "
                    "Writes results.json, report.md and strip.png.")
    p.add_argument("data", help="a CSV with a filepath and a name column (e.g. data/emoji/heldout.csv)")
    p.add_argument("--model", action="append", required=True, help="model to attack; repeat to compare")
    p.add_argument("--judge", default="emoji-judge", help="the independent judge, never a guide (default emoji-judge)")
    p.add_argument("--class-column", default="name", help="the CSV's column of names (default name)")
    p.add_argument("--names", type=positive_int, default=48, help="names in the sample, one picture each (default 48)")
    p.add_argument("--eps", type=positive_float, nargs="+", default=[1.0, 2.0, 4.0, 8.0],
                   help="L2 radii in [0,1] pixel units (default 1 2 4 8)")
    p.add_argument("--attack-steps", type=positive_int, default=50, help="PGD steps per radius (default 50)")
    p.add_argument("--template", default="{}", help="prompt of a name, e.g. 'an emoji of {}' (default '{}')")
    p.add_argument("--batch-size", type=positive_int, default=64, help="pictures per batch (default 64)")
    p.add_argument("--exclude", help="names never drawn: a results.json of an earlier `clipag pag` (choose settings "
                                     "on that sample, report on this one) or a text file, one name per line")
    p.add_argument("--seed", type=seed, default=0, help="seed of the sample of names and their targets (default 0)")
    p.add_argument("--out", default="outputs/pag", help="output folder (default outputs/pag)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..models.guide import Guide
    from ..io import environment
    from ..measure.pag import pag_table, picture_strip, read_names, sample_pictures, targeted_pag
    config = PagConfig(eps=list(args.eps), steps=args.attack_steps, template=args.template,
                       batch_size=args.batch_size, seed=args.seed)
    config.validate()
    exclude = read_names(args.exclude) if args.exclude else []
    pictures = sample_pictures(args.data, args.names, args.seed, name_column=args.class_column, exclude=exclude)
    judge = Guide.from_pretrained(args.judge, device=args.device, precision=args.precision)
    results = {}
    for reference in args.model:
        if reference == args.judge:
            print(f"skipping {reference}: it is the judge")
            continue
        guide = Guide.from_pretrained(reference, device=args.device, precision=args.precision)
        results[reference] = targeted_pag(guide, judge, pictures, config, progress=not args.quiet)
    out = Path(args.out)
    table = pag_table(results, len(pictures.names))
    chance = next(iter(results.values())).chance if results else 0.0
    clean = {m: r.judge_clean_accuracy for m, r in results.items()}
    summary = (f"{len(pictures.names)} pictures of {len(pictures.names)} names from {args.data} (seed {args.seed}); "
               f"judge {args.judge}, top-1 on the clean pictures {100 * next(iter(clean.values()), 0):.1f}%, "
               f"chance {100 * chance:.1f}%; L2 PGD, {args.attack_steps} steps, no random start")
    print(summary + "\n" + table)
    save_json({"data": args.data, "judge": args.judge, "excluded": len(exclude), "settings": vars(config), "pictures": vars(pictures),
               "chance": chance, "judge_clean_accuracy": clean,
               "rates": {m: r.rates for m, r in results.items()},
               "gradient_alignment": {m: r.alignment for m, r in results.items()},
               "judged": {m: r.judged for m, r in results.items()}, **environment()}, out / "results.json")
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(f"# Targeted PAG measure\n\n{summary}\n\n{table}\n\n![strip](strip.png)\n")
    if results:
        with atomic_path(out / "strip.png") as tmp:
            picture_strip(results, pictures).save(tmp, format="PNG")
    print(f"wrote {out / 'results.json'}, {out / 'report.md'} and {out / 'strip.png'}")
    return 0
