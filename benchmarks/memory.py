"""Peak memory of one generation step, per view and per crop, against clipag.models.memory's estimate.

    python benchmarks/memory.py                      # clipag-emoji at 512 and 1024 px
    python benchmarks/memory.py --model ViT-B-32:random --sizes 224

Each case runs in its own process (peak RSS is per process) and prints a table row: the measured MB
that one view or crop adds, and the estimate `clipag.models.memory.plan_views` plans with.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys


def one_step(model: str, size: int, views: int, crops: int) -> None:
    import torch
    from clipag.generation.views import GuidanceViews
    from clipag.generation.generate import GenerateConfig, guidance_step, make_optimizer
    from clipag.generation.views import ViewConfig
    from clipag.models.guide import Guide
    torch.set_num_threads(1)
    guide = Guide.from_pretrained(model, device="cpu")
    text = guide.encode_text(["a red apple"])[0]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    config = GenerateConfig(size=size, views=ViewConfig(views=views, crops=crops))
    pixels = torch.rand(1, 3, size, size).requires_grad_(True)
    guidance_step(guide, pixels, text, make_optimizer(pixels, config), GuidanceViews(guide.image_size, config.views),
                  config)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)


def estimate_mb(size: int, views: int, crops: int, input_size: int) -> float:
    import torch
    from clipag.models.memory import plan_views
    plan = plan_views(size, views, crops, (input_size, input_size), torch.device("cpu"), available=2**50)
    return plan.per_item_bytes / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="clipag-emoji")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--one-step", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_step:
        model, *numbers = args.one_step
        return one_step(model, *map(int, numbers))
    from clipag.models.guide import Guide
    input_size = Guide.from_pretrained(args.model, device="cpu").image_size[0]
    print(f"| model | size | kind | measured MB per item | estimated MB per item | ratio |")
    print("|---|---:|---|---:|---:|---:|")
    for size in args.sizes:
        for kind, views, crops in (("view", args.batch, 0), ("crop", 0, args.batch)):
            out = subprocess.run([sys.executable, __file__, "--one-step", args.model, str(size), str(views), str(crops)],
                                 capture_output=True, text=True, check=True).stdout
            measured = float(out.strip().splitlines()[-1]) / args.batch
            estimated = estimate_mb(size, views, crops, input_size)
            print(f"| {args.model} | {size} | {kind} | {measured:.1f} | {estimated:.1f} | {estimated / measured:.2f} |")


if __name__ == "__main__":
    main()
