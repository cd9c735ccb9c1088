"""The stroke rasteriser against exact renderings of known shapes, its gradients, and its SVG."""
from xml.etree import ElementTree

import torch

from clipag.raster import Strokes, render, sample_curves, write_svg


def straight_stroke(x0, y0, x1, y1, width, colour=(0.0, 0.0, 0.0, 1.0), dtype=torch.float32):
    """One cubic segment with its control points on the line from (x0, y0) to (x1, y1)."""
    t = torch.tensor([0, 1 / 3, 2 / 3, 1], dtype=dtype).view(-1, 1)
    points = torch.tensor([x0, y0], dtype=dtype) * (1 - t) + torch.tensor([x1, y1], dtype=dtype) * t  # (4, 2)
    return Strokes(points.unsqueeze(0), torch.tensor([width], dtype=dtype), torch.tensor([colour], dtype=dtype),
                   torch.ones(1, 1, dtype=torch.bool))


def test_horizontal_bar_matches_the_exact_coverage():
    image = render(straight_stroke(4.0, 16.0, 28.0, 16.0, width=6.0), 32)  # black bar, rows 13..18 covered
    exact = torch.ones(32, 32)
    ys = torch.arange(32) + 0.5
    xs = torch.arange(32) + 0.5
    dy = (ys - 16).abs().view(-1, 1)
    dx = torch.maximum(4 - xs, xs - 28).clamp_min(0).view(1, -1)
    exact = 1 - (3.5 - (dx ** 2 + dy ** 2).sqrt()).clamp(0, 1)  # distance ramp, round caps
    assert torch.allclose(image[0], exact, atol=1e-4)
    assert image[0, 16, 16] == 0 and image[0, 2, 16] == 1  # inside black, far away white


def test_curve_sampling_hits_the_end_points_and_midpoint():
    points = torch.tensor([[[0.0, 0.0], [0.0, 10.0], [10.0, 10.0], [10.0, 0.0]]])
    vertices = sample_curves(points, 4)  # (1, 1, 5, 2)
    assert torch.allclose(vertices[0, 0, 0], points[0, 0]) and torch.allclose(vertices[0, 0, -1], points[0, 3])
    assert torch.allclose(vertices[0, 0, 2], torch.tensor([5.0, 7.5]))  # B(1/2) of this cubic


def test_compositing_order_and_translucency():
    red = straight_stroke(0, 8, 16, 8, 8, (1, 0, 0, 1))
    blue_half = straight_stroke(8, 0, 8, 16, 4, (0, 0, 1, 0.5))
    both = Strokes(torch.cat([red.points, blue_half.points]), torch.cat([red.widths, blue_half.widths]),
                   torch.cat([red.colours, blue_half.colours]), torch.ones(2, 1, dtype=torch.bool))
    image = render(both, 16)
    assert torch.allclose(image[:, 8, 8], torch.tensor([0.5, 0.0, 0.5]))  # half blue over red
    assert torch.allclose(image[:, 1, 8], torch.tensor([0.5, 0.5, 1.0]))  # half blue over white


def test_gradients_are_correct_and_reach_every_parameter():
    stroke = straight_stroke(3.0, 5.0, 9.0, 7.0, 3.0, (0.2, 0.6, 0.4, 0.8), dtype=torch.float64)
    target = torch.rand(3, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def loss(points, widths, colours):
        image = render(Strokes(points, widths, colours, stroke.segment_mask), 12)
        return ((image - target) ** 2).sum()

    inputs = [stroke.points.clone().requires_grad_(), stroke.widths.clone().requires_grad_(),
              stroke.colours.clone().requires_grad_()]
    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-4)
    loss(*inputs).backward()
    assert all(x.grad.abs().sum() > 0 for x in inputs)


def test_random_strokes_render_and_export_svg(tmp_path):
    strokes = Strokes.random(20, canvas=48, generator=torch.Generator().manual_seed(0))
    assert strokes.points.shape == (20, 10, 2) and strokes.segment_mask.any(dim=1).all()
    image = render(strokes, 48)
    assert image.shape == (3, 48, 48) and 0 <= image.min() and image.max() <= 1 and image.min() < 1
    write_svg(strokes, 48, tmp_path / "d.svg")
    root = ElementTree.parse(tmp_path / "d.svg").getroot()
    paths = root.findall("{http://www.w3.org/2000/svg}path")
    assert len(paths) == 20
    segments = [p.get("d").count("C ") for p in paths]
    assert segments == strokes.segment_mask.sum(dim=1).tolist()
