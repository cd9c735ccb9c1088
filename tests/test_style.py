"""CLIPStyler on a tiny guide, with and without the style network."""
import json

import pytest
import torch
from PIL import Image

from clipag.cli.main import main
from clipag.errors import ClipagError
from clipag.tools.style import StyleConfig, StyleUNet, style, vgg_content_features


@pytest.mark.parametrize("network", [True, False])
def test_style_lowers_its_loss(tiny_guide, network):
    torch.manual_seed(0)
    content = torch.rand(1, 3, 48, 48)
    config = StyleConfig(steps=30, network=network, crops=4, crop_size=24, width=48, height=48,
                         content_loss="pixels", lr=5e-3 if network else 2e-2)
    result = style(tiny_guide, content, "a watercolor painting", config=config, progress=False)
    first = sum(l["total"] for l in result.losses[:5]) / 5
    last = sum(l["total"] for l in result.losses[-5:]) / 5
    assert last < first and result.image.shape == (3, 48, 48)
    assert "pixels" in result.content_loss  # the named option, said plainly


def test_unet_keeps_size_and_range():
    out = StyleUNet(4)(torch.rand(2, 3, 30, 30))
    assert out.shape == (2, 3, 30, 30) and 0 < out.min() and out.max() < 1


def test_bad_vgg_file(tmp_path):
    torch.save({"weight": torch.zeros(1)}, tmp_path / "vgg.pth")
    with pytest.raises(ClipagError, match="VGG19"):
        vgg_content_features(str(tmp_path / "vgg.pth"))


def test_command(tmp_path, capsys):
    Image.new("RGB", (40, 30), (20, 120, 200)).save(tmp_path / "c.png")
    code = main(["style", str(tmp_path / "c.png"), "a watercolor painting", "--model", "clipag-tiny:random",
                 "--steps", "2", "--size", "32", "--crops", "2", "--crop-size", "16", "--no-network",
                 "--content-loss", "pixels",
                 "--out", str(tmp_path / "out"), "--quiet", "--seed", "0", "1", "--trajectory"])
    assert code == 0
    records = [json.loads(f.read_text()) for f in sorted((tmp_path / "out").glob("*.json"))]
    assert [r["seed"] for r in records] == [0, 1]
    record = records[0]
    assert record["method"] == "style" and len(record["losses"]) == 2 and not record["settings"]["network"]
    assert (tmp_path / "out" / "c-a-watercolor-painting-seed0.gif").is_file()
    assert Image.open(record["trajectory"]).size[0] > Image.open(record["image"]).size[0]  # a strip of frames


def test_weighted_and_negative_prompts_steer_the_direction(tiny_guide):
    from clipag.tools.style import SOURCE_TEXT, template_features, text_direction
    one = text_direction(tiny_guide, ["a watercolor painting"])
    expected = torch.nn.functional.normalize(template_features(tiny_guide, "a watercolor painting")
                                             - template_features(tiny_guide, SOURCE_TEXT), dim=-1)
    torch.testing.assert_close(one, expected)  # one prompt: the reference's direction
    doubled = text_direction(tiny_guide, ["a watercolor painting:2"])
    torch.testing.assert_close(doubled, one)  # weights are relative
    away = text_direction(tiny_guide, ["a watercolor painting", "fire:-1"])
    fire = template_features(tiny_guide, "fire")
    assert away @ fire < one @ fire  # a negative prompt steers away from its text
    with pytest.raises(ClipagError, match="weight 0"):
        text_direction(tiny_guide, ["fire:0"])


def test_total_variation_is_the_references_sum_of_four_l2_norms():
    from clipag.tools.style import total_variation
    edge = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).expand(1, 3, 2, 2)  # one vertical edge, in three channels
    # horizontal: 6 differences of 1 -> sqrt(6); vertical: 0; each diagonal: 3 differences of 1 -> sqrt(3)
    expected = 6 ** 0.5 + 2 * 3 ** 0.5
    assert abs(float(total_variation(edge)) - expected) < 1e-6
    assert float(total_variation(torch.full((1, 3, 8, 8), 0.3))) == 0.0


def test_content_features_are_the_references_layers_21_and_31():
    """The reference's get_features on torchvision's VGG19 (in-place ReLUs) keeps '21' and '31'."""
    from torchvision.models.vgg import cfgs, make_layers

    from clipag.tools.style import relu_content_features
    torch.manual_seed(0)
    vgg = make_layers(cfgs["E"]).eval()  # VGG19's feature stack, random weights
    images = torch.rand(1, 3, 48, 48)
    x = (images - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    reference = {}
    with torch.no_grad():
        for name, layer in vgg._modules.items():  # as the reference's utils.get_features walks it
            x = layer(x)
            if name in ("21", "31"):
                reference[name] = x
    ours = relu_content_features(vgg)(images)
    torch.testing.assert_close(ours[0], reference["21"], rtol=0, atol=0)
    torch.testing.assert_close(ours[1], reference["31"], rtol=0, atol=0)
    assert float(ours[0].min()) >= 0 and float(ours[1].min()) >= 0  # both after a ReLU


def test_reference_postprocess_is_clipstylers_contrast_then_min_max():
    from torchvision.transforms.functional import adjust_contrast
    from torchvision.utils import make_grid

    from clipag.tools.style import reference_postprocess
    torch.manual_seed(0)
    image = torch.rand(3, 16, 16) * 0.5 + 0.2
    # save_image(normalize=True) stretches through make_grid's normalisation
    expected = make_grid(adjust_contrast(image.clamp(0, 1), 1.5)[None], normalize=True, padding=0)
    torch.testing.assert_close(reference_postprocess(image), expected, rtol=0, atol=1e-6)
    assert float(reference_postprocess(image).min()) == 0.0 and float(reference_postprocess(image).max()) == 1.0


def test_stylenet_is_the_references_unet_at_615267_parameters():
    from clipag.tools.style import StyleNet
    net = StyleNet()
    assert sum(p.numel() for p in net.parameters()) == 615267  # cyclomon/CLIPstyler StyleNet.UNet(ngf=16)
    assert StyleConfig().style_net == "stylenet" and StyleConfig().content_loss == "vgg"
    out = net(torch.rand(1, 3, 48, 64))  # non-square, multiples of 8
    assert out.shape == (1, 3, 48, 64) and 0 < out.min() and out.max() < 1
    downsampling = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(downsampling) == 3  # down to 1/8


def test_the_vgg_content_loss_is_the_default_and_its_absence_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ClipagError, match="VGG19 weights not found at .*vgg19-dcbb9e9d.pth.*--content-loss pixels"):
        vgg_content_features()
    Image.new("RGB", (40, 24), (20, 120, 200)).save(tmp_path / "c.png")
    code = main(["style", str(tmp_path / "c.png"), "ink", "--model", "clipag-tiny:random", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "VGG19 weights not found" in err and len(err.strip().splitlines()) == 1


def test_non_square_content_is_resized_to_width_by_height(tiny_guide, tmp_path):
    from clipag.tools.style import style_to_folder
    Image.new("RGB", (50, 20), (200, 30, 30)).save(tmp_path / "wide.png")
    config = StyleConfig(steps=2, crops=2, crop_size=16, width=48, height=24, content_loss="pixels")
    record = style_to_folder(tiny_guide, tmp_path / "wide.png", ["ink"], [0], tmp_path / "out", config,
                             progress=False)[0]
    assert Image.open(record["image"]).size == (48, 24)
    with pytest.raises(ClipagError, match="divisible by 8"):
        StyleConfig(width=50, height=24).validate()
