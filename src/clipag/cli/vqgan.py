"""`clipag vqgan PROMPT... --vqgan-config FILE --vqgan-checkpoint FILE`: VQGAN+CLIP with any guide."""
from __future__ import annotations

import argparse

from ..configs import CUT_METHODS, DEFAULT_AUGMENTS, VQGAN_AUGMENTS, VQGANCLIPConfig
from ..errors import ClipagError
from ..prompts import parse_weighted_prompt
from .args import add_device_args, COUNT, IMAGE_SIZE, kept, non_negative_int, positive_float, positive_int, seed
from .generate import DEFAULT_MODEL


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "vqgan", help="VQGAN+CLIP: optimise a VQGAN latent towards the prompts with any guide",
        description="Decode a VQGAN latent, score cutouts of the image with the guide against the prompts "
                    "(TEXT:WEIGHT; negative weights repel), and descend. Needs a taming-transformers VQGAN "
                    "config (.yaml) and checkpoint, e.g. vqgan_imagenet_f16_16384.")
    p.add_argument("prompts", nargs="*", metavar="PROMPT", help="text prompts, TEXT or TEXT:WEIGHT")
    p.add_argument("--image-prompt", nargs="+", default=[], metavar="PATH[:WEIGHT]",
                   help="image prompts, embedded through the same cutouts (the reference's -ip)")
    p.add_argument("--vqgan-config", required=True, help="the checkpoint's .yaml")
    p.add_argument("--vqgan-checkpoint", required=True, help=".ckpt / .pt / .safetensors")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"guide model (default {DEFAULT_MODEL})")
    p.add_argument("--seed", type=seed, nargs="+", default=[0], help="seeds (default 0)")
    p.add_argument("--steps", type=positive_int, default=500, help="steps (default 500)")
    p.add_argument("--lr", type=positive_float, default=0.1, help="Adam lr on the latent (default 0.1)")
    p.add_argument("--size", type=IMAGE_SIZE, default=None,
                   help="output side in pixels (default, as the reference: 512 on a GPU over 8 GB, 304 on a "
                        "smaller one, 256 on CPU)")
    p.add_argument("--cutouts", type=COUNT, default=32, help="cutouts per step (default 32)")
    p.add_argument("--cut-method", choices=CUT_METHODS, default="latest",
                   help="latest (default, the reference's: pooled whole-image copies, augmented) or "
                        "pooled-crops (clipag's earlier random-size crops)")
    p.add_argument("--augments", nargs="+", choices=VQGAN_AUGMENTS, default=list(DEFAULT_AUGMENTS),
                   help="kornia augments of the latest cutouts, in order (default Af Pe Ji Er, the reference's)")
    p.add_argument("--init-image", help="start from this image's encoding instead of random codes")
    p.add_argument("--save-every", type=non_negative_int, default=0, help="save a frame every N steps, and a GIF")
    p.add_argument("--out", default="outputs/vqgan", help="output folder (default outputs/vqgan)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results made with other settings")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..guide import Guide
    from ..io import load_image
    from ..vqgan import vqgan_to_folder
    from ..vqgan_model import load_vqgan
    config = VQGANCLIPConfig(steps=args.steps, lr=args.lr, size=args.size, cutouts=args.cutouts,
                             cut_method=args.cut_method, augments=tuple(args.augments),
                             image_prompts=tuple(args.image_prompt), init_image=args.init_image,
                             save_every=args.save_every)
    config.validate()
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
