"""`clipag vqgan PROMPT... --vqgan-config FILE --vqgan-checkpoint FILE`: VQGAN+CLIP with any guide."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..guide import Guide
from ..io import environment, save_gif, save_json, save_png, slugify
from ..prompts import parse_weighted_prompt
from ..vqgan import VQGANCLIPConfig, vqgan_clip
from ..vqgan_model import load_vqgan
from .args import add_device_args, non_negative_int, positive_float, positive_int
from .generate import DEFAULT_MODEL


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "vqgan", help="VQGAN+CLIP: optimise a VQGAN latent towards the prompts with any guide",
        description="Decode a VQGAN latent, score cutouts of the image with the guide against the prompts "
                    "(TEXT:WEIGHT; negative weights repel), and descend. Needs a taming-transformers VQGAN "
                    "config (.yaml) and checkpoint, e.g. vqgan_imagenet_f16_16384.")
    p.add_argument("prompts", nargs="+", metavar="PROMPT")
    p.add_argument("--vqgan-config", required=True, help="the checkpoint's .yaml")
    p.add_argument("--vqgan-checkpoint", required=True, help=".ckpt / .pt / .safetensors")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"guide model (default {DEFAULT_MODEL})")
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="seeds (default 0)")
    p.add_argument("--steps", type=positive_int, default=500, help="steps (default 500)")
    p.add_argument("--lr", type=positive_float, default=0.1, help="Adam lr on the latent (default 0.1)")
    p.add_argument("--size", type=positive_int, default=256, help="output side in pixels (default 256)")
    p.add_argument("--cutouts", type=positive_int, default=32, help="cutouts per step (default 32)")
    p.add_argument("--init-image", help="start from this image's encoding instead of random codes")
    p.add_argument("--save-every", type=non_negative_int, default=0, help="save a frame every N steps, and a GIF")
    p.add_argument("--out", default="outputs/vqgan", help="output folder (default outputs/vqgan)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = VQGANCLIPConfig(steps=args.steps, lr=args.lr, size=args.size, cutouts=args.cutouts,
                             init_image=args.init_image, save_every=args.save_every)
    config.validate()
    for prompt in args.prompts:
        parse_weighted_prompt(prompt)
    vqgan = load_vqgan(args.vqgan_config, args.vqgan_checkpoint)
    guide = Guide.from_pretrained(args.model, device=args.device, precision=args.precision)
    for seed in args.seed:
        result = vqgan_clip(guide, vqgan, args.prompts, seed, config, progress=not args.quiet)
        stem = Path(args.out) / f"{slugify(' '.join(args.prompts))}-seed{seed}"
        save_png(result.image, stem.with_suffix(".png"))
        if result.frames:
            save_gif(result.frames + [result.image], stem.with_suffix(".gif"))
        save_json({"image": str(stem.with_suffix(".png")), "prompt": "; ".join(args.prompts), "prompts": args.prompts,
                   "model": args.model, "seed": seed, "method": "vqgan", "vqgan_config": args.vqgan_config,
                   "vqgan_checkpoint": args.vqgan_checkpoint, "seconds": round(result.seconds, 3),
                   "settings": dataclasses.asdict(config), "loss_history": [round(l, 5) for l in result.history],
                   **environment()}, stem.with_suffix(".json"))
        print(f"{stem.with_suffix('.png')}  loss {result.history[0]:.3f} -> {result.history[-1]:.3f}  ({result.seconds:.1f} s)")
    return 0
