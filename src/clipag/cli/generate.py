"""`clipag generate PROMPT...`: generator-free text-to-image."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..configs import ADAMW_WEIGHT_DECAY, AUGMENT_CHOICES, KEEP_CHOICES, OPTIMIZER_CHOICES, GenerateConfig, ViewConfig
from ..errors import ClipagError
from ..generation.prompts import full_prompt
from ..models.registry import missing_gmm_message
from .args import (add_device_args, add_quiet, add_seeds, COUNT, COUNT_OR_ZERO, IMAGE_SIZE, kept, non_negative_float,
                   positive_float, positive_int)

DEFAULT_MODEL = "clipag-emoji"  # ships in the package; pass --model clipag-vit-b-32 for the paper's


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "generate", help="turn prompts into images with a PAG model's gradients, no generator",
        description="Start from the best sample of a per-class GMM (or noise, or an image), then "
                    "climb the model's similarity to the prompt over augmented views.")
    p.add_argument("prompts", nargs="+", metavar="PROMPT", help="one or more prompts")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model reference (default {DEFAULT_MODEL}; see `clipag models`)")
    add_seeds(p)
    p.add_argument("--out", default="outputs/generate", help="output folder (default outputs/generate)")
    add_method_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="replace earlier results made with other settings")
    add_quiet(p)
    add_device_args(p, precision="auto")
    p.set_defaults(run=run)


def add_method_arguments(p: argparse.ArgumentParser) -> None:
    """The options that make a GenerateConfig (shared with `clipag compare generate`), defaults from it."""
    d, v = GenerateConfig(), ViewConfig()
    p.add_argument("--steps", type=positive_int, default=d.steps,
                   help=f"ascent steps (default {d.steps}, as the official notebook; the paper uses 1000)")
    p.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default=d.optimizer,
                   help=f"adamw (default {d.optimizer}: the official notebook's) or l2: fixed-length steps along the gradient")
    p.add_argument("--lr", type=positive_float, default=d.lr,
                   help=f"AdamW learning rate on the pixels, or the l2 step's RMS change per pixel (default {d.lr})")
    p.add_argument("--weight-decay", type=non_negative_float, default=d.weight_decay,
                   help=f"AdamW weight decay (default {ADAMW_WEIGHT_DECAY}, torch's default, which the notebook keeps)")
    p.add_argument("--views", type=COUNT_OR_ZERO, default=v.views, help=f"augmented whole-image views per step (default {v.views})")
    p.add_argument("--crops", type=COUNT_OR_ZERO, default=v.crops, help=f"augmented random crops per step (default {v.crops})")
    p.add_argument("--augment", choices=AUGMENT_CHOICES, default=v.augment,
                   help=f"diffaugment (default {v.augment}: the official notebook's views and crops) or kornia "
                        "(clipag's earlier, milder views; crops unaugmented)")
    p.add_argument("--policy", default=v.policy, help=f"DiffAugment operations (default {v.policy}; '' for none)")
    p.add_argument("--view-weight", type=non_negative_float, default=d.view_weight,
                   help=f"loss weight of the views (default {d.view_weight:g})")
    p.add_argument("--crop-weight", type=non_negative_float, default=d.crop_weight,
                   help=f"loss weight of the crops (default {d.crop_weight:g})")
    p.add_argument("--size", type=IMAGE_SIZE, default=d.size, help="output side in pixels (default: the model's input size)")
    p.add_argument("--init", default=d.init, help=f"gmm (default {d.init}), noise, or a path to a starting image")
    p.add_argument("--gmm", default=d.gmm_path, help="GMM file from `clipag gmm fit`, for --init gmm "
                                                     "(default: the model's own, if it names one)")
    p.add_argument("--samples-per-class", type=COUNT, default=d.samples_per_class,
                   help=f"GMM candidates drawn from every class (default {d.samples_per_class}: 1,000 over 200 classes, as the notebook)")
    p.add_argument("--prefix", default=d.prefix, help='text put before every prompt, e.g. "an oil painting of"')
    p.add_argument("--grad-clip", type=positive_float, default=d.grad_clip,
                   help=f"max L2 norm of the pixel gradient (default {d.grad_clip}, as the notebook)")
    p.add_argument("--keep", choices=KEEP_CHOICES, default=d.keep,
                   help=f"best (default {d.keep}, as the notebook: the image after the step with the best view loss) or last")
    p.add_argument("--threshold-quantile", type=positive_float, default=d.threshold_quantile,
                   help=f"dynamic thresholding quantile (default {d.threshold_quantile})")
    p.add_argument("--trajectory", action="store_true", help="also save an init-to-final strip and a GIF per image")
    p.add_argument("--trajectory-frames", type=positive_int, default=8, help="frames after the init in the trajectory (default 8)")


def config_from_args(args: argparse.Namespace) -> GenerateConfig:
    config = GenerateConfig(
        steps=args.steps, optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
        view_weight=args.view_weight, crop_weight=args.crop_weight, size=args.size, init=args.init, gmm_path=args.gmm,
        samples_per_class=args.samples_per_class, grad_clip=args.grad_clip,
        threshold_quantile=args.threshold_quantile, prefix=args.prefix, keep=args.keep,
        trajectory_frames=args.trajectory_frames if args.trajectory else 0,
        views=ViewConfig(views=args.views, crops=args.crops, augment=args.augment, policy=args.policy))
    config.validate()
    return config


def run(args: argparse.Namespace) -> int:
    from ..generation.generate import generate_to_folder
    from ..models.guide import Guide
    config = config_from_args(args)
    if config.init == "gmm" and not config.gmm_path and missing_gmm_message(args.model):
        raise ClipagError(missing_gmm_message(args.model))  # before loading a large model
    for prompt in args.prompts:
        full_prompt(prompt, config.prefix)  # reject an empty prompt before loading any model
    guide = Guide.from_pretrained(args.model, device=args.device, precision=args.precision)
    records = generate_to_folder(guide, args.prompts, args.seed, args.out, config,
                                 model_reference=args.model, progress=not args.quiet,
                                 overwrite=args.overwrite)
    for record in records:
        print(f"{record['image']}  similarity {record['initial_similarity']:.3f} -> "
              f"{record['similarity']:.3f}  ({record['seconds']:.1f} s){kept(record)}")
    if len(records) > 1:
        print(f"{Path(args.out) / 'grid.png'}  grid of {len(records)} images")
    return 0
