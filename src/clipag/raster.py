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
from torch.utils.checkpoint import checkpoint

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


def render(strokes: Strokes, size: int, background: Optional[torch.Tensor] = None, samples: int = 16,
           chunk: int = 16) -> torch.Tensor:
    """Strokes -> image (3, size, size) in [0,1], composited in order over `background` (white)."""
    device, dtype = strokes.points.device, strokes.points.dtype
    coords = torch.arange(size, device=device, dtype=dtype) + 0.5  # pixel centres
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    pixels = torch.stack([x.flatten(), y.flatten()], dim=-1)  # (N, 2) as (x, y)
    image = background.flatten(1).to(dtype) if background is not None else torch.ones(3, size * size, device=device, dtype=dtype)
    for start in range(0, len(strokes.widths), chunk):  # chunks bound memory at P_chunk x pieces x N
        part = slice(start, start + chunk)
        # recomputed in the backward pass instead of keeping every chunk's (p, pieces, N, 2) intermediates
        distance = checkpoint(stroke_distance, strokes.points[part], strokes.segment_mask[part], pixels, samples,
                              use_reentrant=False)  # (p, N)
        coverage = (strokes.widths[part].view(-1, 1) / 2 + 0.5 - distance).clamp(0, 1)  # (p, N)
        alpha = coverage * strokes.colours[part, 3:4]  # (p, N)
        for a, colour in zip(alpha, strokes.colours[part, :3]):
            image = image * (1 - a) + colour.view(3, 1) * a
    return image.view(3, size, size)


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
