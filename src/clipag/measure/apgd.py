"""APGD-CE (Croce & Hein, ICML 2020: the step-size-free PGD of AutoAttack), for `clipag robustness`.

Written here because the maintained PyTorch packages that carry it cannot be installed cleanly:
torchattacks pins requests~=2.25.1 (pip downgrades requests and idna), and AutoAttack itself is not on
PyPI. It follows the reference algorithm step for step, including its conventions (the checkpoints at
22% of the steps then shrinking by 3% to a 6% minimum; momentum 0.75; the step halved and the search
restarted from the best point on oscillation or stagnation; the loss before the first step counted as
0), and tests/test_apgd.py checks that it returns the same images as torchattacks' APGD from the same
seed, so that a robustness claim still rests on an attack whose design its authors did not choose.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Logits = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) in [0,1] -> (B, classes)


def apgd(logits_of: Logits, images: torch.Tensor, labels: torch.Tensor, norm: str = "l2", eps: float = 0.5,
         steps: int = 10, seed: int = 0, rho: float = 0.75) -> torch.Tensor:
    """Adversarial images within `eps` (L2 or L-inf, pixel units) that maximise the cross-entropy of
    `labels`: for each image the attack fools, its fooling point; the others come back unchanged."""
    if norm not in ("l2", "linf"):
        raise ValueError(f"norm must be l2 or linf, got {norm!r}")
    images, labels = images.detach(), labels.detach()
    with torch.no_grad():
        correct = logits_of(images).argmax(dim=1) == labels  # (B,)
    adversarial = images.clone()
    torch.manual_seed(seed)  # the random start is drawn for the images that are still correct
    todo = correct.nonzero().flatten()
    if len(todo):
        fooled, found = _single_run(logits_of, images[todo], labels[todo], norm, eps, steps, rho)
        adversarial[todo[fooled]] = found[fooled]
    return adversarial


def _single_run(logits_of: Logits, x: torch.Tensor, y: torch.Tensor, norm: str, eps: float, steps: int,
                rho: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(fooled (B,) bool, the last fooling point of each image (B, 3, H, W)) for one random restart."""
    n = len(x)
    first_check, min_check, shrink = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    x_adv = _random_start(x, norm, eps)
    loss, grad, still_correct = _loss_and_grad(logits_of, x_adv, y)
    fooling = x_adv.clone()  # (B, 3, H, W): the latest misclassified iterate of each image
    best, best_grad, best_loss = x_adv.clone(), grad.clone(), loss.clone()
    losses = torch.zeros(steps, n)  # (steps, B): the loss after each step
    step_size = torch.full((n, 1, 1, 1), 2.0 * eps, device=x.device)
    previous = x_adv.clone()
    since_check, window = 0, first_check
    last_check_loss, reduced_last = best_loss.clone(), torch.ones(n, dtype=torch.bool)
    for i in range(steps):
        momentum = 0.75 if i > 0 else 1.0
        x_adv, previous = _step(x, x_adv, previous, grad, step_size, momentum, norm, eps), x_adv
        loss, grad, correct = _loss_and_grad(logits_of, x_adv, y)
        still_correct &= correct
        fooling[~correct] = x_adv[~correct]
        losses[i] = loss.cpu()
        improved = loss > best_loss
        best[improved], best_grad[improved], best_loss[improved] = x_adv[improved], grad[improved], loss[improved]
        since_check += 1
        if since_check < window:
            continue
        # at a checkpoint: halve the step where the loss oscillated or the best loss stalled
        rises = sum((losses[i - j] > losses[i - j - 1]) for j in range(window))  # index -1 reads a 0 row
        stalled = ~reduced_last & (last_check_loss.cpu() >= best_loss.cpu())
        halve = (rises <= window * rho) | stalled  # (B,)
        reduced_last, last_check_loss = halve.clone(), best_loss.clone()
        if halve.any():
            where = halve.to(x.device)
            step_size[where] /= 2.0
            x_adv[where], grad[where] = best[where], best_grad[where]
        since_check, window = 0, max(window - shrink, min_check)
    return ~still_correct, fooling


def _random_start(x: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    if norm == "linf":
        t = 2 * torch.rand(x.shape).to(x.device) - 1
        start = x + eps * t / t.flatten(1).abs().max(dim=1)[0].view(-1, 1, 1, 1)
    else:
        t = torch.randn(x.shape).to(x.device)
        start = x + eps * t / (_norm(t) + 1e-12)
    return start.clamp(0.0, 1.0)


def _step(x, x_adv, previous, grad, step_size, momentum, norm, eps):
    """A projected ascent step, then the momentum mix with the previous move, projected again."""
    if norm == "linf":
        z = _project_linf(x, x_adv + step_size * grad.sign(), eps)
        return _project_linf(x, x_adv + (z - x_adv) * momentum + (x_adv - previous) * (1 - momentum), eps)
    z = x_adv + step_size * grad / (_norm(grad) + 1e-12)
    z = _project_l2(x, z, eps, 0.0)
    mixed = x_adv + (z - x_adv) * momentum + (x_adv - previous) * (1 - momentum)
    return _project_l2(x, mixed, eps, 1e-12)


def _project_linf(x, z, eps):
    return torch.min(torch.max(z, x - eps), x + eps).clamp(0.0, 1.0)


def _project_l2(x, z, eps, tiny):
    delta = z - x
    length = _norm(delta)  # (B, 1, 1, 1)
    return (x + delta / (length + 1e-12) * torch.clamp(length + tiny, max=eps)).clamp(0.0, 1.0)


def _norm(t: torch.Tensor) -> torch.Tensor:
    return (t ** 2).sum(dim=(1, 2, 3), keepdim=True).sqrt()


def _loss_and_grad(logits_of: Logits, x_adv: torch.Tensor, y: torch.Tensor):
    """(per-image cross-entropy (B,), its gradient (B, 3, H, W), still correct (B,))."""
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = logits_of(x_adv)
        loss = F.cross_entropy(logits, y, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), [x_adv])
    return loss.detach(), grad.detach(), (logits.detach().argmax(dim=1) == y)
