"""Speed of generator-free generation: one guidance step, and the model's share of it.

Run from the repository root (no network needed for `:random` models):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generate.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generate.py --model ViT-B-32:random --precision bf16
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generate.py --compare-bf16-paths

For every model x precision it prints one row:

  s/step     median seconds of one full `clipag.generate.guidance_step` (views and crops, the model's
             forward and backward, gradient clipping, AdamW, dynamic thresholding), set up exactly as
             `clipag.generate.generate` sets it up;
  model s    median seconds of the model part alone: `Guide.encode_image` on a ready-made batch of the
             same shape, then `torch.autograd.grad` to that batch;
  outside    1 - model s / s/step: the share of a step spent in augmentation, optimiser and thresholding;
  img/s      (views + crops) / model s: images per second of the model's input-gradient pass.

Every time is the median of --steps timed repeats after one warm-up.

--compare-bf16-paths instead times forward + input gradient of one model (default ViT-B-32:random, a
batch of 16 at the model's input size) along several ways of running it in reduced precision, and
compares each input gradient with the fp32 one (max abs difference, relative to the fp32 gradient's
largest entry, and cosine), --steps rounds after one warm-up. The paths run in turns, round after round,
so a busy machine slows all alike; "best img/s" (the fastest round) is the steadier number when it is busy.
The paths: fp32; bf16 autocast; the weights cast to bf16 for good; each with the weights frozen
(requires_grad=False, as Guide keeps them) and not; and, on CPU, oneDNN's bf16 math for fp32 matmuls.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

from clipag.augment import GuidanceViews, ViewConfig
from clipag.generate import GenerateConfig, guidance_step
from clipag.guide import Guide, resolve_device

PROMPT = "a photo of a red apple"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", nargs="+", help="model references (default: clipag-tiny:random "
                        "ViT-B-32:random; with --compare-bf16-paths the first one, default ViT-B-32:random)")
    parser.add_argument("--views", type=int, default=32)
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed repeats, after one warm-up")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
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
        rows = [bench_step(m, p, args) for m in models for p in args.precision]
        print_table(["model", "precision", "batch", "s/step", "model s", "outside", "img/s"], rows)


# ---------------------------------------------------------------- timing

def header(device: str) -> str:
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        where = f"GPU {torch.cuda.get_device_name(resolved)}"
    else:
        where = f"CPU {_cpu_name()}"
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}"


def timed(fn, repeats: int, device: torch.device) -> float:
    """Median seconds of fn() over `repeats` calls, after one warm-up call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# ---------------------------------------------------------------- a guidance step and its model part

def bench_step(reference: str, precision: str, args) -> list[str]:
    guide = Guide.from_pretrained(reference, device=args.device, precision=precision)
    config = GenerateConfig(views=ViewConfig(views=args.views, crops=args.crops))
    text_features = guide.encode_text([PROMPT])[0]  # (D,)
    torch.manual_seed(0)

    # The full step, set up as clipag.generate.generate does.
    size = guide.image_size[0]
    pixels = torch.rand(1, 3, size, size, device=guide.device).requires_grad_(True)
    optimizer = torch.optim.AdamW([pixels], lr=config.lr, weight_decay=config.weight_decay)
    make_views = GuidanceViews(guide.image_size, config.views)
    step_s = timed(lambda: guidance_step(guide, pixels, text_features, optimizer, make_views, config),
                   args.steps, guide.device)

    # The model part alone: the same batch shape, made once.
    batch = make_views(pixels).detach().requires_grad_(True)  # (V + C, 3, h, w)

    def model_pass():
        loss = (1 - guide.encode_image(batch) @ text_features).mean()
        torch.autograd.grad(loss, [batch])

    model_s = timed(model_pass, args.steps, guide.device)
    n = len(batch)
    return [reference, precision, str(n), f"{step_s:.3f}", f"{model_s:.3f}",
            f"{100 * (1 - model_s / step_s):.1f}%", f"{n / model_s:.1f}"]


# ---------------------------------------------------------------- ways of running bf16

def compare_bf16_paths(reference: str, device: str, batch: int, repeats: int) -> None:
    """Forward + gradient to the input only, along several precision paths; speed and agreement."""
    guide = Guide.from_pretrained(reference, device=device, precision="fp32")
    dev = guide.device
    autocast = lambda: torch.autocast(device_type=dev.type, dtype=torch.bfloat16)  # noqa: E731
    plain = contextlib.nullcontext

    def tower(dtype=torch.float32, trainable="none"):
        """A copy of the image tower; trainable: which weights get requires_grad=True."""
        module = copy.deepcopy(guide.model.visual).to(dtype).requires_grad_(trainable == "all")
        if trainable == "in_proj":
            for attention in module.modules():
                if isinstance(attention, torch.nn.MultiheadAttention):
                    attention.in_proj_weight.requires_grad_(True)
        return module

    @contextlib.contextmanager
    def onednn_bf16_math():  # fp32 tensors; lets oneDNN run fp32 matmuls in bf16 (CPU only)
        old = torch.backends.mkldnn.matmul.fp32_precision
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
        try:
            yield
        finally:
            torch.backends.mkldnn.matmul.fp32_precision = old

    frozen, trainable, bf16_frozen = tower(), tower(trainable="all"), tower(torch.bfloat16)
    # name -> (module, input dtype, context); "frozen" = weights requires_grad=False, as Guide has them
    paths = {
        "a  fp32, weights frozen": (frozen, torch.float32, plain),
        "a2 fp32, weights requires_grad": (trainable, torch.float32, plain),
        "b  bf16 autocast, weights frozen": (frozen, torch.float32, autocast),
        "c  bf16 autocast, weights requires_grad": (trainable, torch.float32, autocast),
        "c2 bf16 autocast, only attn in_proj requires_grad": (tower(trainable="in_proj"), torch.float32,
                                                              autocast),
        "d  bf16 weights (model.to(bf16)), frozen": (bf16_frozen, torch.bfloat16, plain),
        "d2 bf16 weights, requires_grad": (tower(torch.bfloat16, "all"), torch.bfloat16, plain),
    }
    if dev.type == "cpu":
        paths["e  fp32, requires_grad, oneDNN bf16 matmul math"] = (trainable, torch.float32,
                                                                    onednn_bf16_math)

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

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    grads = {name: input_gradient(name) for name in paths}  # also the warm-up
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):  # round-robin, so background load hits every path alike
        for name in paths:
            sync()
            started = time.perf_counter()
            input_gradient(name)
            sync()
            times[name].append(time.perf_counter() - started)

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
