"""`clipag style IMAGE PROMPT`: CLIPStyler with any guide, with or without its style network."""
from __future__ import annotations

import argparse

from ..configs import CONTENT_LOSSES, POSTPROCESS, STYLE_NETS, StyleConfig
from ..generation.prompts import parse_weighted_prompt
from .args import add_device_args, add_quiet, add_renamed, add_seeds, COUNT, IMAGE_SIZE, kept, positive_float, positive_int
from .generate import DEFAULT_MODEL


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "style", help="CLIPStyler: restyle an image from a text prompt with any guide",
        description="Train a small style network on one image (or, with --no-network, optimise its pixels) "
                    "so that it moves towards the prompt in the guide's embedding space.")
    p.add_argument("image", help="content image")
    p.add_argument("prompts", nargs="+", metavar="PROMPT",
                   help='style prompts, e.g. "a watercolor painting" "blurry:-0.5" (TEXT:WEIGHT; all shape one picture)')
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"guide model (default {DEFAULT_MODEL})")
    add_seeds(p)
    add_method_arguments(p)
    p.add_argument("--out", default="outputs/style", help="output folder (default outputs/style)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results made with other settings")
    add_quiet(p)
    add_device_args(p)
    p.set_defaults(run=run)


def add_method_arguments(p: argparse.ArgumentParser) -> None:
    """The options that make a StyleConfig (shared with `clipag compare style`), defaults from StyleConfig."""
    d = StyleConfig()
    p.add_argument("--no-network", action="store_true", help="optimise the pixels instead of a style network")
    p.add_argument("--steps", type=positive_int, default=d.steps, help=f"optimisation steps (default {d.steps})")
    add_renamed(p, "--iterations", "--steps", type=positive_int)
    p.add_argument("--width", type=IMAGE_SIZE, default=None, help=f"content image width (default {d.width}, as the reference)")
    p.add_argument("--height", type=IMAGE_SIZE, default=None, help=f"content image height (default {d.height})")
    p.add_argument("--size", type=IMAGE_SIZE, default=None, help="width and height at once")
    p.add_argument("--style-net", choices=STYLE_NETS, default=d.style_net,
                   help=f"stylenet (default {d.style_net}: the reference's U-Net, 615k parameters) or small-unet (clipag's earlier)")
    p.add_argument("--crops", type=COUNT, default=d.crops, help=f"patches per step (default {d.crops})")
    p.add_argument("--crop-size", type=positive_int, default=d.crop_size, help=f"patch side (default {d.crop_size})")
    p.add_argument("--lr", type=positive_float, default=d.lr, help="Adam lr (default 5e-4 network, 5e-3 pixels)")
    p.add_argument("--content-loss", choices=CONTENT_LOSSES, default=d.content_loss,
                   help=f"vgg (default {d.content_loss}: the reference's VGG19 relu4_2 + relu5_2) or pixels "
                        "(1/4 resolution, for machines without VGG19 weights)")
    p.add_argument("--vgg-weights", help="torchvision's VGG19 weights file (default: torchvision's cache, "
                                         "$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth)")
    p.add_argument("--postprocess", choices=POSTPROCESS, default=d.postprocess,
                   help=f"reference (default {d.postprocess}): contrast x1.5, then stretch to the full range, as "
                        "CLIPStyler saves; none: the raw output, clamped")
    p.add_argument("--trajectory", action="store_true", help="also save a strip and a GIF of the progress")


def config_from_args(args: argparse.Namespace) -> StyleConfig:
    d = StyleConfig()
    config = StyleConfig(steps=args.steps, network=not args.no_network, lr=args.lr, crops=args.crops,
                         crop_size=args.crop_size, width=args.width or args.size or d.width,
                         height=args.height or args.size or d.height, style_net=args.style_net,
                         content_loss=args.content_loss, vgg_weights=args.vgg_weights,
                         trajectory_frames=8 if args.trajectory else 0, postprocess=args.postprocess)
    config.validate()
    return config


def run(args: argparse.Namespace) -> int:
    from ..models.guide import Guide
    from ..tools.style import style_to_folder, vgg_content_features
    config = config_from_args(args)
    if config.content_loss == "vgg":
        vgg_content_features(config.vgg_weights)  # a missing VGG19 file fails before the guide loads
    for prompt in args.prompts:
        parse_weighted_prompt(prompt)  # a bad weight fails before the model loads
    guide = Guide.from_pretrained(args.model, device=args.device, precision=args.precision)
    records = style_to_folder(guide, args.image, args.prompts, args.seed, args.out, config, args.model,
                              progress=not args.quiet, overwrite=args.overwrite)
    for record in records:
        print(f"{record['image']}  (content loss on {record['content_loss'].split(' (')[0]}; {record['seconds']:.1f} s){kept(record)}")
    return 0
