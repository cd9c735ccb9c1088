"""PGD in pixel space: the attack that training, evaluation and explanation share.

Images live in [0,1], before any mean/std normalisation (the guide applies that inside), so eps means
the same thing for every model. Threat models:
  l2    eps in [0,1] pixel units over the whole image (the paper: 1.5 at 224 px)
  linf  eps in 1/255 units (e.g. 2 means 2/255)
The step size defaults to 2.5 * eps / steps. The start is random inside the ball (uniform in the L2 ball),
each step moves along the normalised gradient (L2) or its sign (L-inf), then projects exactly onto the
ball and clamps to [0,1]. With `momentum` (RobustVLM's PGD, which its FARE and TeCoA recipes train with,
uses 0.9) the step follows a velocity, momentum * velocity + the normalised gradient, normalised again. Gradients are taken with torch.autograd.grad with respect to the perturbation
only, with the model in eval mode, so nothing reaches the parameters or their .grad.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Optional

import torch

from .configs import NORMS, AttackConfig


def pgd(loss_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, config: AttackConfig,
        model: Optional[torch.nn.Module] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Maximise `loss_fn(adversarial_images)` (a scalar) within the eps-ball around `images` (B, 3, H, W).

    `model`, when given, is put in eval mode for the attack and restored afterwards. Returns detached
    adversarial images in [0,1].
    """
    config.validate()
    images = images.detach()
    delta = _random_start(images, config, generator) if config.random_start else torch.zeros_like(images)
    delta = _project(images, delta, config)
    velocity = torch.zeros_like(images)
    with _eval_mode(model):
        for _ in range(config.steps):
            delta.requires_grad_(True)
            loss = loss_fn(images + delta)
            (grad,) = torch.autograd.grad(loss, [delta])
            direction = _ascent_direction(grad, config)
            if config.momentum:  # the velocity is kept normalised, as RobustVLM keeps it
                velocity = _ascent_direction(config.momentum * velocity + direction, config)
                direction = velocity
            delta = _project(images, delta.detach() + config.alpha * direction, config)
    return (images + delta).detach()


def _ascent_direction(grad: torch.Tensor, config: AttackConfig) -> torch.Tensor:
    if config.norm == "linf":
        return grad.sign()
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
    return grad / norms


def _project(images: torch.Tensor, delta: torch.Tensor, config: AttackConfig) -> torch.Tensor:
    """Onto the eps-ball, then onto the [0,1] box (clamping shrinks a perturbation, never grows it)."""
    if config.norm == "linf":
        delta = delta.clamp(-config.radius, config.radius)
    else:
        norms = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
        delta = delta * (config.radius / norms.clamp_min(1e-12)).clamp(max=1.0)
    return (images + delta).clamp(0, 1) - images


def _random_start(images: torch.Tensor, config: AttackConfig, generator: Optional[torch.Generator]) -> torch.Tensor:
    shape, device = images.shape, images.device
    if config.norm == "linf":
        uniform = torch.rand(shape, generator=generator, device=device)
        return (uniform * 2 - 1) * config.radius
    direction = torch.randn(shape, generator=generator, device=device)
    direction = direction / direction.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    dim = images[0].numel()
    radius = torch.rand(shape[0], generator=generator, device=device) ** (1.0 / dim) * config.radius
    return direction * radius.view(-1, 1, 1, 1)  # uniform in the L2 ball


@contextlib.contextmanager
def _eval_mode(model: Optional[torch.nn.Module]):
    if model is None:
        yield
        return
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
