"""Training objectives: what the attack maximises and what the image tower then minimises.

  clipag  the paper: CLIP's contrastive loss over the batch's image-text pairs, frozen logit scale
  tecoa   supervised (Mao et al. 2023): cross-entropy against fixed class-prompt embeddings
  fare    unsupervised (Schlarmann et al. 2024): squared L2 to the frozen original's clean embedding
  align   PAG trained directly (Ganz, Kawar & Elad, ICML 2023): the clean contrastive loss plus the misalignment
          of each image's input gradient towards another caption with the way to that caption's picture
  clean   the contrastive loss on clean images, no attack (pretraining and ordinary fine-tuning)

Losses are written so that summing gradients over ranks gives the gradient of the global batch's loss:
per-sample losses divide by the global sample count, local contrastive losses by the world size, and a
global contrastive loss (every rank computes the same value) lets gradients flow only through rows the
rank owns.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..errors import ClipagError
from ..models.guide import Guide
from ..measure.pag import gradient_alignment
from .distributed import World, all_reduce_sum, gather_with_local_grad


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over N matched pairs of unit embeddings (N, D)."""
    logits = logit_scale * image @ text.T  # (N, N)
    labels = torch.arange(len(image), device=image.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


@dataclass
class MicroBatch:
    images: torch.Tensor  # (b, 3, S, S) in [0,1]
    captions: list[str]
    index: int  # global micro-batch index within the step, seeds the attack's random start
    targets: Optional[dict] = None  # filled by Objective.targets
    inputs: Optional[torch.Tensor] = None  # what the tower trains on: adversarial (or clean) images


class Objective:
    attacks = True

    def __init__(self, guide: Guide, world: World, negatives: str = "local", train_text: bool = False):
        self.guide = guide
        self.world = world
        self.negatives = negatives
        self.train_text = train_text

    @property
    def replicated_loss(self) -> bool:
        """True when every rank computes the same loss value (global contrastive negatives)."""
        return self.negatives == "global" and self.world.size > 1

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.guide.model.logit_scale.exp().clamp(max=100)

    def targets(self, batch: MicroBatch) -> dict:
        """What the loss compares against, computed once per micro-batch (never per PGD step)."""
        if self.train_text and not self.attacks:  # the loss encodes the text itself, with gradients
            return {}
        with torch.no_grad():  # the attack's fixed targets (with --train-text the loss re-encodes them)
            return {"text": self.guide.encode_text(batch.captions, cache=False)}

    def features(self, images: torch.Tensor, batch: MicroBatch) -> dict:
        """The trainable towers' outputs for one micro-batch (with gradients when enabled)."""
        out = {"image": self.guide.encode_image(images)}
        if self.train_text:
            out["text"] = self.guide.encode_text(batch.captions, cache=False)
        return out

    def attack_loss(self, images: torch.Tensor, batch: MicroBatch) -> torch.Tensor:
        """The loss PGD maximises on this micro-batch alone."""
        text = batch.targets["text"]
        return contrastive_loss(self.guide.encode_image(images), text, self.logit_scale.detach())

    def loss(self, features: list[dict], batches: list[MicroBatch], first_pass: bool = True) -> torch.Tensor:
        """The training loss over all micro-batches of the step (features of the others are cached).

        Accumulation evaluates this loss once per micro-batch; the logit scale, used whole in every
        evaluation, takes its gradient from the first only (and from one rank when the loss is global).
        """
        image = torch.cat([f["image"] for f in features])  # (A*b, D)
        text = torch.cat([f["text"] if "text" in f else b.targets["text"] for f, b in zip(features, batches)])
        scale = self.logit_scale if first_pass else self.logit_scale.detach()
        if not self.replicated_loss:
            return contrastive_loss(image, text, scale) / self.world.size
        image = gather_with_local_grad(image, self.world)
        text = gather_with_local_grad(text, self.world)
        scale = scale if self.world.is_main else scale.detach()
        return contrastive_loss(image, text, scale)

    def similarity(self, images: torch.Tensor, batch: MicroBatch) -> float:
        """Mean cosine similarity of images to their own captions, for the logs."""
        with torch.no_grad():
            text = batch.targets.get("text") if batch.targets else None
            text = text if text is not None else self.guide.encode_text(batch.captions, cache=False)
            return float((self.guide.encode_image(images) * text).sum(-1).mean())


class Clean(Objective):
    attacks = False


class TeCoA(Objective):
    replicated_loss = False

    def __init__(self, guide: Guide, world: World, classes: list[str], template: str = "a photo of a {}.", **_):
        super().__init__(guide, world)
        self.class_index = {name: i for i, name in enumerate(classes)}
        with torch.no_grad():
            self.class_text = guide.encode_text([template.format(c) for c in classes], cache=False)  # (K, D)

    def targets(self, batch: MicroBatch) -> dict:
        unknown = [c for c in batch.captions if c not in self.class_index]
        if unknown:
            raise ClipagError(f"TeCoA needs class names as captions; {unknown[0]!r} is not one of the "
                              f"{len(self.class_index)} classes (give them with --classes FILE)")
        labels = torch.tensor([self.class_index[c] for c in batch.captions], device=self.guide.device)
        return {"labels": labels}

    def _cross_entropy_sum(self, image: torch.Tensor, labels: torch.Tensor, scale) -> torch.Tensor:
        return F.cross_entropy(scale * image @ self.class_text.T, labels, reduction="sum")

    def attack_loss(self, images, batch):
        return self._cross_entropy_sum(self.guide.encode_image(images), batch.targets["labels"],
                                       self.logit_scale.detach())

    def loss(self, features, batches, first_pass=True):
        image = torch.cat([f["image"] for f in features])
        labels = torch.cat([b.targets["labels"] for b in batches])
        total = all_reduce_sum(float(len(labels)), self.world)
        return self._cross_entropy_sum(image, labels, self.logit_scale.detach()) / total


class FARE(Objective):
    replicated_loss = False

    def __init__(self, guide: Guide, world: World, **_):
        super().__init__(guide, world)
        self.original = copy.deepcopy(guide.model.visual).eval().requires_grad_(False)

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.guide.encode_image(images, normalize=False)  # (b, D), unnormalised as in FARE

    def targets(self, batch):
        with torch.no_grad(), self.guide.autocast():
            original = self.original(self.guide.preprocess(batch.images)).float()
        return {"original": original}

    def features(self, images, batch):
        return {"image": self._embed(images)}

    def attack_loss(self, images, batch):
        return (self._embed(images) - batch.targets["original"]).pow(2).sum()

    def loss(self, features, batches, first_pass=True):
        image = torch.cat([f["image"] for f in features])
        original = torch.cat([b.targets["original"] for b in batches])
        total = all_reduce_sum(float(len(image)), self.world)
        return (image - original).pow(2).sum() / total

    def similarity(self, images, batch):
        with torch.no_grad():
            return float(F.cosine_similarity(self._embed(images), batch.targets["original"]).mean())


class GradientAlignment(Objective):
    """Perceptually aligned gradients as a training target, after royg27/PAG-ROB (TRAIN_CIFAR10.py).

    Each image x_i of the micro-batch is paired with the next one, x_j (the batch is shuffled): the gradient
    of x_i's log-probability of caption j, among the micro-batch's captions at the frozen logit scale,
    should point from x_i to x_j, the "one image" target gradient of the paper. The loss adds
    weight * (1 - cos(grad, x_j - x_i)), averaged over the batch, to the clean contrastive loss; the official
    code's weight is its pag_coeff 1.5 times the loss's own 10. A log-probability, as in the official code,
    and not the cosine similarity: its gradient has no part common to every caption, so the term cannot be
    met by a direction that ignores the caption (fading every picture to the batch's mean, which a cosine
    version learned in a pilot). One target per image and step (the official code: 10, all of CIFAR-10's);
    batch-norm statistics frozen (below).
    """
    attacks = False
    replicated_loss = False  # the alignment term is per sample, so the contrastive part stays local too

    def __init__(self, guide: Guide, world: World, weight: float = 15.0, **_):
        super().__init__(guide, world)
        self.weight = weight

    def features(self, images, batch):
        with frozen_batch_norm(self.guide.model.visual):
            if not torch.is_grad_enabled():  # cached features of the other micro-batches: no alignment term
                return {"image": self.guide.encode_image(images)}
            partner = torch.roll(torch.arange(len(images), device=images.device), -1)  # (b,)
            cosine, image = gradient_alignment(self.guide, images, images[partner],
                                               self._log_probability(batch.targets["text"], partner),
                                               create_graph=True)
        usable = torch.tensor([batch.captions[i] != batch.captions[j] for i, j in enumerate(partner.tolist())],
                              device=images.device)  # (b,) a picture is never pushed to its own caption
        return {"image": image, "misalignment": ((1 - cosine) * usable).sum()}

    def _log_probability(self, text: torch.Tensor, target: torch.Tensor):
        """Embeddings (b, D) -> (b,) each one's log-probability of its target among the captions `text` (b, D)."""
        scale = self.logit_scale.detach()
        return lambda image: F.log_softmax(scale * image @ text.T, dim=1)[torch.arange(len(image)), target]

    def similarity(self, images, batch):
        with frozen_batch_norm(self.guide.model.visual):  # logging must not move the running statistics
            return super().similarity(images, batch)

    def loss(self, features, batches, first_pass=True):
        contrastive = super().loss(features, batches, first_pass)
        total = all_reduce_sum(float(sum(len(b.images) for b in batches)), self.world)
        misalignment = sum(f["misalignment"] for f in features if "misalignment" in f)
        return contrastive + self.weight * misalignment / total


@contextmanager
def frozen_batch_norm(module: torch.nn.Module):
    """Batch-norm layers normalise with their running statistics (eval mode) inside the block.

    In training mode the statistics couple the pictures of a batch, and the alignment term learns input
    gradients that flow through them and vanish in eval mode, where every tool uses the model: a ResNet run
    reached a training-mode alignment near 0.4 while its eval-mode alignment fell from 0.17 to 0.03."""
    layers = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training]
    for layer in layers:
        layer.eval()
    try:
        yield
    finally:
        for layer in layers:
            layer.train()


def make_objective(name: str, guide: Guide, world: World, negatives: str, train_text: bool,
                   classes: Optional[list[str]] = None, template: str = "a photo of a {}.",
                   align_weight: float = 15.0) -> Objective:
    if name == "clipag":
        return Objective(guide, world, negatives, train_text)
    if name == "clean":
        return Clean(guide, world, negatives, train_text)
    if name == "tecoa":
        if not classes:
            from open_clip import IMAGENET_CLASSNAMES
            classes = list(IMAGENET_CLASSNAMES)
        return TeCoA(guide, world, classes, template)
    if name == "fare":
        return FARE(guide, world)
    if name == "align":
        return GradientAlignment(guide, world, align_weight)
    raise ClipagError(f"unknown objective {name!r}")
