"""`clipag draw PROMPT...`: CLIPDraw with any guide; PNG, SVG and settings JSON per seed."""
from __future__ import annotations

import argparse

from ..configs import DrawConfig
from ..generation.prompts import parse_weighted_prompt
from .args import add_device_args, add_quiet, add_renamed, add_seeds, COUNT, IMAGE_SIZE, kept, positive_float, positive_int
from .generate import DEFAULT_MODEL


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "draw", help="CLIPDraw: optimise Bezier strokes towards the prompts with any guide",
        description="Draw the prompts with strokes, CLIPDraw's way. Prompts take weights as TEXT:WEIGHT; a "
                    "negative weight is a negative prompt. All prompts shape one drawing per seed.")
    p.add_argument("prompts", nargs="+", metavar="PROMPT", help='prompts, e.g. "a red apple" "blurry:-0.5"')
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"guide model (default {DEFAULT_MODEL})")
    add_seeds(p)
    add_method_arguments(p)
    p.add_argument("--out", default="outputs/draw", help="output folder (default outputs/draw)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results made with other settings")
    add_quiet(p)
    add_device_args(p)
    p.set_defaults(run=run)


def add_method_arguments(p: argparse.ArgumentParser) -> None:
    """The options that make a DrawConfig (shared with `clipag compare draw`), defaults from DrawConfig."""
    d = DrawConfig()
    p.add_argument("--steps", type=positive_int, default=d.steps, help=f"optimisation steps (default {d.steps})")
    add_renamed(p, "--iterations", "--steps", type=positive_int)
    p.add_argument("--strokes", type=COUNT, default=d.strokes, help=f"number of strokes (default {d.strokes})")
    p.add_argument("--max-width", type=positive_float, default=d.max_width,
                   help=f"widest stroke in pixels (default {d.max_width:g})")
    p.add_argument("--views", type=COUNT, default=d.views, help=f"augmented views per step (default {d.views})")
    p.add_argument("--no-augment", action="store_true", help="score the drawing itself, without views")
    p.add_argument("--normalize-input", action="store_true",
                   help="apply the guide's mean/std to the pixels (default: not, as the official notebooks)")
    p.add_argument("--clamp-points", action="store_true",
                   help="keep control points within [-0.1, 1.1] of the canvas (default: not, as CLIPDraw)")
    p.add_argument("--size", type=IMAGE_SIZE, help="canvas side in pixels (default: the guide's input size)")
    p.add_argument("--trajectory", action="store_true", help="also save a strip and a GIF of the drawing's progress")


def config_from_args(args: argparse.Namespace) -> DrawConfig:
    config = DrawConfig(strokes=args.strokes, max_width=args.max_width, steps=args.steps,
                        views=args.views, augment=not args.no_augment, normalized_input=args.normalize_input,
                        clamp_points=args.clamp_points, size=args.size,
                        trajectory_frames=8 if args.trajectory else 0)
    config.validate()
    return config


def run(args: argparse.Namespace) -> int:
    from ..tools.draw import draw_to_folder
    from ..models.guide import Guide
    config = config_from_args(args)
    for prompt in args.prompts:
        parse_weighted_prompt(prompt)  # reject a bad prompt before loading the model
    guide = Guide.from_pretrained(args.model, device=args.device, precision=args.precision)
    for record in draw_to_folder(guide, args.prompts, args.seed, args.out, config, args.model, not args.quiet,
                                 args.overwrite):
        print(f"{record['image']}  {record['svg']}  similarity {record['similarity']:.3f}  ({record['seconds']:.1f} s){kept(record)}")
    return 0
