"""Speed of generator-free generation: one guidance step, and the model's share of it.

Run from the repository root (no network needed for `:random` models):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generate.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generate.py --model ViT-B-32:random --precision bf16
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generate.py --compare-bf16-paths
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generate.py --model ViT-B-32:random --precision fp32 \
        --augment diffaugment kornia

For every model x precision x augment it prints one row:


  s/step     median seconds of one full `clipag.generation.generate.guidance_step` (views and crops, the model's
             forward and backward, gradient clipping, AdamW, dynamic thresholding), set up exactly as
             `clipag.generation.generate.generate` sets it up;
  model s    median seconds of the model part alone: `Guide.encode_image` on a ready-made batch of the
             same shape, then `torch.autograd.grad` to that batch;
  outside    1 - model s / s/step: the share of a step spent in augmentation, optimiser and thresholding;
  img/s      (views + crops) / model s: images per second of the model's input-gradient pass.

Every time is the median of --steps timed rounds after one warm-up; within a round the step and the
model part take turns, so load from other processes falls on both alike.

--compare-bf16-paths instead times forward + input gradient of one model (default ViT-B-32:random, a
batch of 16 at the model's input size) along several ways of running it in reduced precision, and
compares each input gradient with the fp32 one (max abs difference, relative to the fp32 gradient's
largest entry, and cosine), --steps rounds after one warm-up, the paths taking turns within each round;
"best img/s" (the fastest round) is the steadier number when the machine is busy.
The paths: fp32, bf16 autocast and bf16 weights with torch's own nn.MultiheadAttention, frozen
(requires_grad=False, as a guide keeps them) or not; and fp32 / bf16 autocast with the attention the
Guide uses (clipag.models.guide.ContiguousSelfAttention), which avoids torch's slow path for frozen weights.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

from clipag.generation.views import AUGMENT_CHOICES, GuidanceViews, ViewConfig
from clipag.generation.generate import GenerateConfig, guidance_step, make_optimizer
from clipag.models.guide import ContiguousSelfAttention, Guide, resolve_device

PROMPT = "a photo of a red apple"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", nargs="+", help="model references (default: clipag-tiny:random "
                        "ViT-B-32:random; with --compare-bf16-paths the first one, default ViT-B-32:random)")
    parser.add_argument("--views", type=int, default=32)
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed rounds, after one warm-up (default 5)")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--augment", nargs="+", default=["diffaugment"], choices=AUGMENT_CHOICES,
                        help="views to time (default diffaugment, the default; kornia: clipag's earlier views)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: as is)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    parser.add_argument("--compare-bf16-paths", action="store_true",
                        help="compare ways of running the model in bf16 instead of the step table")
    parser.add_argument("--batch", type=int, default=16, help="batch of --compare-bf16-paths")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*random weights.*")

    print(header(args.device))
    if args.compare_bf16_paths:
        compare_bf16_paths((args.model or ["ViT-B-32:random"])[0], args.device, args.batch, args.steps)
    else:
        models = args.model or ["clipag-tiny:random", "ViT-B-32:random"]
        rows = [bench_step(m, p, a, args) for m in models for p in args.precision for a in args.augment]
        print_table(["model", "precision", "augment", "batch", "s/step", "model s", "outside", "img/s"], rows)


# ---------------------------------------------------------------- timing

def header(device: str) -> str:
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        where = f"GPU {torch.cuda.get_device_name(resolved)}"
    else:
        where = f"CPU {_cpu_name()}"
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}"


def time_in_turns(functions: dict, repeats: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds of each function over `repeats` rounds, after one warm-up call of each.

    The functions take turns within every round, so load from other processes falls on all alike.
    """
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            sync()
            started = time.perf_counter()
            function()
            sync()
            times[name].append(time.perf_counter() - started)
    return times


# ---------------------------------------------------------------- a guidance step and its model part

def bench_step(reference: str, precision: str, augment: str, args) -> list[str]:
    guide = Guide.from_pretrained(reference, device=args.device, precision=precision)
    config = GenerateConfig(views=ViewConfig(views=args.views, crops=args.crops, augment=augment))
    text_features = guide.encode_text([PROMPT])[0]  # (D,)
    torch.manual_seed(0)

    # The full step, set up as clipag.generation.generate.generate does.
    size = guide.image_size[0]
    pixels = torch.rand(1, 3, size, size, device=guide.device).requires_grad_(True)
    optimizer = make_optimizer(pixels, config)
    make_views = GuidanceViews(guide.image_size, config.views)

    def step():
        guidance_step(guide, pixels, text_features, optimizer, make_views, config)

    # The model part alone: a batch of the same shape, made once.
    batch = make_views(pixels).detach().requires_grad_(True)  # (V + C, 3, h, w)

    def model_pass():
        loss = (1 - guide.encode_image(batch) @ text_features).mean()
        torch.autograd.grad(loss, [batch])

    times = time_in_turns({"step": step, "model": model_pass}, args.steps, guide.device)
    step_s, model_s = statistics.median(times["step"]), statistics.median(times["model"])
    n = len(batch)
    return [reference, precision, augment, str(n), f"{step_s:.3f}", f"{model_s:.3f}",
            f"{100 * (1 - model_s / step_s):.1f}%", f"{n / model_s:.1f}"]


# ---------------------------------------------------------------- ways of running bf16

def compare_bf16_paths(reference: str, device: str, batch: int, repeats: int) -> None:
    """Forward + gradient to the input only, along several precision paths; speed and agreement."""
    guide = Guide.from_pretrained(reference, device=device, precision="fp32")
    dev = guide.device
    autocast = lambda: torch.autocast(device_type=dev.type, dtype=torch.bfloat16)  # noqa: E731
    plain = contextlib.nullcontext

    def tower(dtype=torch.float32, trainable=False, contiguous=True):
        """A copy of the image tower, with torch's own attention (contiguous=False) or the Guide's."""
        module = copy.deepcopy(guide.model.visual).to(dtype).requires_grad_(trainable)
        for attention in module.modules():
            if isinstance(attention, torch.nn.MultiheadAttention):
                attention.__class__ = ContiguousSelfAttention if contiguous else torch.nn.MultiheadAttention
        return module

    # name -> (module, input dtype, context); "frozen" = weights requires_grad=False, as Guide has them
    paths = {
        "a  fp32, frozen, torch attention": (tower(contiguous=False), torch.float32, plain),
        "b  bf16 autocast, frozen, torch attention": (tower(contiguous=False), torch.float32, autocast),
        "c  bf16 autocast, weights requires_grad, torch attention": (tower(trainable=True, contiguous=False),
                                                                     torch.float32, autocast),
        "d  bf16 weights (model.to(bf16)), frozen, torch attention": (tower(torch.bfloat16, contiguous=False),
                                                                      torch.bfloat16, plain),
        "G1 fp32, frozen, Guide's contiguous attention": (tower(), torch.float32, plain),
        "G2 bf16 autocast, frozen, Guide's contiguous attention": (tower(), torch.float32, autocast),
    }

    torch.manual_seed(0)
    images = torch.rand(batch, 3, *guide.image_size, device=dev)
    x = guide.preprocess(images)  # (B, 3, h, w), normalised
    target = F.normalize(torch.randn(guide.embed_dim, device=dev), dim=0)

    def input_gradient(name: str) -> torch.Tensor:
        module, dtype, context = paths[name]
        inputs = x.to(dtype).requires_grad_(True)
        with context():
            features = module(inputs)
        loss = (F.normalize(features.float(), dim=-1) @ target).sum()
        (grad,) = torch.autograd.grad(loss, [inputs])
        return grad.float()

    grads = {name: input_gradient(name) for name in paths}
    times = time_in_turns({name: functools.partial(input_gradient, name) for name in paths}, repeats, dev)

    reference_grad = grads[next(iter(paths))]
    scale = reference_grad.abs().max()
    rows = []
    for name in paths:
        seconds = statistics.median(times[name])
        diff = (grads[name] - reference_grad).abs().max()
        cosine = F.cosine_similarity(grads[name].double().flatten(), reference_grad.double().flatten(), 0)
        rows.append([name, f"{seconds:.3f}", f"{batch / seconds:.1f}",
                     f"{batch / min(times[name]):.1f}",
                     f"{diff:.2e}", f"{diff / scale:.3f}", f"{cosine:.5f}"])
    print(f"{reference}, batch {batch} at {guide.image_size[0]}px, forward + gradient to the input only, "
          f"median and best of {repeats} rounds; frozen = weights requires_grad=False")
    print_table(["path", "s/batch", "img/s", "best img/s", "max|dg|", "max|dg|/max|g|", "cos(g, g32)"], rows)


# ---------------------------------------------------------------- output

def print_table(columns: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    for row in [columns, ["-" * w for w in widths], *rows]:
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells))


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return f"{names[0]}, {len(names)} logical cores" if names else "unknown"
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
