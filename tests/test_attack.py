import pytest
import torch

from clipag.attack import AttackConfig, pgd
from clipag.errors import ClipagError


def contrastive_loss(guide, captions):
    text = guide.encode_text(captions)  # (B, D), computed once, outside the attack loop

    def loss(images):
        logits = 100 * guide.encode_image(images) @ text.T  # (B, B)
        labels = torch.arange(len(captions))
        return (torch.nn.functional.cross_entropy(logits, labels) +
                torch.nn.functional.cross_entropy(logits.T, labels)) / 2
    return loss


@pytest.mark.parametrize("norm, eps", [("l2", 1.5), ("l2", 0.3), ("linf", 2.0), ("linf", 8.0)])
def test_perturbation_stays_in_the_ball_and_the_box(tiny_guide, norm, eps):
    torch.manual_seed(0)
    images = torch.rand(4, 3, 32, 32)
    images[0] = 0.0  # on the box's corner: projection must still keep [0,1]
    config = AttackConfig(norm=norm, eps=eps, steps=5)
    adversarial = pgd(contrastive_loss(tiny_guide, ["a", "b", "c", "d"]), images, config)
    delta = (adversarial - images).flatten(1)
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    if norm == "l2":
        assert delta.norm(dim=1).max() <= eps + 1e-5
    else:
        assert delta.abs().max() <= eps / 255 + 1e-6


@pytest.mark.parametrize("norm, eps", [("l2", 1.0), ("linf", 4.0)])
def test_attack_raises_the_loss_it_maximises(tiny_guide, norm, eps):
    torch.manual_seed(0)
    images = torch.rand(6, 3, 32, 32)
    loss = contrastive_loss(tiny_guide, ["a cat", "a dog", "a car", "a tree", "a cup", "a hat"])
    adversarial = pgd(loss, images, AttackConfig(norm=norm, eps=eps, steps=5))
    with torch.no_grad():
        assert loss(adversarial) > loss(images) + 0.01


def test_attack_leaves_parameters_and_their_grads_unchanged(tiny_guide):
    model = tiny_guide.model
    model.requires_grad_(True)
    model.train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen_modes = []
    loss = contrastive_loss(tiny_guide, ["a", "b"])
    pgd(lambda x: (seen_modes.append(model.training), loss(x))[1], torch.rand(2, 3, 32, 32), AttackConfig(),
        model=model)
    assert seen_modes == [False] * 5 and model.training  # eval during the attack, restored after
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())


def test_random_start_is_uniform_in_the_l2_ball():
    from clipag.attack import _random_start
    config = AttackConfig(norm="l2", eps=2.0)
    delta = _random_start(torch.zeros(4000, 1, 1, 2), config, torch.Generator().manual_seed(0))
    radii = delta.flatten(1).norm(dim=1)
    assert radii.max() <= 2.0
    # uniform in a 2-d disc: P(r < eps/2) = 1/4
    assert abs((radii < 1.0).float().mean().item() - 0.25) < 0.03


def test_default_step_size_is_two_and_a_half_eps_over_steps():
    assert AttackConfig(norm="l2", eps=1.5, steps=5).alpha == pytest.approx(0.75)
    assert AttackConfig(norm="linf", eps=2, steps=10).alpha == pytest.approx(0.5 / 255)
    assert AttackConfig(norm="linf", eps=2).radius == pytest.approx(2 / 255)


@pytest.mark.parametrize("config, message", [
    (AttackConfig(eps=0), "eps"), (AttackConfig(norm="l1"), "threat model"), (AttackConfig(steps=0), "steps")])
def test_bad_attack_settings(config, message):
    with pytest.raises(ClipagError, match=message):
        pgd(lambda x: x.sum(), torch.rand(1, 3, 4, 4), config)


def test_momentum_follows_the_renormalised_velocity_as_robustvlm_does():
    # the gradient points along x, then along y; with momentum 0.9 the second step is along
    # normalise(0.9 * (1, 0) + (0, 1)), without it along (0, 1)
    images = torch.full((1, 1, 1, 2), 0.5)
    calls = []

    def loss_fn(x):
        w = torch.tensor([1.0, 0.0]) if not calls else torch.tensor([0.0, 1.0])
        calls.append(1)
        return (x.flatten() * w).sum()

    config = AttackConfig(norm="l2", eps=10, steps=2, step_size=0.1, random_start=False, momentum=0.9)
    second = torch.tensor([0.9, 1.0]) / torch.tensor([0.9, 1.0]).norm()
    torch.testing.assert_close(pgd(loss_fn, images, config).flatten(), 0.5 + 0.1 * (torch.tensor([1.0, 0.0]) + second))
    calls.clear()
    plain = pgd(loss_fn, images, AttackConfig(norm="l2", eps=10, steps=2, step_size=0.1, random_start=False))
    torch.testing.assert_close(plain.flatten(), torch.tensor([0.6, 0.6]))
    with pytest.raises(ClipagError, match="momentum"):
        AttackConfig(momentum=1.0).validate()
