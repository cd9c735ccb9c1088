"""`clipag train --augment`: the operations, their determinism, and exact resume with them."""
import json

import pytest
import torch

from clipag.cli.main import main
from clipag.errors import ClipagError
from clipag.training import TrainConfig, train
from clipag.training.augment import AugmentConfig, TrainAugment
from clipag.training.checkpoint import list_checkpoints

from test_train import assert_same_weights, config, shapes_csv, start_checkpoint, weights  # noqa: F401

NOTHING = dict(zoom_in=1.0, zoom_out=1.0, shift=0.0, rotate=0.0, background=0.0, brightness=0.0, contrast=0.0,
               saturation=0.0, blur=0.0, down_up=0.0)


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def picture(size=32):
    """Premultiplied RGBA: an opaque red left half with a green dot, the right half transparent."""
    rgba = torch.zeros(1, 4, size, size)
    rgba[:, 0, :, : size // 2] = 1
    rgba[:, 3, :, : size // 2] = 1
    rgba[:, :, 4:8, 4:8] = torch.tensor([0.0, 1.0, 0.0, 1.0]).view(1, 4, 1, 1)
    return rgba


def test_with_every_operation_off_the_picture_is_composited_on_white_unchanged():
    out = TrainAugment(AugmentConfig(**NOTHING))(picture(), seeded(0))
    expected = picture()[:, :3] + (1 - picture()[:, 3:])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)  # and no flip: the dot stays on the left


def test_the_same_generator_seed_gives_the_same_batch_and_others_differ():
    batch = picture().repeat(6, 1, 1, 1)
    augment = TrainAugment(AugmentConfig())
    first, again, other = augment(batch, seeded(1)), augment(batch, seeded(1)), augment(batch, seeded(2))
    assert first.shape == (6, 3, 32, 32) and 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not torch.equal(first[0], first[1])  # each picture draws its own parameters


def test_backgrounds_fill_the_transparent_half():
    batch = picture().repeat(64, 1, 1, 1)
    white = TrainAugment(AugmentConfig(**NOTHING))(batch, seeded(0))[:, :, :, -4:]
    assert torch.allclose(white, torch.ones_like(white))
    coloured = TrainAugment(AugmentConfig(**{**NOTHING, "background": 1.0}))(batch, seeded(0))[:, :, :, -4:]
    spread = coloured.flatten(2).std(dim=2).mean(dim=1)  # (64,) 0 for a solid colour, > 0 for a gradient
    assert (coloured < 0.95).any(dim=(1, 2, 3)).float().mean() > 0.9  # almost never white
    assert 0.25 < (spread > 1e-3).float().mean() < 0.75  # about half solid, half gradient


def test_colour_changes_keep_the_hue():
    red = torch.zeros(32, 4, 8, 8)
    red[:, 0], red[:, 1:3], red[:, 3] = 0.8, 0.1, 1.0
    colour = dict(NOTHING, brightness=0.2, contrast=0.3, saturation=0.4)
    out = TrainAugment(AugmentConfig(**colour))(red, seeded(0))
    assert (out[:, 0] > out[:, 1]).all()  # still red
    torch.testing.assert_close(out[:, 1], out[:, 2])  # green = blue: no hue shift
    assert out[:, 0].std() > 0.02  # and the colours did change


def test_zooming_out_shows_the_background_and_flip_is_an_option():
    black = torch.zeros(8, 4, 32, 32)
    black[:, 3] = 1  # an opaque black photo
    out = TrainAugment(AugmentConfig(**{**NOTHING, "zoom_out": 0.5}))(black, seeded(0))
    assert (out[:, :, 16, 16] == 0).all() and (out[:, :, 0, 0] == 1).all()  # shrunk onto white
    flipped = TrainAugment(AugmentConfig(**{**NOTHING, "flip": True}))(picture().repeat(16, 1, 1, 1), seeded(0))
    dot_right = flipped[:, 0, 4:8, -8:-4].mean(dim=(1, 2)) < 0.1  # the dot (no red) mirrored to the right
    assert 0 < dot_right.sum() < 16


@pytest.mark.parametrize("bad, message", [({"zoom_in": 0.5}, "zoom_in"), ({"blur": 2.0}, "blur"),
                                          ({"rotate": -1.0}, "rotate"), ({"contrast": float("nan")}, "finite")])
def test_bad_augment_settings_are_one_line(bad, message):
    with pytest.raises(ClipagError, match=message):
        TrainAugment(AugmentConfig(**bad))


def test_a_recipe_sets_operations_and_true_means_the_defaults(tmp_path):
    base = dict(model="m", data=["d"], out="o")
    assert TrainConfig.from_dict({**base, "augment": True}).augment == AugmentConfig()
    assert TrainConfig.from_dict({**base, "augment": {"rotate": 5.0}}).augment.rotate == 5.0
    assert TrainConfig.from_dict(base).augment is None
    with pytest.raises(ClipagError, match="unknown augment settings"):
        TrainConfig.from_dict({**base, "augment": {"hue": 0.1}})


def test_augmented_training_resumes_bit_identically(tmp_path, shapes_csv, start_checkpoint):  # noqa: F811
    augment = AugmentConfig()
    whole = train(config(start_checkpoint, shapes_csv, tmp_path / "whole", augment=augment), progress=False)
    plain = train(config(start_checkpoint, shapes_csv, tmp_path / "plain"), progress=False)
    killed = train(config(start_checkpoint, shapes_csv, tmp_path / "killed", augment=augment), progress=False)
    list_checkpoints(killed)[-1].unlink()
    (killed / "open_clip_model.safetensors").unlink()
    train(config(start_checkpoint, shapes_csv, killed, augment=augment, resume="latest"), progress=False)
    assert_same_weights(weights(whole), weights(killed), atol=0)
    differs = any(not torch.equal(a, b) for a, b in zip(weights(whole).values(), weights(plain).values()))
    assert differs  # the augmentation changed what the model saw
    settings = json.loads((whole / "settings.json").read_text())
    assert settings["augment"]["rotate"] == 15.0 and settings["augment"]["flip"] is False


def test_the_command_turns_augmentation_on_and_a_changed_one_is_refused_on_resume(tmp_path, shapes_csv,  # noqa: F811
                                                                                   start_checkpoint, capsys):
    out = tmp_path / "run"
    common = ["train", "--model", start_checkpoint, "--data", str(shapes_csv), "--out", str(out), "--batch-size",
              "8", "--steps", "2", "--save-every", "1", "--workers", "0", "--attack-steps", "1", "--quiet"]
    assert main([*common, "--augment"]) == 0
    assert json.loads((out / "settings.json").read_text())["augment"]["zoom_in"] == 1.5
    assert main([*common, "--steps", "3", "--resume", "latest"]) == 2  # without --augment now
    assert "augment" in capsys.readouterr().err
