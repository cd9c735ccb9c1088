"""`clipag serve`: the web page where guides draw side by side (Gradio; `pip install 'clipag[ui]'`)."""
from __future__ import annotations

import argparse

from .args import add_device_args, positive_int

DEFAULT_MODELS = ["clip-emoji", "clipag-emoji"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="a local web page: one prompt, several guides drawing side by side, live",
        description="Serve a page where a prompt is generated or drawn by each chosen guide side by side, the "
                    "pictures updating every few steps, with a stop button that keeps what was made, and a "
                    "gallery of past results (the same PNG + settings JSON the CLI writes). Binds to localhost "
                    "unless --host says otherwise; runs queue one at a time.")
    p.add_argument("--model", action="append", help=f"a guide the page offers; repeat (default {' and '.join(DEFAULT_MODELS)})")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=positive_int, default=7860, help="port (default 7860)")
    p.add_argument("--out", default="outputs/serve", help="output folder, read back by the gallery (default outputs/serve)")
    p.add_argument("--max-steps", type=positive_int, default=1000, help="most steps one run may ask (default 1000)")
    p.add_argument("--max-size", type=positive_int, default=512, help="largest picture side one run may ask (default 512)")
    p.add_argument("--vqgan-config", help="offer VQGAN+CLIP with this VQGAN's YAML (and --vqgan-checkpoint)")
    p.add_argument("--vqgan-checkpoint", help="the VQGAN's checkpoint (taming-transformers layout)")
    p.add_argument("--queue", type=positive_int, default=16, help="runs waiting at most (default 16)")
    add_device_args(p, precision="auto")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..serve import Limits, build_app
    from ..serve.app import launch
    from ..errors import ClipagError
    if (args.vqgan_config is None) != (args.vqgan_checkpoint is None):
        raise ClipagError("give both --vqgan-config and --vqgan-checkpoint, or neither")
    limits = Limits(steps=args.max_steps, size=args.max_size)
    vqgan = (args.vqgan_config, args.vqgan_checkpoint) if args.vqgan_config else None
    app = build_app(list(dict.fromkeys(args.model or DEFAULT_MODELS)), args.out, limits, args.device, args.precision,
                    args.queue, vqgan)
    print(f"clipag serve: http://{args.host}:{args.port} (Ctrl+C stops)", flush=True)
    launch(app, args.host, args.port)
    return 0
