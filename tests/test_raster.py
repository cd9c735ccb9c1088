"""The stroke rasteriser against exact renderings of known shapes, its gradients, and its SVG."""
from xml.etree import ElementTree

import torch

from clipag.tools.raster import Strokes, render, sample_curves, stroke_distance, write_svg


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


def _distance_reference(points, segment_mask, pixels, samples=16):
    """The former stroke_distance: every pixel (N, 2) against every piece of every stroke at once -> (P, N)."""
    vertices = sample_curves(points, samples)  # (P, S, T+1, 2)
    a, b = vertices[:, :, :-1].flatten(1, 2), vertices[:, :, 1:].flatten(1, 2)  # (P, S*T, 2)
    ab = b - a
    ap = pixels.view(1, 1, -1, 2) - a.unsqueeze(2)  # (P, S*T, N, 2)
    length2 = (ab * ab).sum(-1, keepdim=True).clamp_min(1e-12)  # (P, S*T, 1)
    t = ((ap * ab.unsqueeze(2)).sum(-1) / length2).clamp(0, 1)  # (P, S*T, N)
    nearest = a.unsqueeze(2) + t.unsqueeze(-1) * ab.unsqueeze(2)  # (P, S*T, N, 2)
    distance = ((pixels.view(1, 1, -1, 2) - nearest).pow(2).sum(-1) + 1e-12).sqrt()  # (P, S*T, N)
    distance = distance.masked_fill(~segment_mask.repeat_interleave(samples, dim=1).unsqueeze(-1), float("inf"))
    return distance.min(dim=1).values  # (P, N)


def _render_reference(strokes, size, background, samples=16):
    """The former render(): stroke after stroke, each in its box, alpha-composited in order."""
    image = background.clone()
    drawn_points = 3 * strokes.segment_mask.sum(dim=1) + 1  # (P,)
    for p in range(len(strokes.widths)):
        points = strokes.points[p, :int(drawn_points[p])].detach()  # (n, 2)
        margin = float(strokes.widths[p].detach()) / 2 + 1
        x0, y0 = (max(0, int(v)) for v in (points.min(dim=0).values - margin).floor().tolist())
        x1, y1 = (min(size, int(v) + 1) for v in (points.max(dim=0).values + margin).ceil().tolist())
        if x0 >= x1 or y0 >= y1:
            continue  # wholly off the canvas
        ys, xs = (torch.arange(lo, hi, dtype=image.dtype) + 0.5 for lo, hi in ((y0, y1), (x0, x1)))
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        pixels = torch.stack([x.flatten(), y.flatten()], dim=-1)  # (N, 2)
        distance = _distance_reference(strokes.points[p:p + 1], strokes.segment_mask[p:p + 1], pixels, samples)[0]
        coverage = (strokes.widths[p] / 2 + 0.5 - distance).clamp(0, 1)  # (N,)
        alpha = (coverage * strokes.colours[p, 3]).view(1, y1 - y0, x1 - x0)
        region = image[:, y0:y1, x0:x1] * (1 - alpha) + strokes.colours[p, :3].view(3, 1, 1) * alpha
        image = torch.cat([image[:, :y0], torch.cat([image[:, y0:y1, :x0], region, image[:, y0:y1, x1:]], dim=2),
                           image[:, y1:]], dim=1)
    return image


def test_render_matches_the_per_stroke_reference_with_gradients():
    size, count = 28, 24
    g = torch.Generator().manual_seed(3)
    points = (torch.rand(count, 10, 2, generator=g, dtype=torch.float64) * 1.2 - 0.1) * size  # some partly off
    points = points[:, :1] + (points - points[:, :1]) * 0.4  # shorter strokes
    points[:2, :, 1] += 1.5 * size  # wholly off the canvas
    points[2, :, 0] -= points[2, :, 0].mean()  # across its left edge
    corner = torch.tensor([0, 1 / 3, 2 / 3] + [1] * 7, dtype=torch.float64).view(-1, 1)
    points[3] = corner * torch.tensor([8.0, -8.0]) + torch.tensor([-6.0, 2.0])  # (-6, 2) to (2, -6): past a corner,
    widths = torch.rand(count, generator=g, dtype=torch.float64) * 10 + 0.5  # thin to wide
    widths[3] = 1.0  # its box reaches the canvas but no pixel in it is near enough to draw on
    colours = torch.rand(count, 4, generator=g, dtype=torch.float64)
    colours[::4, 3] = 1.0  # opaque strokes: zero transmittance through their cores
    mask = torch.arange(3).view(1, -1) < torch.randint(1, 4, (count, 1), generator=g)  # 1..3 segments
    mask[3] = torch.tensor([True, False, False])
    mask[5] = torch.tensor([False, True, False])  # a lone middle segment
    mask[6] = torch.tensor([True, False, True])
    background = torch.rand(3, size, size, generator=g, dtype=torch.float64)
    weights = torch.randn(3, size, size, generator=g, dtype=torch.float64)

    def image_and_gradients(renderer):
        inputs = [x.clone().requires_grad_() for x in (points, widths, colours, background)]
        image = renderer(Strokes(inputs[0], inputs[1], inputs[2], mask), size, inputs[3])
        (image * weights).sum().backward()
        return [image.detach()] + [x.grad for x in inputs]

    new, reference = image_and_gradients(render), image_and_gradients(_render_reference)
    assert (reference[0] != background).any(dim=0).float().mean() > 0.5  # the strokes cover much of the canvas
    for name, a, b in zip(["image", "points", "widths", "colours", "background"], new, reference):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=lambda m: f"{name}: {m}")
    off = Strokes(points[:4:3], widths[:4:3], colours[:4:3], mask[:4:3])
    assert torch.equal(render(off, size, background), background)  # nothing reaches the canvas
    pixels = torch.rand(50, 2, generator=g, dtype=torch.float64) * size
    torch.testing.assert_close(stroke_distance(points, mask, pixels), _distance_reference(points, mask, pixels))
