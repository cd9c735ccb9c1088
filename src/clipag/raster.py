"""A differentiable rasteriser of open cubic Bezier strokes, in plain PyTorch (for CLIPDraw).

CLIPDraw renders with diffvg, which has no wheels and is the installation problem its users report
most. Strokes are simple enough to render here: each cubic segment is sampled into a polyline, every
pixel centre takes its distance to the nearest polyline piece of each stroke, and the stroke covers
the pixel by `clamp(width / 2 + 0.5 - distance, 0, 1)` (a one-pixel anti-aliasing ramp). Strokes are
alpha-composited in order over a background. Gradients reach the control points, widths and colours
through the distances and the compositing; a pixel farther than half a width plus a pixel from a
stroke gets no gradient from it, as with diffvg's prefiltering.

    strokes = Strokes.random(256, canvas=224, generator=torch.Generator().manual_seed(0))
    image = render(strokes, 224)                 # (3, 224, 224) in [0,1], white background
    write_svg(strokes, 224, "drawing.svg")
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .io import atomic_path


@dataclass
class Strokes:
    """P strokes of up to S cubic segments: points (P, 3S+1, 2) in pixels, widths (P,), colours (P, 4)
    RGBA in [0,1], segment_mask (P, S) True where a segment is drawn (strokes have 1..S segments)."""
    points: torch.Tensor
    widths: torch.Tensor
    colours: torch.Tensor
    segment_mask: torch.Tensor

    @classmethod
    def random(cls, count: int, canvas: int, max_segments: int = 3, radius: float = 0.05,
               generator: Optional[torch.Generator] = None) -> "Strokes":
        """CLIPDraw's initialisation: each stroke a random walk of 1..max_segments segments from a
        random start, steps of up to `radius` of the canvas; widths 1; random RGBA colours."""
        segments = torch.randint(1, max_segments + 1, (count,), generator=generator)  # (P,)
        start = torch.rand(count, 1, 2, generator=generator)  # (P, 1, 2) in canvas units
        steps = (torch.rand(count, 3 * max_segments, 2, generator=generator) - 0.5) * 2 * radius
        points = torch.cat([start, start + steps.cumsum(dim=1)], dim=1) * canvas  # (P, 3S+1, 2)
        mask = torch.arange(max_segments).view(1, -1) < segments.view(-1, 1)  # (P, S)
        return cls(points, torch.ones(count), torch.rand(count, 4, generator=generator), mask)

    def map(self, fn) -> "Strokes":
        """The same strokes with `fn` applied to every tensor (e.g. a device move or detach)."""
        return Strokes(fn(self.points), fn(self.widths), fn(self.colours), fn(self.segment_mask))

    def clamp_(self, canvas: int, max_width: float = 50.0) -> "Strokes":
        """Keep parameters valid after an optimiser step (CLIPDraw clamps widths to [1, 50])."""
        with torch.no_grad():
            self.widths.clamp_(1.0, max_width)
            self.colours.clamp_(0.0, 1.0)
            self.points.clamp_(-0.1 * canvas, 1.1 * canvas)
        return self


def sample_curves(points: torch.Tensor, samples: int) -> torch.Tensor:
    """Control points (P, 3S+1, 2) -> polyline vertices (P, S, samples+1, 2) along each cubic segment."""
    P, n, _ = points.shape
    S = (n - 1) // 3
    index = torch.arange(S, device=points.device) * 3
    p0, p1, p2, p3 = (points[:, index + k] for k in range(4))  # each (P, S, 2)
    t = torch.linspace(0, 1, samples + 1, device=points.device, dtype=points.dtype).view(1, 1, -1, 1)
    u = 1 - t
    return (u ** 3 * p0.unsqueeze(2) + 3 * u ** 2 * t * p1.unsqueeze(2)
            + 3 * u * t ** 2 * p2.unsqueeze(2) + t ** 3 * p3.unsqueeze(2))  # (P, S, samples+1, 2)


def stroke_distance(points: torch.Tensor, segment_mask: torch.Tensor, pixels: torch.Tensor,
                    samples: int = 16) -> torch.Tensor:
    """Distance from each pixel centre (N, 2) to each stroke -> (P, N)."""
    vertices = sample_curves(points, samples)  # (P, S, T+1, 2)
    a, b = vertices[:, :, :-1].flatten(1, 2), vertices[:, :, 1:].flatten(1, 2)  # (P, S*T, 2) piece ends
    drawn = segment_mask.repeat_interleave(samples, dim=1)  # (P, S*T)
    ab = b - a
    ap = pixels.view(1, 1, -1, 2) - a.unsqueeze(2)  # (P, S*T, N, 2)
    length2 = (ab * ab).sum(-1, keepdim=True).clamp_min(1e-12)  # (P, S*T, 1)
    t = ((ap * ab.unsqueeze(2)).sum(-1) / length2).clamp(0, 1)  # (P, S*T, N)
    nearest = a.unsqueeze(2) + t.unsqueeze(-1) * ab.unsqueeze(2)  # (P, S*T, N, 2)
    distance = ((pixels.view(1, 1, -1, 2) - nearest).pow(2).sum(-1) + 1e-12).sqrt()  # (P, S*T, N)
    distance = distance.masked_fill(~drawn.unsqueeze(-1), float("inf"))
    return distance.min(dim=1).values  # (P, N)


def render(strokes: Strokes, size: int, background: Optional[torch.Tensor] = None, samples: int = 16) -> torch.Tensor:
    """Strokes -> image (3, size, size) in [0,1], composited in order over `background` (white).

    Each stroke is evaluated only inside its bounding box: a cubic lies in the hull of its control points,
    so pixels farther out than half its width plus the one-pixel ramp have zero coverage, as before.
    """
    device, dtype = strokes.points.device, strokes.points.dtype
    image = background.to(dtype).clone() if background is not None else torch.ones(3, size, size, device=device, dtype=dtype)
    drawn_points = 3 * strokes.segment_mask.sum(dim=1) + 1  # (P,)
    for p in range(len(strokes.widths)):
        points = strokes.points[p, :int(drawn_points[p])]  # (n, 2)
        x0, y0, x1, y1 = _box(points.detach(), float(strokes.widths[p].detach()) / 2 + 1, size)
        if x0 >= x1 or y0 >= y1:
            continue  # wholly off the canvas
        ys = torch.arange(y0, y1, device=device, dtype=dtype) + 0.5
        xs = torch.arange(x0, x1, device=device, dtype=dtype) + 0.5
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        pixels = torch.stack([x.flatten(), y.flatten()], dim=-1)  # (n_box, 2) as (x, y)
        distance = stroke_distance(strokes.points[p:p + 1], strokes.segment_mask[p:p + 1], pixels, samples)[0]
        alpha = ((strokes.widths[p] / 2 + 0.5 - distance).clamp(0, 1) * strokes.colours[p, 3]).view(1, y1 - y0, x1 - x0)
        region = image[:, y0:y1, x0:x1] * (1 - alpha) + strokes.colours[p, :3].view(3, 1, 1) * alpha
        image = torch.cat([image[:, :y0], torch.cat([image[:, y0:y1, :x0], region, image[:, y0:y1, x1:]], dim=2),
                           image[:, y1:]], dim=1)
    return image


def _box(points: torch.Tensor, margin: float, size: int) -> tuple[int, int, int, int]:
    low, high = points.min(dim=0).values - margin, points.max(dim=0).values + margin  # (2,), (2,)
    x0, y0 = (max(0, int(v)) for v in low.floor().tolist())
    x1, y1 = (min(size, int(v) + 1) for v in high.ceil().tolist())
    return x0, y0, x1, y1


def write_svg(strokes: Strokes, size: int, path: str | Path) -> None:
    """The strokes as an SVG of open cubic paths on a white canvas, one <path> per stroke."""
    lines = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">',
             f'<rect width="{size}" height="{size}" fill="white"/>']
    points = strokes.points.detach().cpu().tolist()
    for p, (widths, colour, mask) in enumerate(zip(strokes.widths.tolist(), strokes.colours.detach().cpu().tolist(),
                                                    strokes.segment_mask.cpu().tolist())):
        drawn = 3 * sum(mask) + 1
        xy = [f"{x:.2f} {y:.2f}" for x, y in points[p][:drawn]]
        d = f"M {xy[0]} " + " ".join(f"C {', '.join(xy[i:i + 3])}" for i in range(1, drawn, 3))
        r, g, b, a = colour
        lines.append(f'<path d="{d}" fill="none" stroke="rgb({round(255 * r)},{round(255 * g)},{round(255 * b)})" '
                     f'stroke-opacity="{a:.3f}" stroke-width="{widths:.2f}" stroke-linecap="round"/>')
    lines.append("</svg>")
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
