import json
import os
from pathlib import Path

import open_clip
import pytest

from clipag.cli.main import build_parser
from clipag.cli.train import config_from_args

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.json"))


def test_the_paper_recipes_are_there():
    assert {p.stem for p in RECIPES} >= {"clipag-vit-b-32-l2", "ablation-vit-b-16-l2", "ablation-convnext-base-l2",
                                         "ablation-vit-b-32-linf"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_parses_validates_on_8_ranks_and_names_a_real_model(recipe):
    args = build_parser().parse_args(["train", "--config", str(recipe)])
    config = config_from_args(args)
    config.validate(world_size=8)
    assert config.micro_batch(8) * 8 * config.accum_steps == config.batch_size == 40960
    assert config.lr == 2e-5 and config.weight_decay == 1e-4 and config.accum_steps == 10
    arch, tag = config.model.split(":")
    assert open_clip.get_pretrained_cfg(arch, tag), config.model


def test_command_line_options_override_the_recipe():
    recipe = RECIPES[0]
    args = build_parser().parse_args(["train", "--config", str(recipe), "--eps", "0.5", "--steps", "3",
                                      "--data", "mine.csv"])
    config = config_from_args(args)
    assert config.attack.eps == 0.5 and config.steps == 3 and config.data == ["mine.csv"]


EMOJI_RECIPES = sorted((Path(__file__).parent.parent / "recipes" / "emoji").rglob("*.json"))


@pytest.mark.parametrize("recipe", EMOJI_RECIPES, ids=lambda p: p.stem)
def test_emoji_recipes_parse_and_name_registered_architectures(recipe):
    config = config_from_args(build_parser().parse_args(["train", "--config", str(recipe)]))
    config.validate(world_size=1)
    assert config.data == ["data/emoji/train.csv"] and config.cache_images
    if config.model.startswith("local-dir:"):  # a stage: it starts from another recipe's run
        outs = {json.loads(r.read_text())["out"] for r in EMOJI_RECIPES}
        start = json.loads(recipe.read_text()).get("_start", "")  # or a folder that a named script makes
        folder = config.model.removeprefix("local-dir:")
        assert folder in outs or (start.startswith("python scripts/") and start.endswith(f" {folder} --seed 0"))
    else:
        assert config.model.split(":")[0] in ("emoji-vit-64", "emoji-resnet-64", "emoji-resnet-32", "emoji-vit-32")
    if config.objective == "clipag":
        assert config.attack.norm == "l2" and not config.text_trainable


@pytest.mark.parametrize("recipe", EMOJI_RECIPES,
                         ids=lambda p: p.stem)
def test_emoji_recipes_parse_and_validate(recipe):
    config = config_from_args(build_parser().parse_args(["train", "--config", str(recipe)]))
    config.validate(world_size=1)
    assert config.model.split(":")[0] in ("emoji-vit-64", "emoji-resnet-64", "emoji-resnet-32", "emoji-vit-32", "local-dir")


ROBUSTVLM_RECIPES = sorted((Path(__file__).parent.parent / "recipes" / "robustvlm").glob("*.json"))


def test_the_robustvlm_recipes_are_there():
    assert {p.stem for p in ROBUSTVLM_RECIPES} == {"fare4-vit-b-32", "fare2-vit-b-32", "tecoa4-vit-b-32",
                                                  "tecoa2-vit-b-32"}


@pytest.mark.parametrize("recipe", ROBUSTVLM_RECIPES, ids=lambda p: p.stem)
def test_robustvlm_recipes_are_its_readme_commands(recipe):
    args = build_parser().parse_args(["train", "--config", str(recipe)])
    config = config_from_args(args)
    config.validate(world_size=8)
    assert config.objective == recipe.stem[:-len("4-vit-b-32")]
    assert (config.batch_size, config.steps, config.warmup_steps, config.lr, config.weight_decay) == \
        (128, 20000, 1400, 1e-5, 1e-4)
    assert config.grad_clip is None
    attack = config.attack
    assert (attack.norm, attack.steps, attack.step_size, attack.momentum) == ("linf", 10, 1, 0.9)
    assert attack.eps == int(recipe.stem[len(config.objective)]) and attack.alpha == 1 / 255
    arch, tag = config.model.split(":")
    assert open_clip.get_pretrained_cfg(arch, tag), config.model


def test_graft_keeps_the_donor_text_tower_and_starts_a_new_image_tower(tmp_path):
    import runpy

    import torch

    from clipag.models.loading import load_model
    graft = runpy.run_path(str(Path(__file__).parent.parent / "scripts" / "graft-text-tower.py"))["graft"]
    torch.manual_seed(1)
    donor = load_model("emoji-resnet-32:random").model
    torch.save(donor.state_dict(), tmp_path / "donor.pt")
    graft("emoji-resnet-32-w64", f"emoji-resnet-32:{tmp_path / 'donor.pt'}", str(tmp_path / "start"))
    start = load_model(f"local-dir:{tmp_path / 'start'}").model
    tokens = torch.randint(0, 1000, (2, 32))
    torch.testing.assert_close(start.encode_text(tokens), donor.encode_text(tokens), atol=0, rtol=0)
    assert start.visual.conv1.weight.shape[0] == 2 * donor.visual.conv1.weight.shape[0]  # the wider tower


def test_the_emoji_chain_restores_committed_stages_and_skips_what_a_later_one_replaces(tmp_path):
    import shutil
    import subprocess

    root = Path(__file__).parent.parent
    (tmp_path / "scripts").mkdir()
    shutil.copy(root / "scripts" / "train-emoji-v2.sh", tmp_path / "scripts")
    shutil.copytree(root / "recipes" / "emoji" / "v2", tmp_path / "recipes" / "emoji" / "v2")
    for name in ("clip-emoji-r32", "clipag-emoji-r32w64-eps1.0"):  # committed stages; w64's clean one is not
        kept = tmp_path / "docs" / "models" / "runs" / "v2" / name
        kept.mkdir(parents=True)
        (kept / "open_clip_model.safetensors").write_bytes(b"weights")
    run = subprocess.run(["bash", "scripts/train-emoji-v2.sh"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"], "CHAIN": "w64", "CLIPAG": "echo"}, check=True)
    lines = run.stdout.splitlines()
    assert "clipag-emoji-r32w64-eps1.0: restored from docs/models/runs/v2/clipag-emoji-r32w64-eps1.0" in lines
    assert any(line.startswith("clip-emoji-r32w64: skipped") for line in lines)  # no 47 min clean stage again
    assert not any("graft-text-tower" in line for line in lines)
    trained = [Path(line.split()[2]).stem for line in lines if line.startswith("train --config")]
    assert trained == ["clipag-emoji-r32w64-eps2.0", "clipag-emoji-r32w64-eps4.0"]
    assert (tmp_path / "runs" / "v2" / "clipag-emoji-r32w64-eps1.0" / "open_clip_model.safetensors").exists()
