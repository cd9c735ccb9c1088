"""`clipag compare`: the same prompts and seeds through one method with several guides, one report."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..configs import AESTHETIC_EMBEDDER as DEFAULT_EMBEDDER
from ..configs import COMPARE_METHODS, OPTIMIZER_CHOICES, DrawConfig, GenerateConfig, StyleConfig, VQGANCLIPConfig, ViewConfig
from ..errors import ClipagError
from ..prompts import PROMPT_SETS, load_prompts
from .args import add_device_args, COUNT, COUNT_OR_ZERO, IMAGE_SIZE, positive_int, seed


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="run one method with several guides on the same prompts; write an HTML report",
        description="Generate every prompt x seed with each guide, score all runs with the evaluators, and "
                    "write report.html and report.md (metrics table, chart, side-by-side strips).")
    p.add_argument("prompts", nargs="*", metavar="PROMPT", help="prompts (or use --prompts)")
    p.add_argument("--prompts", dest="prompt_set", help=f"a prompt file, or a shipped set: {', '.join(PROMPT_SETS)}")
    p.add_argument("--limit", type=positive_int, help="use only the first N prompts")
    p.add_argument("--guide", action="append", required=True, help="guide model; give two or more")
    p.add_argument("--evaluator", action="append", required=True, help="evaluator model; repeatable")
    p.add_argument("--method", choices=sorted(COMPARE_METHODS), default="generate", help="what the guides drive (default generate)")
    p.add_argument("--seed", type=seed, nargs="+", default=[0], help="seeds (default 0)")
    p.add_argument("--steps", type=positive_int, default=100, help="steps / iterations of the method (default 100)")
    p.add_argument("--strokes", type=COUNT, default=256, help="draw: number of strokes (default 256)")
    p.add_argument("--views", type=COUNT_OR_ZERO, default=32, help="augmented views per step (default 32)")
    p.add_argument("--crops", type=COUNT_OR_ZERO, default=32, help="random crops per step; vqgan: cutouts (default 32)")
    p.add_argument("--vqgan-config", help="vqgan: the taming-transformers .yaml")
    p.add_argument("--vqgan-checkpoint", help="vqgan: the checkpoint (.ckpt / .pt / .safetensors)")
    p.add_argument("--content", help="style: the content image every prompt restyles")
    p.add_argument("--no-network", action="store_true", help="style: optimise pixels, not the style network")
    p.add_argument("--content-loss", choices=("vgg", "pixels"), default="vgg",
                   help="style: vgg (default, needs torchvision's VGG19 file) or pixels")
    p.add_argument("--size", type=IMAGE_SIZE, help="vqgan / style: output side (defaults: 256 / 512)")
    p.add_argument("--init", default="gmm", help="generate: gmm (default), noise, or an image path")
    p.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default="adamw", help="generate: adamw (default) or l2")
    p.add_argument("--gmm", help="GMM file for --init gmm (default: the guide's own, if it names one)")
    p.add_argument("--top-k", type=positive_int, nargs="+", default=[1], help="R-Precision k values (default 1)")
    p.add_argument("--aesthetic", help="aesthetic predictor file; adds scores and pairwise preference")
    p.add_argument("--aesthetic-embedder", default=DEFAULT_EMBEDDER, help=f"its embedder (default {DEFAULT_EMBEDDER})")
    p.add_argument("--out", default="outputs/compare", help="report folder (default outputs/compare)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results made with other settings")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    prompts = list(args.prompts) + (load_prompts(args.prompt_set) if args.prompt_set else [])
    if not prompts:
        raise ClipagError("no prompts; give them as arguments or with --prompts FILE_OR_SET (e.g. --prompts drawing)")
    prompts = prompts[:args.limit] if args.limit else prompts
    from ..aesthetic import optional_scorer
    from ..compare import compare, metric_rows
    if args.method == "draw":
        config = DrawConfig(iterations=args.steps, strokes=args.strokes)
    elif args.method == "vqgan":
        config = _vqgan_method(args)
    elif args.method == "style":
        config = _style_method(args)
    else:
        config = GenerateConfig(steps=args.steps, init=args.init, gmm_path=args.gmm, optimizer=args.optimizer,
                                views=ViewConfig(views=args.views, crops=args.crops))
    config.validate()
    scorer = optional_scorer(args.aesthetic, args.aesthetic_embedder, args.device)
    report = compare(prompts, args.guide, args.out, args.evaluator, args.seed, args.method, config, args.top_k,
                     scorer, args.device, args.precision, progress=not args.quiet,
                     overwrite=args.overwrite)
    header, rows = metric_rows(report)
    print("| " + " | ".join(header) + " |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"wrote {Path(args.out) / 'report.html'} and {Path(args.out) / 'report.md'}")
    return 0


def _vqgan_method(args: argparse.Namespace):
    from ..compare import VQGANMethod
    if not (args.vqgan_config and args.vqgan_checkpoint):
        raise ClipagError("--method vqgan needs --vqgan-config FILE.yaml and --vqgan-checkpoint FILE")
    config = VQGANCLIPConfig(steps=args.steps, cutouts=args.crops or 32, size=args.size)
    return VQGANMethod(config, args.vqgan_config, args.vqgan_checkpoint)


def _style_method(args: argparse.Namespace):
    from ..compare import StyleMethod
    if not args.content:
        raise ClipagError("--method style needs --content IMAGE, the picture every prompt restyles")
    size = args.size or 512
    config = StyleConfig(iterations=args.steps, network=not args.no_network, width=size, height=size,
                         content_loss=args.content_loss,
                         crop_size=max(16, size // 4))  # the reference's 128-px patches of 512-px images
    return StyleMethod(config, args.content)
