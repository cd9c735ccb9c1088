"""A differentiable rasteriser of open cubic Bezier strokes, in plain PyTorch (for CLIPDraw).

CLIPDraw renders with diffvg, which has no wheels and is the installation problem its users report
most. Strokes are simple enough to render here: each cubic segment is sampled into a polyline, every
pixel centre takes its distance to the nearest polyline piece of each stroke, and the stroke covers
the pixel by `clamp(width / 2 + 0.5 - distance, 0, 1)` (a one-pixel anti-aliasing ramp). Strokes are
alpha-composited in order over a background. Gradients reach the control points, widths and colours
through the distances and the compositing; a pixel farther than half a width plus a pixel from a
stroke gets no gradient from it, as with diffvg's prefiltering.

render() has no Python loop over strokes. Without gradients, it searches the box of each drawn
segment (its polyline's hull grown by half the width and half a pixel, where the ramp ends) for the
piece nearest each pixel, a batch of segments at a time, and keeps the (stroke, pixel) pairs within
that reach. With gradients it then computes only the distance to each pair's nearest piece (where the
gradient of the min flows anyway) and composites all pairs at once: per pixel, the over operator as a
cumulative product of transmittances.

    strokes = Strokes.random(256, canvas=224, generator=torch.Generator().manual_seed(0))
    image = render(strokes, 224)                 # (3, 224, 224) in [0,1], white background
    write_svg(strokes, 224, "drawing.svg")
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

import torch

from ..io import atomic_path

_SEARCH_ELEMENTS = 1 << 19  # (C, T, L) elements per batch of the nearest-piece search: few ops, yet in cache


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

    def clamp_(self, canvas: int, max_width: float = 50.0, points: bool = False) -> "Strokes":
        """Keep parameters valid after an optimiser step, as CLIPDraw does: widths to [1, max_width],
        colours to [0, 1]. `points=True` also keeps control points within [-0.1, 1.1] of the canvas
        (not in CLIPDraw: strokes may leave the canvas there)."""
        with torch.no_grad():
            self.widths.clamp_(1.0, max_width)
            self.colours.clamp_(0.0, 1.0)
            if points:
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
    distance = _segment_distance(a.unsqueeze(2), b.unsqueeze(2), pixels.view(1, 1, -1, 2))  # (P, S*T, N)
    distance = distance.masked_fill(~drawn.unsqueeze(-1), float("inf"))
    return distance.min(dim=1).values  # (P, N)


def _segment_distance(a: torch.Tensor, b: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Distance from points p to the line pieces a-b, all (..., 2) and broadcastable -> (...)."""
    (ax, ay), (bx, by), (px, py) = a.unbind(-1), b.unbind(-1), p.unbind(-1)  # apart: no sums over a dim of 2
    abx, aby = bx - ax, by - ay
    length2 = (abx * abx + aby * aby).clamp_min(1e-12)
    t = (((px - ax) * abx + (py - ay) * aby) / length2).clamp(0, 1)  # the nearest point's place on the piece
    dx, dy = px - (ax + t * abx), py - (ay + t * aby)
    return (dx * dx + dy * dy + 1e-12).sqrt()


class _Pairs(NamedTuple):
    """The (stroke, pixel) pairs that render() draws, sorted by pixel and within a pixel from the topmost stroke
    down: (M,) integer tensors but for `pixels`, and the most strokes on one pixel."""
    stroke: torch.Tensor
    piece: torch.Tensor  # the stroke's nearest piece: its first vertex's row in sample_curves(...).flatten(0, 2)
    column: torch.Tensor  # the pixel, as an index into `pixels`
    pixels: torch.Tensor  # (N,) the pixels drawn on, as y * size + x
    slot: torch.Tensor  # column * depth + rank: the pair's place in an (N, depth) stack of layers, rank 0 on top
    depth: int


def render(strokes: Strokes, size: int, background: Optional[torch.Tensor] = None, samples: int = 16) -> torch.Tensor:
    """Strokes -> image (3, size, size) in [0,1], composited in order over `background` (white).

    The nearest piece of each stroke to each pixel near it is found without gradients (_pairs); only that piece's
    distance is then computed with them, which is where the gradient of a min flows anyway.
    """
    dtype = strokes.points.dtype
    if background is None:
        background = torch.ones(3, size, size, device=strokes.points.device, dtype=dtype)
    background = background.to(dtype)
    vertices = sample_curves(strokes.points, samples)  # (P, S, T+1, 2)
    with torch.no_grad():
        pairs = _pairs(strokes, vertices.detach(), size, samples)
    if pairs is None:
        return background.clone()  # nothing on the canvas
    ends = vertices.flatten(0, 2)  # (P*S*(T+1), 2)
    a, b = ends.index_select(0, pairs.piece), ends.index_select(0, pairs.piece + 1)  # (M, 2) each
    pixel = pairs.pixels.index_select(0, pairs.column)  # (M,)
    xy = torch.stack([pixel % size, pixel // size], dim=-1).to(dtype) + 0.5  # (M, 2) pixel centres
    widths, colours = strokes.widths.index_select(0, pairs.stroke), strokes.colours.index_select(0, pairs.stroke)
    alpha = (widths / 2 + 0.5 - _segment_distance(a, b, xy)).clamp(0, 1) * colours[:, 3]  # (M,)
    return _composite(alpha, colours[:, :3], background, pairs)


def _composite(alpha: torch.Tensor, rgb: torch.Tensor, background: torch.Tensor, pairs: _Pairs) -> torch.Tensor:
    """The over operator on all pairs at once, per pixel from the top:
    image = background * prod_i (1 - a_i) + sum_i rgb_i * a_i * prod_{j above i} (1 - a_j)."""
    N = len(pairs.pixels)
    layers = alpha.new_zeros(N * pairs.depth).index_put((pairs.slot,), alpha)  # (N*D,)
    through = (1 - layers.view(N, pairs.depth)).cumprod(dim=1)  # (N, D) transmittance of the top r+1 layers
    above = torch.cat([torch.ones_like(through[:, :1]), through[:, :-1]], dim=1).flatten().index_select(0, pairs.slot)
    paint = rgb.new_zeros(3, N).index_add(1, pairs.column, (rgb * (alpha * above).unsqueeze(1)).T)  # (3, N)
    flat = background.flatten(1)  # (3, H*W)
    drawn = flat.index_select(1, pairs.pixels) * through[:, -1] + paint  # (3, N)
    return flat.index_copy(1, pairs.pixels, drawn).view_as(background)


def _pairs(strokes: Strokes, vertices: torch.Tensor, size: int, samples: int) -> Optional[_Pairs]:
    """The pairs, from a batched search over the boxes of the drawn segments; None when none reaches the canvas."""
    units, reach = _units(strokes, vertices, size, samples)  # (U, 6), (U,)
    if len(units) == 0:
        return None
    reach2 = reach.pow(2)  # (U,)
    found = (_nearest_pieces(vertices.flatten(0, 2), units[begin:end], reach2[begin:end], samples, L, size)
             for begin, end, L in _runs(units[:, 4].tolist(), samples))
    stroke, pixel, piece, distance2 = (torch.cat(column) for column in zip(*found))  # each (M',) candidates
    if len(stroke) == 0:
        return None  # boxes on the canvas, but no pixel in them within reach
    return _stack(stroke, pixel, piece, distance2, len(strokes.widths), size)


def _units(strokes: Strokes, vertices: torch.Tensor, size: int, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The drawn segments to search, sorted by box area (for little padding): (U, 6) rows of stroke, box x0, y0,
    width, area, and the segment's first vertex's row in vertices.flatten(0, 2); and their reach (U,).

    Past half a width plus half a pixel from its polyline a segment covers nothing and passes no gradient; the
    reach adds a twentieth of a pixel for rounding. A segment's box holds the pixel centres within reach of its
    vertices' hull, cut to its stroke's box as render() has always culled it (see _stroke_boxes; with the drawn
    segments first, as Strokes.random makes them, the cut removes nothing within reach)."""
    mask = strokes.segment_mask
    stroke, segment = mask.nonzero().T  # (U,) each
    reach = strokes.widths.index_select(0, stroke).to(vertices.dtype).unsqueeze(1) / 2 + 0.55  # (U, 1)
    polyline = vertices[stroke, segment]  # (U, T+1, 2)
    low = ((polyline.amin(dim=1) - reach - 0.5).ceil().long()).clamp_min(0)  # (U, 2) first pixel in reach
    high = ((polyline.amax(dim=1) + reach - 0.5).floor().long() + 1).clamp_max(size)  # (U, 2) past the last
    outer = _stroke_boxes(strokes.points, mask.sum(dim=1), strokes.widths, size).index_select(0, stroke)  # (U, 4)
    (x0, y0), (x1, y1) = torch.maximum(low, outer[:, :2]).T, torch.minimum(high, outer[:, 2:]).T  # (U,) each
    area = (x1 - x0).clamp_min(0) * (y1 - y0).clamp_min(0)  # (U,) 0 when off the canvas
    units = torch.stack([stroke, x0, y0, x1 - x0, area, (stroke * mask.shape[1] + segment) * (samples + 1)], dim=1)
    kept = area.nonzero()[:, 0]
    kept = kept[area[kept].argsort()]
    return units[kept], reach[kept, 0]


def _stroke_boxes(points: torch.Tensor, drawn: torch.Tensor, widths: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel boxes (P, 4) as x0, y0, x1, y1 (end exclusive, clipped to the canvas): the hull of each stroke's first
    3 * drawn + 1 control points grown by half its width plus one pixel."""
    unused = (torch.arange(points.shape[1], device=points.device) > 3 * drawn.unsqueeze(1)).unsqueeze(2)  # (P, 3S+1, 1)
    margin = (widths / 2 + 1).unsqueeze(1)  # (P, 1)
    low = points.masked_fill(unused, float("inf")).amin(dim=1) - margin  # (P, 2)
    high = points.masked_fill(unused, float("-inf")).amax(dim=1) + margin  # (P, 2)
    return torch.cat([low.floor().long().clamp_min(0), (high.ceil().long() + 1).clamp_max(size)], dim=1)


def _runs(area: list[int], samples: int) -> list[tuple[int, int, int]]:
    """Split units sorted by area into runs (begin, end, largest box L) whose padded search (C, T, L) stays
    within _SEARCH_ELEMENTS (or holds a single unit)."""
    runs, begin = [], 0
    for i in range(1, len(area) + 1):
        if i == len(area) or (i + 1 - begin) * samples * area[i] > _SEARCH_ELEMENTS:
            runs.append((begin, i, area[i - 1]))
            begin = i
    return runs


def _nearest_pieces(ends: torch.Tensor, units: torch.Tensor, reach2: torch.Tensor, samples: int, L: int,
                    size: int) -> tuple[torch.Tensor, ...]:
    """The nearest of the T pieces of each of C segments to each pixel of its box, padded to L pixels. Returns,
    for the pixels in a box and within reach (`reach2` squared) of it, (M',) each: stroke, pixel, the piece (its
    first vertex's row in `ends`) and its squared distance.
    The arithmetic of _segment_distance without the (monotone) square root, batched and in place."""
    stroke, x0, y0, width, area, first = units.T.unsqueeze(-1)  # (C, 1) each
    place = torch.arange(L, device=units.device)  # (L,) row-major in the box
    x, y = x0 + place % width, y0 + place // width  # (C, L) each
    pieces = first + torch.arange(samples, device=units.device)  # (C, T)
    a, b = ends[pieces].unsqueeze(-1), ends[pieces + 1].unsqueeze(-1)  # (C, T, 2, 1) each
    (ax, ay), (abx, aby) = a.unbind(2), (b - a).unbind(2)  # (C, T, 1) each
    ex, ey = (x.to(ends.dtype) + 0.5).unsqueeze(1) - ax, (y.to(ends.dtype) + 0.5).unsqueeze(1) - ay  # (C, T, L)
    t = (ex * abx).addcmul_(ey, aby).div_((abx * abx + aby * aby).clamp_min(1e-12)).clamp_(0, 1)  # (C, T, L)
    ex.addcmul_(t, abx, value=-1)  # offset from the nearest point on the piece
    ey.addcmul_(t, aby, value=-1)
    distance2 = ex.mul_(ex).addcmul_(ey, ey)  # (C, T, L)
    best = distance2.amin(dim=1)  # (C, L)
    # the first piece at the minimum, as the least of (0 there, else 1) * T + piece: 4x faster than min's indices
    index = torch.arange(samples, device=units.device, dtype=ends.dtype).view(-1, 1)  # (T, 1)
    nearest = distance2.sub_(best.unsqueeze(1)).sign_().mul_(samples).add_(index).amin(dim=1).long()  # (C, L)
    near = ((best <= reach2.unsqueeze(1)) & (place < area)).flatten().nonzero()[:, 0]  # (M',)
    return (stroke.expand(-1, L).flatten().index_select(0, near), (y * size + x).flatten().index_select(0, near),
            (first + nearest).flatten().index_select(0, near), best.flatten().index_select(0, near))


def _stack(stroke: torch.Tensor, pixel: torch.Tensor, piece: torch.Tensor, distance2: torch.Tensor, count: int,
           size: int) -> _Pairs:
    """Sort the candidates by pixel, topmost stroke first, keep each (stroke, pixel)'s nearest, and give each
    pair its layer slot."""
    key = pixel * count + (count - 1 - stroke)  # (M',)
    key, order = (key.int() if count * size * size < 2 ** 31 else key).sort()  # int32 sorts twice as fast
    key, piece = _nearest(key, piece.index_select(0, order), distance2.index_select(0, order))  # (M,) each
    stroke, pixel = count - 1 - key % count, key // count
    top = _starts(pixel)  # (M,) a pixel's topmost pair
    column = top.cumsum(0) - 1  # (M,)
    per_pixel = torch.bincount(column)  # (N,)
    rank = torch.arange(len(pixel), device=pixel.device) - (per_pixel.cumsum(0) - per_pixel).index_select(0, column)
    depth = int(per_pixel.max())
    return _Pairs(stroke, piece, column, pixel.masked_select(top), column * depth + rank, depth)


def _nearest(key: torch.Tensor, piece: torch.Tensor, distance2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted candidates' keys, pieces and squared distances (M',) (one per segment near a pixel) -> each key's
    nearest piece (the first on a tie, as a min over the stroke's pieces in order would): keys, pieces (M,)."""
    first = _starts(key)  # (M',)
    pair = first.cumsum(0) - 1  # (M',)
    best = distance2.new_full((int(pair[-1]) + 1,), float("inf")).scatter_reduce(0, pair, distance2, "amin")  # (M,)
    never = torch.iinfo(piece.dtype).max
    piece = torch.where(distance2 == best.index_select(0, pair), piece, never)  # (M',) the nearest only
    piece = piece.new_full(best.shape, never).scatter_reduce(0, pair, piece, "amin")  # (M,)
    return key.masked_select(first).long(), piece


def _starts(values: torch.Tensor) -> torch.Tensor:
    """Where each run of equal values in a sorted (M,) begins."""
    start = torch.ones_like(values, dtype=torch.bool)
    start[1:] = values[1:] != values[:-1]
    return start


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
