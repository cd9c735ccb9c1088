"""CLIPDraw on a tiny guide: the score rises, outputs are written, options and prompts work."""
import json
from xml.etree import ElementTree

import torch

from clipag.cli.main import main
from clipag.tools.draw import DrawConfig, DrawViews, draw


def test_drawing_raises_its_score(tiny_guide):
    config = DrawConfig(strokes=12, steps=25, views=2)
    result = draw(tiny_guide, ["a red apple"], seed=0, config=config, progress=False)
    assert result.image.shape == (3, 32, 32) and len(result.history) == 25
    assert sum(result.history[-5:]) / 5 > sum(result.history[:5]) / 5
    again = draw(tiny_guide, ["a red apple"], seed=0, config=config, progress=False)
    assert torch.equal(result.image, again.image)  # seeded on CPU


def test_without_augmentation_and_with_a_negative_prompt(tiny_guide):
    config = DrawConfig(strokes=8, steps=15, augment=False)
    result = draw(tiny_guide, ["a cat", "blurry:-1"], seed=1, config=config, progress=False)
    assert result.history[-1] > result.history[0]
    assert result.strokes.widths.min() >= 1 and result.strokes.colours.max() <= 1


def test_views_fill_white_and_have_the_guide_size():
    torch.manual_seed(0)
    views = DrawViews((16, 16), 3)(torch.ones(1, 3, 40, 40))
    assert views.shape == (3, 3, 16, 16) and torch.allclose(views, torch.ones_like(views), atol=1e-5)


def test_command_writes_png_svg_and_json(tmp_path, capsys):
    code = main(["draw", "a red apple", "--model", "clipag-tiny:random", "--steps", "3", "--strokes", "5",
                 "--seed", "0", "1", "--trajectory", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    for seed in (0, 1):
        record = json.loads((tmp_path / f"a-red-apple-seed{seed}.json").read_text())
        assert record["method"] == "draw" and record["settings"]["strokes"] == 5
        root = ElementTree.parse(record["svg"]).getroot()
        assert len(root.findall("{http://www.w3.org/2000/svg}path")) == 5
        assert (tmp_path / f"a-red-apple-seed{seed}.png").stat().st_size > 0
        assert (tmp_path / f"a-red-apple-seed{seed}.gif").stat().st_size > 0


def test_the_guide_sees_unnormalised_pixels_by_default_as_the_notebooks(tiny_guide):
    assert DrawConfig().normalized_input is False
    images = torch.rand(2, 3, *tiny_guide.image_size)
    raw = tiny_guide.without_input_normalisation()
    torch.testing.assert_close(raw.preprocess(images), images)
    assert not torch.allclose(tiny_guide.preprocess(images), images)  # the original guide is unchanged
    assert raw.model is tiny_guide.model
    config = DrawConfig(strokes=8, steps=3, views=2)
    plain = draw(tiny_guide, ["a red apple"], seed=0, config=config, progress=False)
    normalised = draw(tiny_guide, ["a red apple"], seed=0, config=DrawConfig(strokes=8, steps=3, views=2,
                      normalized_input=True), progress=False)
    assert not torch.allclose(plain.image, normalised.image)


def test_control_points_are_not_clamped_by_default_as_clipdraw():
    from clipag.tools.raster import Strokes
    assert DrawConfig().clamp_points is False
    strokes = Strokes.random(4, 32, generator=torch.Generator().manual_seed(0))
    strokes.points.data[0, 0] = torch.tensor([-20.0, 50.0])  # off a 32 px canvas
    strokes.widths.data[0] = 99.0
    strokes.clamp_(32, max_width=50.0)
    assert strokes.points[0, 0].tolist() == [-20.0, 50.0] and strokes.widths[0] == 50.0
    strokes.clamp_(32, max_width=50.0, points=True)
    assert torch.allclose(strokes.points[0, 0], torch.tensor([-3.2, 35.2]))
