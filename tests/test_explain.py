"""Grad-CAM on tiny ViT and ResNet CLIPs, the negation attack, and the alignment measures."""
import numpy as np
import pytest
import torch

from clipag.explain import (NEGATION_ATTACK, energy_in_box, explain, negation_attack, pointing_game,
                            token_reshape)
from clipag.guide import Guide


@pytest.fixture
def tiny_resnet_guide():
    import open_clip
    torch.manual_seed(0)
    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 128, "layers": [1, 1, 1, 1], "width": 32},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    model = open_clip.CLIP(**cfg).eval()
    tokenizer = open_clip.SimpleTokenizer(context_length=16)
    return Guide(model, tokenizer, image_size=128, mean=(0.5,) * 3, std=(0.5,) * 3, device="cpu")


@pytest.mark.parametrize("which", ["tiny_guide", "tiny_resnet_guide"])
def test_heatmap_shape_and_range(which, request):
    guide = request.getfixturevalue(which)
    torch.manual_seed(0)
    result = explain(guide, torch.rand(3, 40, 40), "a red apple")
    assert result.heatmap.shape == (40, 40)
    assert 0 <= result.heatmap.min() and result.heatmap.max() <= 1 and result.heatmap.max() > 0


def test_token_layout_is_detected_both_ways(tiny_guide):
    reshape = token_reshape(tiny_guide)
    grid = tiny_guide.model.visual.grid_size  # (4, 4): 16 patches + a class token
    tokens = torch.arange(3 * 17 * 5, dtype=torch.float).view(3, 17, 5)  # (B, L, C)
    batch_first = reshape(tokens)
    sequence_first = reshape(tokens.transpose(0, 1).contiguous())  # (L, B, C)
    assert batch_first.shape == (3, 5, *grid) and torch.equal(batch_first, sequence_first)
    assert torch.equal(batch_first[1, :, 0, 0], tokens[1, 1])  # the first patch, after the class token


def test_negation_attack_raises_its_objective_within_eps(tiny_guide):
    torch.manual_seed(0)
    image = torch.rand(2, 3, 32, 32)
    text = tiny_guide.encode_text(["a cat", "not a cat"])

    def objective(x):
        cosine = tiny_guide.encode_image(x) @ text.T
        return (cosine[:, 1] - cosine[:, 0]).mean().item()
    attacked = negation_attack(tiny_guide, image, "a cat")
    assert objective(attacked) > objective(image)
    assert (attacked - image).abs().max() <= NEGATION_ATTACK.radius + 1e-6
    assert attacked.min() >= 0 and attacked.max() <= 1


def test_alignment_measures():
    heatmap = np.zeros((10, 10))
    heatmap[2:4, 6:8] = 1.0
    assert pointing_game(heatmap, (6, 2, 8, 4)) and not pointing_game(heatmap, (0, 0, 5, 5))
    assert energy_in_box(heatmap, (6, 2, 8, 4)) == pytest.approx(1.0)
    assert energy_in_box(np.ones((10, 10)), (0, 0, 5, 5)) == pytest.approx(0.25)  # uniform: area share


def test_command_writes_overlays_maps_and_figure(tmp_path, capsys, tiny_checkpoint):
    import json

    from PIL import Image

    from clipag.cli.main import main
    Image.new("RGB", (50, 40), (200, 30, 30)).save(tmp_path / "a.png")
    code = main(["explain", str(tmp_path / "a.png"), "--target", "a red apple", "--model", "clipag-tiny:random",
                 "--model", f"clipag-tiny:{tiny_checkpoint[0]}", "--attack", "negation", "--out", str(tmp_path / "o")])
    assert code == 0
    record = json.loads((tmp_path / "o" / "explain.json").read_text())
    assert len(record["records"]) == 4 and len(record["columns"]) == 5
    heatmap = np.load(record["records"][0]["heatmap"])
    assert heatmap.shape == (32, 32) and 0 <= heatmap.min() and heatmap.max() <= 1
    figure = Image.open(tmp_path / "o" / "figure.png")
    assert figure.width > 4 * figure.height  # five tiles in a row
