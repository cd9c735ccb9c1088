"""`clipag reproduce TARGET --model A [--model B ...]`: a figure or table of the CLIPAG supplementary as a page."""
from __future__ import annotations

import argparse

from ..configs import PAPER_STEPS, QUICK_STEPS, REPRODUCE_TARGETS, ReproduceConfig
from .args import add_device_args, add_quiet, positive_int
from .generate import DEFAULT_MODEL


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "reproduce", help="make a figure or table of the CLIPAG supplementary (or all of them) as a page",
        description="Writes OUT/TARGET/index.html (and index.md, settings.json, every picture) laid out as the "
                    "paper's figure, with each model given; `all` makes every target whose inputs were given and "
                    "an index page. The paper's settings by default; --quick for a small, fast version. A re-run "
                    "keeps the pictures it already has.")
    p.add_argument("target", help=f"one of {', '.join(REPRODUCE_TARGETS)}, or all")
    p.add_argument("--model", action="append", help=f"model; repeat to compare (default {DEFAULT_MODEL})")
    p.add_argument("--quick", action="store_true", help=f"few steps and views ({QUICK_STEPS} steps), for a laptop")
    p.add_argument("--steps", type=positive_int, help=f"steps of every method (default: the paper's, {PAPER_STEPS} "
                   f"for generation; {QUICK_STEPS} with --quick)")
    p.add_argument("--gmm", help="GMM file for the generation figures (default: each model's own)")
    p.add_argument("--image", action="append", default=[], metavar="PATH[=TARGET]",
                   help="fig5: a picture and its Grad-CAM target; repeat (targets default to the paper's: "
                        "dog, parrot, cars, monkey)")
    p.add_argument("--content", action="append", default=[], metavar="PATH",
                   help="fig2: a picture for CLIPStyler to restyle; repeat")
    p.add_argument("--vqgan-config", help="fig1, table-vqgan: the VQGAN's YAML (taming-transformers layout)")
    p.add_argument("--vqgan-checkpoint", help="fig1, table-vqgan: the VQGAN's checkpoint")
    p.add_argument("--captions", help="table-vqgan: MS-COCO captions_val2017.json (100 seeded captions)")
    p.add_argument("--evaluator", action="append", default=[], metavar="MODEL",
                   help="tables: a model that scores the results; repeat (the paper: two CLIP models)")
    p.add_argument("--aesthetic", help="tables: the LAION aesthetic predictor's weights (sac+logos+ava1-l14-linearMSE.pth)")
    p.add_argument("--out", default="outputs/reproduce", help="output folder (default outputs/reproduce)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results made with other settings")
    add_quiet(p)
    add_device_args(p, precision="auto")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..reproduce import reproduce
    config = ReproduceConfig(quick=args.quick, steps=args.steps, gmm=args.gmm, images=list(args.image),
                             contents=list(args.content), vqgan_config=args.vqgan_config,
                             vqgan_checkpoint=args.vqgan_checkpoint, captions=args.captions,
                             evaluators=list(args.evaluator), aesthetic=args.aesthetic)
    page = reproduce(args.target, args.model or [DEFAULT_MODEL], args.out, config, args.device, args.precision,
                     progress=not args.quiet, overwrite=args.overwrite)
    print(f"wrote {page} and {page.with_suffix('.html')}")
    return 0
