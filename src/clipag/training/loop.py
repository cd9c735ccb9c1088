"""`train()`: adversarial (or clean) fine-tuning of an OpenCLIP model, one CPU to many GPUs.

Each optimiser step takes A micro-batches on each of W ranks. For every micro-batch the objective's
targets are computed once (text features are never recomputed per PGD step), PGD makes the adversarial
images once, and then, as OpenCLIP's accumulation does, the features of all micro-batches are cached
without gradients and each micro-batch is re-encoded with gradients inside the loss of the whole
accumulated batch. A micro-batches of b therefore give exactly the gradient of one batch of A*b.
Everything random is derived from (seed, step), so a resumed run repeats an uninterrupted one.
"""
from __future__ import annotations

import csv
import itertools
import math
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from ..attack import pgd
from ..errors import ClipagError
from ..models.guide import Guide
from ..io import atomic_path, check_out_dir, environment, remove_stale_temps, save_json
from ..models.loading import LoadedModel, load_model
from ..models.memory import check_training_batch
from .augment import TrainAugment
from .checkpoint import list_checkpoints, read_resumable, resolve_resume, restore, save_checkpoint, write_final_model
from .config import UNATTACKED, TrainConfig, changed_settings, describe_changes, fixed_changes
from .distributed import World, all_reduce_sum, barrier, close_world, init_world, sum_gradients
from .lock import run_lock
from .objectives import MicroBatch, Objective, make_objective

LOG_FIELDS = ("step", "loss", "clean_similarity", "adversarial_similarity", "lr", "images_per_second",
              "skipped", "seconds")


def train(config: TrainConfig, progress: bool = True, classes: Optional[list[str]] = None) -> Path:
    """Run (or resume) training as `config` says; returns the run folder. Works under torchrun.

    Nothing is written before the cheap checks pass: the settings, --out, the data sources, and the
    checkpoint to resume from, which must be a training checkpoint of the same architecture, at most at
    `steps`, and made with the same RESUME_FIXED settings unless `allow_changed_settings` (see config;
    the other changes, such as more steps, are printed and recorded in settings-resume-N.json). The run
    holds RUN/.lock throughout (see .lock), first removes the temporary files of killed writes, and
    stops with a ClipagError at the first step whose loss or weights are not finite, saving nothing of
    that step, so the latest checkpoint stays the last good one.
    """
    from ..data.pairs import check_sources
    world = init_world(config.device)
    try:
        config.validate(world.size)
        run_dir = check_out_dir(config.out)
        check_sources(config.data)
        with run_lock(run_dir, world):
            return _train(config, world, run_dir, progress, classes)
    finally:
        close_world()


def _train(config: TrainConfig, world: World, run_dir: Path, progress: bool,
           classes: Optional[list[str]]) -> Path:
    from ..data.pairs import ImageCache, build_dataset

    removed = remove_stale_temps(run_dir) if world.is_main else 0
    resume_from = resolve_resume(run_dir, config.resume)
    if config.resume is None and list_checkpoints(run_dir):
        raise ClipagError(f"{run_dir} already holds a run's checkpoints; continue it with --resume latest, "
                          f"or choose another --out")
    state = read_resumable(resume_from) if resume_from is not None else None
    changes = _check_resume(state, resume_from, config) if state is not None else {}
    torch.manual_seed(config.seed)

    loaded = load_model(config.model)
    guide = _training_guide(loaded, config, world)
    objective = make_objective(config.objective, guide, world, config.negatives, config.text_trainable,
                               classes, config.tecoa_template, config.align_weight)
    parameters = [p for p in guide.model.parameters() if p.requires_grad]
    check_training_batch(config.micro_batch(world.size), guide.image_size, guide.model, world.device)
    optimizer = torch.optim.AdamW(_param_groups(guide.model, config.weight_decay), lr=config.lr)
    scaler = torch.amp.GradScaler(world.device.type, enabled=config.precision == "fp16")
    start_step = 0
    if state is not None:
        restore(state, resume_from, guide.model, optimizer, scaler)
        start_step = state["step"]
        del state

    dataset = build_dataset(config.data, guide.image_size[0], seed=config.seed, alpha=config.augment is not None,
                            csv_img_key=config.csv_img_key, csv_caption_key=config.csv_caption_key)
    augment = TrainAugment(config.augment) if config.augment is not None else None
    if config.cache_images:
        dataset = ImageCache(dataset)
    micro_batches = _micro_batches(dataset, config, world, start_step)
    if world.is_main:
        _announce(config, world, run_dir, start_step, resume_from, changes, removed)
    logger = _CsvLog(run_dir / "log.csv", start_step) if world.is_main else None
    bar = tqdm(range(start_step, config.steps), initial=start_step, total=config.steps, unit="step",
               desc="train", disable=not (progress and world.is_main))
    skipped = 0
    for step in bar:
        started = time.perf_counter()
        lr = _set_lr(optimizer, config, step)
        batches = [next(micro_batches) for _ in range(config.accum_steps)]
        skipped += sum(b.pop("skipped") for b in batches)
        batches = [MicroBatch(_augmented(b["images"].to(world.device), augment, config, step, b["index"]),
                              b["captions"], b["index"]) for b in batches]
        loss = _optimisation_step(objective, batches, config, step, parameters, optimizer, scaler, world)
        _check_finite(loss, parameters, step + 1, run_dir)
        seconds = time.perf_counter() - started
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            row = _log_row(objective, batches[0], step + 1, loss, lr, config.batch_size / seconds,
                           all_reduce_sum(float(skipped), world), seconds)
            if logger:
                logger.write(row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{row['images_per_second']:.1f}")
        if (step + 1) % config.save_every == 0 or step + 1 == config.steps:
            if world.is_main:
                save_checkpoint(run_dir, step + 1, guide.model, optimizer, config.to_dict(), config.keep_checkpoints,
                                scaler)
            barrier(world)
    if world.is_main:
        write_final_model(run_dir, guide.model, loaded.model_cfg, config.to_dict())
    barrier(world)
    return run_dir


def _check_resume(state: dict, path: Path, config: TrainConfig) -> dict[str, list]:
    """The settings `config` changes from the checkpoint's; a ClipagError for changes it cannot take."""
    if state["step"] > config.steps:
        raise ClipagError(f"{path} is at step {state['step']}, beyond --steps {config.steps}; "
                          f"give --steps {state['step']} or more")
    stored = state.get("settings")
    changes = changed_settings(stored, config) if isinstance(stored, dict) else {}
    fixed = fixed_changes(changes)
    if fixed and not config.allow_changed_settings:
        raise ClipagError(f"{path} was made with other settings ({describe_changes(fixed)}), so resuming would "
                          f"not continue that run; pass --allow-changed-settings to resume anyway, or start "
                          f"afresh with another --out")
    return changes


def _announce(config: TrainConfig, world: World, run_dir: Path, start_step: int, resume_from: Optional[Path],
              changes: dict, removed: int) -> None:
    """Print what the run does and write its settings (rank 0)."""
    leftovers = f"; removed {removed} temporary file(s) of killed writes" if removed else ""
    print(_summary(config, world, start_step) + leftovers, flush=True)
    settings = {**config.to_dict(), "world_size": world.size, "micro_batch": config.micro_batch(world.size),
                "start_step": start_step, **environment()}
    if start_step:
        settings["changed_settings"] = changes
        print(f"resuming {run_dir} from step {start_step} ({resume_from.name})")
    if changes:
        print(f"resuming with changed settings: {describe_changes(changes)}")
    save_json(settings, run_dir / ("settings.json" if start_step == 0 else f"settings-resume-{start_step}.json"))


def _check_finite(loss: float, parameters: list, step: int, run_dir: Path) -> None:
    """Stop (on every rank alike) at a step whose loss or updated weights are not finite, before saving."""
    weights = bool(torch.stack([torch.isfinite(p).all() for p in parameters]).all())
    if math.isfinite(loss) and weights:
        return
    saved = list_checkpoints(run_dir)
    latest = saved[-1].name if saved else "none"
    raise ClipagError(f"training diverged at step {step} (loss {loss}, weights {'' if weights else 'not '}finite); "
                      f"nothing of that step was saved and the latest checkpoint is {latest}; lower --lr, "
                      f"--weight-decay or --grad-clip, then resume or start again")


# ---------------------------------------------------------------- one optimiser step

def _optimisation_step(objective: Objective, batches: list[MicroBatch], config: TrainConfig, step: int,
                       parameters: list, optimizer, scaler, world: World) -> float:
    for batch in batches:
        batch.targets = objective.targets(batch)
        batch.inputs = _adversarial(objective, batch, config, step) if objective.attacks else batch.images
    cached = None
    if len(batches) > 1:
        with torch.no_grad():
            cached = [objective.features(b.inputs, b) for b in batches]
    optimizer.zero_grad(set_to_none=True)
    for m, batch in enumerate(batches):
        features = objective.features(batch.inputs, batch)
        all_features = [features if i == m else f for i, f in enumerate(cached)] if cached else [features]
        loss = objective.loss(all_features, batches, first_pass=m == 0)
        scaler.scale(loss).backward()
    sum_gradients(parameters, world)
    scaler.unscale_(optimizer)
    if config.grad_clip:
        torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    value = float(loss.detach())
    return value if objective.replicated_loss else all_reduce_sum(value, world)


def _adversarial(objective: Objective, batch: MicroBatch, config: TrainConfig, step: int) -> torch.Tensor:
    device = objective.guide.device
    generator = torch.Generator(device=device).manual_seed(_attack_seed(config.seed, step, batch.index))
    return pgd(lambda x: objective.attack_loss(x, batch), batch.images, config.attack,
               model=objective.guide.model.visual, generator=generator)


def _augmented(images: torch.Tensor, augment: Optional[TrainAugment], config: TrainConfig, step: int,
               index: int) -> torch.Tensor:
    """The micro-batch as the model sees it: augmented (RGBA in, RGB out) when the run asks for it."""
    if augment is None:
        return images
    seed = int(np.random.SeedSequence([config.seed, step, index, 1]).generate_state(1, np.uint64)[0] % 2 ** 63)
    return augment(images, torch.Generator(device=images.device).manual_seed(seed))


def _attack_seed(seed: int, step: int, index: int) -> int:
    return (seed * 1_000_003 + step * 10_007 + index) % (2 ** 63)


def _summary(config: TrainConfig, world: World, start_step: int) -> str:
    attack = (f"{config.attack.norm} eps {config.attack.eps}{'/255' if config.attack.norm == 'linf' else ''} "
              f"x {config.attack.steps} steps" if config.objective not in UNATTACKED else "no attack")
    return (f"training {config.model} -> {config.out}: objective {config.objective} ({attack}); "
            f"batch {config.batch_size} = {world.size} rank(s) x {config.accum_steps} micro-batch(es) x "
            f"{config.micro_batch(world.size)}; negatives {config.negatives if world.size > 1 else 'local'}; "
            f"text {'trained' if config.text_trainable else 'frozen'}; steps {start_step}..{config.steps}")


def _log_row(objective, batch, step, loss, lr, images_per_second, skipped, seconds) -> dict:
    clean = objective.similarity(batch.images, batch)
    adversarial = objective.similarity(batch.inputs, batch) if objective.attacks else clean
    return {"step": step, "loss": loss, "clean_similarity": clean, "adversarial_similarity": adversarial,
            "lr": lr, "images_per_second": images_per_second, "skipped": int(skipped), "seconds": seconds}


# ---------------------------------------------------------------- model, optimiser, schedule

def _training_guide(loaded: LoadedModel, config: TrainConfig, world: World) -> Guide:
    cfg = loaded.preprocess_cfg
    guide = Guide(loaded.model, loaded.tokenizer, image_size=cfg["size"], mean=cfg["mean"], std=cfg["std"],
                  device=str(world.device), precision=config.precision, name=config.model)
    model = guide.model
    trainable = model if config.text_trainable else model.visual
    trainable.requires_grad_(True)
    trainable.train()
    return guide


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: no decay on gains, biases and the logit scale (as CLIP and OpenCLIP train)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exempt = p.ndim < 2 or "bias" in name or ".ln" in name or "norm" in name or "logit_scale" in name
        (no_decay if exempt else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _set_lr(optimizer, config: TrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay to zero at the last step."""
    warmup = config.warmup
    if step < warmup:
        lr = config.lr * (step + 1) / warmup
    else:
        progress = (step - warmup) / max(1, config.steps - warmup)
        lr = 0.5 * config.lr * (1 + math.cos(math.pi * progress))
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


# ---------------------------------------------------------------- data

class StepBatches(Sampler):
    """This rank's micro-batches of sample indices, A per optimiser step, from `start_step` on.

    Step s takes the s-th block of `batch_size` indices of an epoch's seeded permutation; micro-batch g
    of the block (g = m * W + rank) goes to rank g % W as its m-th micro-batch. The whole order depends
    on (seed, step) only, which is what makes resumed and multi-process runs repeat single ones.
    """

    def __init__(self, size: int, config: TrainConfig, world: World, start_step: int):
        self.size, self.config, self.world, self.start_step = size, config, world, start_step
        self.per_epoch = size // config.batch_size
        if self.per_epoch == 0:
            raise ClipagError(f"the dataset has {size} samples, fewer than one batch of {config.batch_size}; "
                              f"lower --batch-size or add data")

    def __iter__(self) -> Iterator[list[int]]:
        b, A, W = self.config.micro_batch(self.world.size), self.config.accum_steps, self.world.size
        permutation, epoch_of_permutation = None, -1
        for step in itertools.count(self.start_step):  # endless: empty micro-batches are passed over
            epoch, k = divmod(step, self.per_epoch)
            if epoch != epoch_of_permutation:
                permutation = np.random.default_rng([self.config.seed, epoch]).permutation(self.size)
                epoch_of_permutation = epoch
            block = permutation[k * self.config.batch_size:(k + 1) * self.config.batch_size]
            for m in range(A):
                g = m * W + self.world.rank
                yield block[g * b:(g + 1) * b].tolist()


def _micro_batches(dataset, config: TrainConfig, world: World, start_step: int) -> Iterator[dict]:
    """Endless micro-batches for this rank, each a collate() dict plus its global index in the step."""
    from ..data.pairs import collate, is_streaming
    b, A, W = config.micro_batch(world.size), config.accum_steps, world.size
    if is_streaming(dataset):
        loader = DataLoader(dataset, batch_size=b, num_workers=config.workers, collate_fn=collate)
        stream = _endless(loader)
        for _ in range(start_step * A):  # replay the consumed part of the stream
            next(stream)
    else:
        sampler = StepBatches(len(dataset), config, world, start_step)
        stream = iter(DataLoader(dataset, batch_sampler=sampler, num_workers=config.workers, collate_fn=collate))
    m, carried = 0, 0
    for batch in stream:
        if len(batch["images"]) == 0:  # every sample unreadable: count them, take the next micro-batch
            carried += batch["skipped"]
            continue
        batch["skipped"] += carried
        carried = 0
        batch["index"] = m * W + world.rank
        m = (m + 1) % A
        yield batch


def _endless(loader: DataLoader) -> Iterator[dict]:
    """Pass after pass over a stream, each pass in its own seeded order."""
    for epoch in itertools.count():
        if hasattr(loader.dataset, "set_epoch"):
            loader.dataset.set_epoch(epoch)
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ClipagError("the data stream yielded no samples; check the --data shards")


class _CsvLog:
    """log.csv, appended to; a run starting at step S first drops the rows after S (a killed run's)."""

    def __init__(self, path: Path, start_step: int = 0):
        self.path = path
        if path.exists():
            self._drop_after(start_step)
        else:
            with path.open("w", newline="") as f:
                csv.DictWriter(f, LOG_FIELDS).writeheader()

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, LOG_FIELDS).writerow(row)

    def _drop_after(self, step: int) -> None:
        with self.path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        kept = [row for row in rows if _logged_step(row) <= step]
        if len(kept) < len(rows):
            with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, LOG_FIELDS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(kept)


def _logged_step(row: dict) -> int:
    try:
        return int(row.get("step") or 0)
    except ValueError:
        return 0
