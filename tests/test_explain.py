"""Grad-CAM on tiny ViT and ResNet CLIPs, the negation attack, and the alignment measures."""
from pathlib import Path

import numpy as np
import pytest
import torch

from clipag.explain import (NEGATION_ATTACK, energy_in_box, explain, negation_attack, pointing_game,
                            target_layer, token_reshape)
from clipag.models.guide import Guide


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


@pytest.mark.parametrize("size, stage", [(224, "layer4"), (128, "layer4"), (64, "layer3"), (32, "layer2")])
def test_resnet_layer_is_the_deepest_with_a_map_of_at_least_4x4(size, stage):
    import open_clip
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": size, "layers": [1, 1, 1, 1], "width": 8},
           "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
    model = open_clip.CLIP(**cfg).eval()
    layer = target_layer(model)
    assert layer is getattr(model.visual, stage)[-1]
    maps = {}  # the chosen stage really has a map of at least 4x4
    hook = layer.register_forward_hook(lambda m, i, o: maps.setdefault("out", o))
    with torch.no_grad():
        model.encode_image(torch.rand(1, 3, size, size))
    hook.remove()
    assert min(maps["out"].shape[-2:]) >= 4


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
    noise = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "a.png")
    code = main(["explain", str(tmp_path / "a.png"), "--target", "a red apple", "--model", "clipag-tiny:random",
                 "--model", f"clipag-tiny:{tiny_checkpoint[0]}", "--attack", "negation", "--out", str(tmp_path / "o")])
    assert code == 0
    record = json.loads((tmp_path / "o" / "explain.json").read_text())
    assert len(record["records"]) == 4 and len(record["columns"]) == 5
    heatmap = np.load(record["records"][0]["heatmap"])
    assert heatmap.shape == (40, 50) and 0 <= heatmap.min() and heatmap.max() <= 1  # the picture's own size
    assert record["records"][0]["crop_box"] == [5, 0, 45, 40]
    assert heatmap[:, :5].max() == 0 and heatmap[:, 45:].max() == 0 and heatmap[:, 5:45].max() > 0
    assert Image.open(record["records"][0]["overlay"]).size == (50, 40)
    figure = np.asarray(Image.open(tmp_path / "o" / "figure.png").convert("L"))
    assert figure.shape[1] > 4 * (figure.shape[0] - 28)  # five tiles in a row under a 28-px title band
    assert (figure[:28] < 128).any(axis=0).reshape(-1).sum() > 50  # the band holds text: the column titles
    assert (figure[:28, :3] == 255).all()  # and starts as white margin


def test_map_size_model_keeps_the_models_input_size_and_the_same_map(tmp_path, capsys, tiny_checkpoint):
    import json

    from PIL import Image

    from clipag.cli.main import main
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "a.png")
    maps = {}
    for size in ("image", "model"):
        assert main(["explain", str(tmp_path / "a.png"), "--target", "a red apple",
                     "--model", f"clipag-tiny:{tiny_checkpoint[0]}",
                     "--map-size", size, "--out", str(tmp_path / size)]) == 0
        record = json.loads((tmp_path / size / "explain.json").read_text())["records"][0]
        maps[size] = np.load(record["heatmap"])
    assert maps["image"].shape == (96, 96) and maps["model"].shape == (32, 32)
    down = torch.nn.functional.interpolate(torch.from_numpy(maps["image"])[None, None], size=(32, 32),
                                           mode="area")[0, 0].numpy()
    assert np.abs(down - maps["model"]).mean() < 0.05  # the same map, upsampled


def test_images_of_one_name_in_two_folders_do_not_overwrite_each_other(tmp_path, capsys):
    import json

    from PIL import Image

    from clipag.cli.main import main
    for folder, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (tmp_path / "lab" / folder).mkdir(parents=True)
        Image.new("RGB", (32, 32), colour).save(tmp_path / "lab" / folder / "0.png")
    images = [str(tmp_path / "lab" / f / "0.png") for f in ("red", "blue")]
    assert main(["explain", *images, images[0], "--target", "a ball", "--model", "clipag-tiny:random",
                 "--out", str(tmp_path / "o")]) == 0
    records = json.loads((tmp_path / "o" / "explain.json").read_text())["records"]
    assert [r["image"] for r in records] == images  # the repeated image is explained once
    assert len({r["overlay"] for r in records}) == 2 and all(Path(r["overlay"]).is_file() for r in records)


def test_an_unreadable_or_bomb_image_is_a_one_line_error_before_any_model_loads(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from clipag.cli.main import main
    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4,096 pixels is then a decompression bomb
    code = main(["explain", str(tmp_path / "big.png"), "--model", "no-such-model", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot read image" in err and "DecompressionBomb" in err, err


COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 0.8, 0.0), "blue": (0.0, 0.0, 1.0), "black": (0.0, 0.0, 0.0)}
CORNERS = [(0, 0), (16, 0), (0, 16), (16, 16)]


def square_scene(colours: list[str], corners: list[tuple[int, int]]) -> torch.Tensor:
    canvas = torch.ones(3, 32, 32)
    for colour, (x, y) in zip(colours, corners):
        canvas[:, y:y + 16, x:x + 16] = torch.tensor(COLOURS[colour]).view(3, 1, 1)
    return canvas


def test_pointing_game_beats_a_uniform_map_on_a_trained_tiny_model(tiny_model):
    """Train the tiny CLIP for a few seconds on one coloured square per image, then ask Grad-CAM where
    "a red square" is in scenes holding it and a distractor: the peak must land on it far above chance."""
    import open_clip
    torch.manual_seed(0)
    model, tokenizer = tiny_model.model.train(), tiny_model.tokenizer
    names = list(COLOURS)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
    loss_fn = open_clip.ClipLoss()
    for _ in range(120):
        picks = [names[i] for i in torch.randperm(4)]  # four distinct captions per batch
        images = torch.stack([square_scene([c], [CORNERS[int(torch.randint(4, ()))]]) for c in picks])
        texts = tokenizer([f"a {c} square" for c in picks])
        image_features, text_features, scale = model((images - 0.5) / 0.5, texts)[:3]
        loss = loss_fn(image_features, text_features, scale)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    guide = Guide(model.eval(), tokenizer, image_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, device="cpu")
    hits = 0
    rng = torch.Generator().manual_seed(1)
    trials = 24
    for _ in range(trials):
        target, distractor = (names[i] for i in torch.randperm(4, generator=rng)[:2])
        corners = [CORNERS[i] for i in torch.randperm(4, generator=rng)[:2]]
        heatmap = explain(guide, square_scene([target, distractor], corners), f"a {target} square").heatmap
        x, y = corners[0]
        hits += pointing_game(heatmap, (x, y, x + 16, y + 16))
    assert hits / trials > 0.5  # a uniform map's peak would land in the target's quadrant 25% of the time


def test_heatmap_on_a_tiny_timm_convnext_clip():
    import open_clip
    pytest.importorskip("timm")
    torch.manual_seed(0)
    cfg = {"embed_dim": 32, "vision_cfg": {"timm_model_name": "convnext_atto", "timm_model_pretrained": False,
                                           "timm_pool": "", "timm_proj": "linear", "image_size": 64},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    model = open_clip.CLIP(**cfg).eval()
    guide = Guide(model, open_clip.SimpleTokenizer(context_length=16), image_size=64, mean=(0.5,) * 3,
                  std=(0.5,) * 3, device="cpu")
    result = explain(guide, torch.rand(3, 64, 64), "a red apple")
    assert result.heatmap.shape == (64, 64) and 0 <= result.heatmap.min() and result.heatmap.max() <= 1
    assert token_reshape(guide) is None  # a CNN: no token layout to undo


def test_zero_shot_target_is_an_imagenet_class(tiny_guide):
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    from clipag.explain import zero_shot_target
    target = zero_shot_target(tiny_guide, torch.rand(3, 32, 32))
    assert target.startswith("a photo of a ") and target[len("a photo of a "):-1] in IMAGENET_CLASSNAMES
