"""`clipag vqgan PROMPT... --vqgan-config FILE --vqgan-checkpoint FILE`: VQGAN+CLIP with any guide."""
from __future__ import annotations

import argparse

from ..configs import CUT_METHODS, DEFAULT_AUGMENTS, VQGAN_AUGMENTS, VQGANCLIPConfig
from ..errors import ClipagError
from ..generation.prompts import parse_weighted_prompt
from .args import (add_device_args, add_quiet, add_renamed, add_seeds, COUNT, IMAGE_SIZE, kept, non_negative_int,
                   positive_float, positive_int)
from .generate import DEFAULT_MODEL


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "vqgan", help="VQGAN+CLIP: optimise a VQGAN latent towards the prompts with any guide",
        description="Decode a VQGAN latent, score crops of the image with the guide against the prompts "
                    "(TEXT:WEIGHT; negative weights repel), and descend. Needs a taming-transformers VQGAN "
                    "config (.yaml) and checkpoint, e.g. vqgan_imagenet_f16_16384.")
    p.add_argument("prompts", nargs="*", metavar="PROMPT", help="text prompts, TEXT or TEXT:WEIGHT")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"guide model (default {DEFAULT_MODEL})")
    add_seeds(p)
    add_method_arguments(p)
    p.add_argument("--out", default="outputs/vqgan", help="output folder (default outputs/vqgan)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results made with other settings")
    add_quiet(p)
    add_device_args(p)
    p.set_defaults(run=run)


def add_method_arguments(p: argparse.ArgumentParser) -> None:
    """The VQGAN files and the options of a VQGANCLIPConfig (shared with `clipag compare vqgan`)."""
    d = VQGANCLIPConfig()
    p.add_argument("--vqgan-config", required=True, help="the checkpoint's .yaml")
    p.add_argument("--vqgan-checkpoint", required=True, help=".ckpt / .pt / .safetensors")
    p.add_argument("--image-prompt", nargs="+", default=[], metavar="PATH[:WEIGHT]",
                   help="image prompts, embedded through the same crops (the reference's -ip)")
    p.add_argument("--steps", type=positive_int, default=d.steps, help=f"steps (default {d.steps})")
    p.add_argument("--lr", type=positive_float, default=d.lr, help=f"Adam lr on the latent (default {d.lr})")
    p.add_argument("--size", type=IMAGE_SIZE, default=d.size,
                   help="output side in pixels (default, as the reference: 512 on a GPU over 8 GB, 304 on a "
                        "smaller one, 256 on CPU)")
    p.add_argument("--crops", type=COUNT, default=d.crops, help=f"cutouts per step (default {d.crops})")
    add_renamed(p, "--cutouts", "--crops", type=COUNT)
    p.add_argument("--cut-method", choices=CUT_METHODS, default=d.cut_method,
                   help=f"latest (default {d.cut_method}: the reference's pooled whole-image copies, augmented) or "
                        "pooled-crops (clipag's earlier random-size crops)")
    p.add_argument("--augments", nargs="+", choices=VQGAN_AUGMENTS, default=list(DEFAULT_AUGMENTS),
                   help=f"kornia augments of the latest cutouts, in order (default {' '.join(DEFAULT_AUGMENTS)}, the reference's)")
    p.add_argument("--init", default=d.init, help="start from this image's encoding instead of random codes")
    add_renamed(p, "--init-image", "--init")
    p.add_argument("--save-every", type=non_negative_int, default=d.save_every, help="save a frame every N steps, and a GIF")


def config_from_args(args: argparse.Namespace) -> VQGANCLIPConfig:
    config = VQGANCLIPConfig(steps=args.steps, lr=args.lr, size=args.size, crops=args.crops,
                             cut_method=args.cut_method, augments=tuple(args.augments),
                             image_prompts=tuple(args.image_prompt), init=args.init, save_every=args.save_every)
    config.validate()
    return config


def run(args: argparse.Namespace) -> int:
    from ..models.guide import Guide
    from ..io import load_image
    from ..tools.vqgan import vqgan_to_folder
    from ..tools.vqgan_model import load_vqgan
    config = config_from_args(args)
    if not args.prompts and not args.image_prompt:
        raise ClipagError("give a text prompt or an image prompt (--image-prompt PATH)")
    for prompt in args.prompts:
        parse_weighted_prompt(prompt)
    for prompt in args.image_prompt:
        load_image(parse_weighted_prompt(prompt)[0], 16)  # a missing or broken picture fails now
    vqgan = load_vqgan(args.vqgan_config, args.vqgan_checkpoint)
    guide = Guide.from_pretrained(args.model, device=args.device, precision=args.precision)
    files = (args.vqgan_config, args.vqgan_checkpoint)
    records = vqgan_to_folder(guide, vqgan, args.prompts, args.seed, args.out, config, args.model, files,
                              progress=not args.quiet, overwrite=args.overwrite)
    for record in records:
        history = record["loss_history"]
        print(f"{record['image']}  loss {history[0]:.3f} -> {history[-1]:.3f}  ({record['seconds']:.1f} s){kept(record)}")
    return 0
