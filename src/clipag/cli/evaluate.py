"""`clipag evaluate RUN_DIR_OR_CSV...`: similarity, R-Precision and aesthetic score of generated images."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..configs import AESTHETIC_EMBEDDER
from .args import add_device_args, add_quiet, positive_int


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score generated images against their prompts",
        description="Read images and prompts from run folders (the JSON beside each image) or CSV files "
                    "(image,prompt), score them with one or more evaluator models, print a table and "
                    "write results.json and results.csv. Under torchrun the images are sharded across "
                    "ranks and rank 0 writes the merged results.")
    p.add_argument("sources", nargs="+", metavar="RUN_DIR_OR_CSV", help="run folders or CSV files")
    p.add_argument("--evaluator", action="append", required=True,
                   help="evaluator model reference; repeat for several (the paper uses two)")
    p.add_argument("--top-k", type=positive_int, nargs="+", default=[1], help="R-Precision k values (default 1)")
    p.add_argument("--aesthetic", help="aesthetic predictor file (e.g. sac+logos+ava1-l14-linearMSE.pth)")
    p.add_argument("--aesthetic-embedder", default=AESTHETIC_EMBEDDER,
                   help=f"model whose image embedding the predictor reads (default {AESTHETIC_EMBEDDER})")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--out", default="outputs/evaluate", help="folder for results.json and results.csv")
    add_quiet(p)
    add_device_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..distributed import close_world, init_world
    world = init_world(args.device)  # under torchrun: one shard of the images per rank
    try:
        return _evaluate(args, world)
    finally:
        close_world()


def _evaluate(args: argparse.Namespace, world) -> int:
    from ..measure.aesthetic import optional_scorer
    from ..measure.evaluate import collect_items, evaluate_items, summary_table, write_report
    from ..models.guide import Guide
    items, problems = collect_items(args.sources)
    device = str(world.device)
    evaluators = {ref: Guide.from_pretrained(ref, device=device, precision=args.precision) for ref in args.evaluator}
    scorer = optional_scorer(args.aesthetic, args.aesthetic_embedder, device)
    report = evaluate_items(items, evaluators, args.top_k, scorer, args.batch_size, world, progress=not args.quiet)
    report["skipped"], report["ranks"] = problems, world.size
    if not world.is_main:
        return 0
    for problem in problems:
        print(f"clipag: skipped {problem}", file=sys.stderr)
    print(f"{report['images']} images, {report['prompts']} prompts")
    print(summary_table(report))
    for warning in report["warnings"]:
        print(f"clipag: warning: {warning}", file=sys.stderr)
    write_report(report, Path(args.out))
    print(f"wrote {Path(args.out) / 'results.json'} and {Path(args.out) / 'results.csv'}")
    return 0
