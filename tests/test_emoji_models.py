"""The models and GMM that ship in the package: they load offline, and they are what generate uses."""
import json

import pytest
import torch

from clipag.cli.main import main
from clipag.generation.gmm import ClassGMM
from clipag.models.guide import Guide
from clipag.models.registry import default_gmm, get_spec, spec_file

SHIPPED = {"clip-emoji": 32, "clipag-emoji": 32, "emoji-judge": 64}  # name -> input side


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_loads_and_knows_emoji(name):
    spec = get_spec(name)
    assert spec.bundled and spec_file(spec).is_file()
    guide = Guide.from_pretrained(name, device="cpu")
    assert guide.image_size == (SHIPPED[name],) * 2
    assert all(p.dtype == torch.float32 for p in guide.model.parameters())  # fp16 file, fp32 model
    # trained, not random: matching names are far more similar than a name and its shuffle
    names = ["red apple", "grinning face", "fire", "dog face", "rocket", "snowman"]
    text = guide.encode_text(names)  # (6, D)
    assert torch.allclose(text.norm(dim=1), torch.ones(6), atol=1e-4)
    assert (text @ text.T).fill_diagonal_(0).max() < 0.99


def test_shipped_gmm_covers_the_subcategories():
    gmm = ClassGMM.load(default_gmm("clipag-emoji"))
    assert len(gmm.classes) == 99 and "food-fruit" in gmm.classes
    samples, classes = gmm.sample(2, torch.Generator().manual_seed(0))
    assert samples.shape == (198, 3, 16, 16) and 0 <= samples.min() and samples.max() <= 1


def test_generate_defaults_to_clipag_emoji_and_its_gmm(tmp_path, capsys):
    code = main(["generate", "a red apple", "--steps", "2", "--views", "2", "--crops", "2",
                 "--samples-per-class", "1", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    record = json.loads((tmp_path / "a-red-apple-seed0.json").read_text())
    assert record["model"] == "clipag-emoji"
    assert record["init"]["init"] == "gmm" and record["settings"]["gmm_path"].endswith(".safetensors")


def test_the_shipped_weights_carry_their_attribution_and_the_package_its_version():
    from importlib.metadata import version
    from importlib.resources import files
    import clipag
    for name in SHIPPED:
        text = files("clipag").joinpath(f"assets/models/{name}/LICENSES.md").read_text()
        assert "CC-BY 4.0" in text and "Twemoji" in text and "Apache License 2.0" in text
    assert clipag.__version__ == version("clipag")


def test_shipped_clipag_emoji_is_the_robust_one():
    """An L2 PGD of radius 2 (32 px) that pushes each picture's embedding away from its clean one moves
    clip-emoji's far more than clipag-emoji's: the adversarially trained weights ship under the right name."""
    from clipag.attack import AttackConfig, pgd
    pictures, _ = ClassGMM.load(default_gmm("clipag-emoji")).sample(1, torch.Generator().manual_seed(0))
    pictures = torch.nn.functional.interpolate(pictures[::12], size=32, mode="bilinear").clamp(0, 1)  # (9, 3, 32, 32)
    kept = {}
    for name in ("clip-emoji", "clipag-emoji"):
        guide = Guide.from_pretrained(name, device="cpu")
        with torch.no_grad():
            clean = guide.encode_image(pictures)  # (9, D)
        away = lambda x: -(guide.encode_image(x) * clean).sum()
        attacked = pgd(away, pictures, AttackConfig(norm="l2", eps=2.0, steps=5), model=guide.model)
        with torch.no_grad():
            kept[name] = (guide.encode_image(attacked) * clean).sum(dim=1).mean().item()
    assert kept["clipag-emoji"] > kept["clip-emoji"] + 0.2, kept
