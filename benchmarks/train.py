"""Speed of one adversarial training step (objective clipag), and of the same step written naively.

Run from the repository root (no network needed for `:random` models):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train.py
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/train.py --model ViT-B-32:random --precision bf16 --steps 5

Defaults take about 3 minutes on 2 idle CPU cores (ViT-B-32 at 224 px dominates). For every model it
times one optimiser step on one micro-batch of --batch-size random images in [0,1] at the model's input
size with random short captions (one process, no accumulation), along these paths:

  clipag P   `clipag.training.loop._optimisation_step` as `train()` runs it, at each --precision P:
             guide from `_training_guide` (image tower trainable, text tower and logit scale frozen),
             `make_objective("clipag")`, AdamW over `_param_groups`, grad clipping 1.0, and TrainConfig's
             default attack: L2 PGD, eps 1.5, 5 steps, random start.
  naive fp32 the same step written the obvious way: each PGD step tokenizes and encodes the captions
             again and calls loss.backward() with the image tower's weights requiring grad (so the attack
             also computes weight gradients, zeroed before the update); then the same update.

Columns:
  s/step     median seconds of the whole step, --steps rounds after one warm-up, the paths taking turns
             within a round so that load from other processes falls on all alike; img/s = batch / s/step;
  attack     median seconds inside the attack over s/step. clipag: the `_adversarial` call (random start
             + PGD) inside the real step, timed by wrapping `loop._adversarial` during it; naive: its PGD;
  update     1 - attack: text targets, image features, loss, backward, clipping and the optimiser;
  vs naive   img/s over the naive fp32 step's img/s (clipag fp32 vs naive fp32 is like for like).
"""
from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time
import warnings

import torch

from clipag.attack import AttackConfig, _project, _random_start
from clipag.models.guide import resolve_device
from clipag.models.loading import load_model
from clipag.training import loop
from clipag.training.config import TrainConfig
from clipag.training.distributed import World
from clipag.training.objectives import MicroBatch, contrastive_loss, make_objective
from generate import header, print_table  # benchmarks/generate.py, beside this file

WORDS = "a photo of the red blue small big old dog cat car tree house bird boat on in near with".split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", nargs="+", default=["clipag-tiny:random", "ViT-B-32:random"])
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--batch-size", type=int, default=16, help="images a step, all models (default 16)")
    parser.add_argument("--steps", type=int, default=3, help="timed rounds, after one warm-up (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: as is)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*random weights.*")

    print(header(args.device))
    a = AttackConfig()  # TrainConfig's default attack
    print(f"batch {args.batch_size}, {a.norm} PGD eps {a.eps} x {a.steps} steps, objective clipag, "
          f"text tower frozen; median of {args.steps} rounds after one warm-up")
    rows = [row for reference in args.model for row in bench_model(reference, args)]
    print_table(["model", "step", "s/step", "img/s", "attack", "update", "vs naive"], rows)


def bench_model(reference: str, args) -> list[list[str]]:
    world = World(device=resolve_device(args.device))
    steps = {f"clipag {p}": clipag_step(reference, p, args.batch_size, world) for p in args.precision}
    steps["naive fp32"] = naive_step(reference, args.batch_size, world)
    times = {name: [] for name in steps}  # name -> [(step s, attack s)] per timed round
    for round_ in range(args.steps + 1):
        for name, step in steps.items():
            result = step()
            if round_:
                times[name].append(result)
    median = {name: [statistics.median(column) for column in zip(*rounds)] for name, rounds in times.items()}
    naive_rate = args.batch_size / median["naive fp32"][0]
    return [[reference, name, f"{step_s:.3f}", f"{args.batch_size / step_s:.1f}",
             f"{100 * attack_s / step_s:.1f}%", f"{100 * (1 - attack_s / step_s):.1f}%",
             f"{args.batch_size / step_s / naive_rate:.2f}x"] for name, (step_s, attack_s) in median.items()]


# ---------------------------------------------------------------- the two steps

def setup(reference: str, precision: str, batch: int, world: World):
    """Config, guide (via train()'s `_training_guide`), AdamW, and the same random batch for every path."""
    config = TrainConfig(model=reference, data=["unused"], out="unused", batch_size=batch,
                         precision=precision, device=str(world.device))
    guide = loop._training_guide(load_model(reference), config, world)
    optimizer = torch.optim.AdamW(loop._param_groups(guide.model, config.weight_decay), lr=config.lr)
    size = guide.image_size[0]
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(world.device)
    words = random.Random(0)
    captions = [" ".join(words.choices(WORDS, k=words.randint(3, 8))) for _ in range(batch)]
    return config, guide, optimizer, images, captions


def clipag_step(reference: str, precision: str, batch: int, world: World):
    config, guide, optimizer, images, captions = setup(reference, precision, batch, world)
    objective = make_objective("clipag", guide, world, config.negatives, config.text_trainable)
    parameters = [p for p in guide.model.parameters() if p.requires_grad]
    scaler = torch.amp.GradScaler(world.device.type, enabled=precision == "fp16")
    counter, attack_seconds, adversarial = itertools.count(), [], loop._adversarial

    def timed_adversarial(*args):
        started = clock(world)
        x = adversarial(*args)
        attack_seconds.append(clock(world) - started)
        return x

    def step() -> tuple[float, float]:
        loop._adversarial = timed_adversarial
        try:
            started = clock(world)
            loop._optimisation_step(objective, [MicroBatch(images, captions, 0)], config, next(counter),
                                    parameters, optimizer, scaler, world)
            return clock(world) - started, attack_seconds[-1]
        finally:
            loop._adversarial = adversarial

    return step


def naive_step(reference: str, batch: int, world: World):
    config, guide, optimizer, images, captions = setup(reference, "fp32", batch, world)
    attack, parameters = config.attack, list(guide.model.visual.parameters())  # requires_grad=True

    def loss_of(x: torch.Tensor) -> torch.Tensor:  # the captions tokenized and encoded on every call
        text = guide.encode_text(captions, cache=False)
        return contrastive_loss(guide.encode_image(x), text, guide.model.logit_scale.exp().clamp(max=100))

    def step() -> tuple[float, float]:
        started = clock(world)
        delta = _project(images, _random_start(images, attack, None), attack)
        for _ in range(attack.steps):
            delta.requires_grad_(True)
            loss_of(images + delta).backward()  # fills every image-tower weight's .grad too
            grad = delta.grad / delta.grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta = _project(images, delta.detach() + attack.alpha * grad, attack)
        adversarial = (images + delta).detach()
        attacked = clock(world)
        optimizer.zero_grad(set_to_none=True)  # drop the attack's weight gradients
        loss_of(adversarial).backward()
        torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        return clock(world) - started, attacked - started

    return step


def clock(world: World) -> float:
    if world.device.type == "cuda":
        torch.cuda.synchronize(world.device)
    return time.perf_counter()


if __name__ == "__main__":
    main()
