import json

import pytest
import torch
from PIL import Image

from clipag.generation.views import GuidanceViews, ViewConfig
from clipag.errors import ClipagError
from clipag.generation.generate import (GenerateConfig, NormalisedGradientDescent, dynamic_threshold, generate,
                             generate_to_folder)
from clipag.generation.gmm import ClassGMM
from clipag.io import save_png


def quick(**overrides):
    # No DiffAugment operations: a random 32 px model gains nothing through 25 steps of shifted views,
    # and these tests are about the ascent loop (tests/test_views.py covers the views).
    settings = dict(steps=12, init="noise", views=ViewConfig(views=4, crops=4, policy=""))
    settings.update(overrides)
    return GenerateConfig(**settings)


def test_similarity_to_the_prompt_rises(tiny_guide):
    result = generate(tiny_guide, "a red apple", seed=0, config=quick(steps=25), progress=False)
    assert result.similarity > result.initial_similarity + 0.05
    assert sum(result.history[-5:]) > sum(result.history[:5])
    assert result.image.shape == (3, 32, 32) and 0 <= result.image.min() and result.image.max() <= 1


def test_l2_optimizer_climbs_with_steps_of_the_given_length(tiny_guide):
    result = generate(tiny_guide, "a red apple", seed=0, config=quick(steps=25, optimizer="l2"),
                      progress=False)
    assert result.similarity > result.initial_similarity + 0.05
    adamw = generate(tiny_guide, "a red apple", seed=0, config=quick(steps=25), progress=False)
    assert not torch.allclose(result.image, adamw.image, atol=1e-3)


def test_normalised_gradient_step_moves_each_image_lr_per_pixel_along_its_gradient():
    pixels = torch.zeros(2, 3, 4, 4, requires_grad=True)
    pixels.grad = torch.randn(2, 3, 4, 4) * torch.tensor([1e-4, 50.0]).view(2, 1, 1, 1)
    direction = pixels.grad.clone()
    NormalisedGradientDescent([pixels], lr=0.3).step()
    moved = pixels.detach().flatten(1)  # (2, 48)
    assert torch.allclose(moved.pow(2).mean(dim=1).sqrt(), torch.tensor([0.3, 0.3]), atol=1e-6)
    assert torch.allclose(torch.cosine_similarity(moved, -direction.flatten(1)), torch.ones(2), atol=1e-6)


def test_same_seed_same_image_other_seed_other_image(tiny_guide):
    a = generate(tiny_guide, "a red apple", seed=3, config=quick(), progress=False)
    b = generate(tiny_guide, "a red apple", seed=3, config=quick(), progress=False)
    c = generate(tiny_guide, "a red apple", seed=4, config=quick(), progress=False)
    assert torch.equal(a.image, b.image)
    assert not torch.allclose(a.image, c.image, atol=1e-3)


def test_prefix_is_put_before_the_prompt(tiny_guide):
    result = generate(tiny_guide, "a cat", config=quick(steps=1, prefix="an oil painting of"), progress=False)
    assert result.prompt == "an oil painting of a cat"


def test_gmm_and_image_initialisations(tiny_guide, tmp_path):
    data = torch.rand(30, 3 * 16 * 16)
    gmm = ClassGMM.fit(data, torch.arange(30) % 3, ["x", "y", "z"], 16)
    result = generate(tiny_guide, "a dog", config=quick(steps=1, init="gmm", samples_per_class=4), gmm=gmm,
                      progress=False)
    assert result.init["init"] == "gmm" and result.init["candidates"] == 12
    assert result.init["class"] in {"x", "y", "z"}
    start = torch.zeros(3, 48, 48)
    start[0] = 1.0  # a red square
    save_png(start, tmp_path / "red.png")
    result = generate(tiny_guide, "a dog", config=quick(steps=1, init=str(tmp_path / "red.png")),
                      progress=False)
    assert result.init == {"init": "image", "path": str(tmp_path / "red.png")}


def test_missing_gmm_falls_back_to_noise_with_a_warning(tiny_guide):
    with pytest.warns(UserWarning, match="no GMM"):
        result = generate(tiny_guide, "a dog", config=quick(steps=1, init="gmm"), progress=False)
    assert result.init["init"] == "noise"


def test_outputs_settings_grid_and_trajectory_are_written(tiny_guide, tmp_path):
    config = quick(steps=4, trajectory_frames=2)
    records = generate_to_folder(tiny_guide, ["a red apple", "a dog"], [0, 1], tmp_path, config,
                                 model_reference="clipag-tiny:random", progress=False)
    assert len(records) == 4
    assert (tmp_path / "grid.png").is_file()
    for name in ("a-red-apple-seed0", "a-red-apple-seed1", "a-dog-seed0", "a-dog-seed1"):
        for suffix in (".png", ".json", ".gif", "-trajectory.png"):
            assert (tmp_path / (name + suffix)).is_file(), name + suffix
    settings = json.loads((tmp_path / "a-dog-seed1.json").read_text())
    assert settings["model"] == "clipag-tiny:random" and settings["prompt"] == "a dog" and settings["seed"] == 1
    assert settings["settings"]["steps"] == 4 and settings["settings"]["lr"] == 0.0175
    assert settings["versions"]["torch"] and settings["seconds"] > 0
    assert len(settings["similarity_history"]) == 4 and "similarity" in settings


def test_trajectory_frames_are_snapshots_not_the_live_pixels(tiny_guide):
    # On the CPU, tensor.cpu() returns the same storage: frames must be copies of each step's pixels.
    result = generate(tiny_guide, "a red apple", seed=0, config=quick(steps=12, trajectory_frames=4, keep="last"),
                      progress=False)
    middle = result.frames[1:-1]  # init first, the kept (here the last) picture last
    assert len(middle) >= 2
    assert not torch.equal(middle[0], middle[-1])
    assert not torch.equal(middle[0], result.image)


def test_small_pictures_are_saved_exact_and_shown_enlarged(tiny_guide, tmp_path):
    config = quick(steps=2, trajectory_frames=2)
    generate_to_folder(tiny_guide, ["a red apple"], [0, 1], tmp_path, config, progress=False)
    side = tiny_guide.image_size[0]
    assert side < 128 and Image.open(tmp_path / "a-red-apple-seed0.png").size == (side, side)  # the data, as made
    scale = -(-128 // side)
    assert Image.open(tmp_path / "grid.png").size[0] >= 2 * side * scale  # two seeds, enlarged for a person
    strip, gif = Image.open(tmp_path / "a-red-apple-seed0-trajectory.png"), Image.open(tmp_path / "a-red-apple-seed0.gif")
    assert strip.size[1] >= side * scale and gif.size == (side * scale, side * scale)


@pytest.mark.parametrize("config, message", [
    (quick(steps=0), "steps"),
    (quick(size=8), "image size"),
    (quick(views=ViewConfig(views=0, crops=0)), "at least one view"),
    (quick(optimizer="sgd"), "unknown optimizer"),
    (quick(optimizer="l2", weight_decay=0.1), "weight decay applies to the adamw"),
])
def test_bad_settings_are_rejected(tiny_guide, config, message):
    with pytest.raises(ClipagError, match=message):
        generate(tiny_guide, "a dog", config=config, progress=False)


def test_empty_prompt_is_rejected(tiny_guide):
    with pytest.raises(ClipagError, match="empty prompt"):
        generate(tiny_guide, "  ", config=quick(), progress=False)


def test_dynamic_threshold_only_rescales_saturated_images():
    inside = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(dynamic_threshold(inside), inside)
    saturated = torch.rand(1, 3, 8, 8) * 3 - 1  # [-1, 2]: most pixels out of range
    out = dynamic_threshold(saturated)
    assert out.min() >= 0 and out.max() <= 1
    assert (out < 1).float().mean() > 0.5  # rescaled, not merely clipped


def test_views_and_crops_come_in_one_batch_at_the_model_size():
    torch.manual_seed(0)
    views = GuidanceViews((32, 32), ViewConfig(views=5, crops=3))
    image = torch.rand(1, 3, 64, 64, requires_grad=True)
    batch = views(image)
    assert batch.shape == (8, 3, 32, 32)
    batch.sum().backward()
    assert image.grad.abs().sum() > 0


def test_bf16_autocast_generation_runs_on_cpu(tiny_model):
    from clipag.models.guide import Guide
    cfg = tiny_model.preprocess_cfg
    guide = Guide(tiny_model.model, tiny_model.tokenizer, image_size=cfg["size"], mean=cfg["mean"],
                  std=cfg["std"], device="cpu", precision="bf16")
    result = generate(guide, "a red apple", config=quick(steps=25), progress=False)
    assert result.image.dtype == torch.float32
    assert result.similarity > result.initial_similarity + 0.05


def test_outputs_are_written_atomically_with_usual_permissions(tmp_path):
    import os
    from clipag.io import atomic_path
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left behind
    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("whole")
    assert (tmp_path / "a.txt").read_text() == "whole"
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_defaults_are_the_official_notebooks():
    config = GenerateConfig()
    assert (config.steps, config.lr, config.view_weight, config.crop_weight) == (100, 0.0175, 1.0, 5.0)
    assert (config.grad_clip, config.threshold_quantile, config.keep) == (0.001, 0.95, "best")
    assert config.samples_per_class * 200 == 1000  # the notebook's 1,000 candidates over Tiny-ImageNet
    assert (config.views.views, config.views.crops, config.views.augment) == (32, 32, "diffaugment")
    assert config.views.policy == "color,translation,resize,cutout" and config.views.noise_std == 0.01
    pixels = torch.zeros(1, 3, 4, 4, requires_grad=True)
    from clipag.generation.generate import make_optimizer
    assert make_optimizer(pixels, config).defaults["weight_decay"] == 0.01


def test_cli_defaults_are_the_librarys():
    import argparse
    from clipag.cli import generate as cli
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["generate", "a red apple"])
    library = GenerateConfig()
    for name in ("steps", "optimizer", "lr", "weight_decay", "view_weight", "crop_weight", "size", "init",
                 "samples_per_class", "grad_clip", "threshold_quantile", "prefix", "keep"):
        assert getattr(args, name) == getattr(library, name), name
    for name in ("views", "crops", "augment", "policy"):
        assert getattr(args, name) == getattr(library.views, name), name
    assert args.precision == "auto"


def test_keep_best_returns_the_image_after_the_step_with_the_lowest_view_loss(tiny_guide):
    config = quick(steps=15, views=ViewConfig(views=3, crops=2))  # DiffAugment: the view loss wanders
    best = generate(tiny_guide, "a red apple", seed=0, config=config, progress=False)
    last = generate(tiny_guide, "a red apple", seed=0, config=quick(steps=15, keep="last",
                    views=ViewConfig(views=3, crops=2)), progress=False)
    assert best.history == last.history and last.kept_step == 15
    assert 1 <= best.kept_step < 15  # chosen on this seed, not the last step
    upto = generate(tiny_guide, "a red apple", seed=0, config=quick(steps=best.kept_step, keep="last",
                    views=ViewConfig(views=3, crops=2)), progress=False)
    torch.testing.assert_close(best.image, upto.image)  # the same pixels as a run stopped at that step


def test_a_named_real_model_without_its_tiny_imagenet_gmm_says_how_to_make_it(tmp_path, monkeypatch, capsys):
    from clipag.cli.main import main
    monkeypatch.setenv("CLIPAG_HOME", str(tmp_path))
    code = main(["generate", "a red apple", "--model", "clipag-vit-b-32", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "tiny-imagenet-16px.safetensors is missing" in err and "clipag gmm fit hf:" in err
    assert len(err.strip().splitlines()) == 1 and not list((tmp_path / "out").glob("*.png"))


def test_the_tiny_imagenet_gmm_in_the_model_folder_is_every_models_default(tmp_path, monkeypatch, tiny_guide):
    from clipag.models.registry import default_gmm, missing_gmm_message
    monkeypatch.setenv("CLIPAG_HOME", str(tmp_path))
    assert default_gmm("ViT-B-32:random") is None and default_gmm("clipag-emoji").is_file()
    (tmp_path / "models").mkdir()
    gmm = ClassGMM.fit(torch.rand(20, 3 * 16 * 16), torch.arange(20) % 2, ["ant", "bee"], 16)
    gmm.save(tmp_path / "models" / "tiny-imagenet-16px.safetensors")
    assert default_gmm("clipag-vit-b-32") == tmp_path / "models" / "tiny-imagenet-16px.safetensors"
    assert missing_gmm_message("clipag-vit-b-32") is None
    records = generate_to_folder(tiny_guide, ["a bee"], [0], tmp_path / "out", quick(steps=1, init="gmm"),
                                 model_reference="clipag-tiny:random", progress=False)
    assert records[0]["init"]["class"] in ("ant", "bee") and records[0]["init"]["candidates"] == 10
