"""A direct measure of perceptually aligned gradients: a targeted attack, judged by another model.

    pictures = sample_pictures("data/emoji/heldout.csv", names=48, seed=0)
    result = targeted_pag(guide, judge, pictures, PagConfig(eps=[1, 2, 4, 8]))
    result.rates["8"]        # {"target": 0.52, "source": 0.10, "neither": 0.38, "similarity": 0.81}

From a real picture of name A, an L2 PGD of radius eps maximises the guide's cosine similarity to
name B, another name of the sample (a seeded derangement, so every name is a target once). The judge,
an independent model that is never the guide, classifies the result zero-shot among the sample's names:
it now shows B (target hit), still shows A (source kept), or neither. A model whose input gradients are
perceptually aligned changes what the picture shows, so the judge sees B; a merely non-robust model
reaches a high similarity to B while the picture still shows A under speckle. The attack starts from
the picture itself (no random start) so that a small radius changes little. Beside it, the gradient
alignment: how well the guide's gradient towards B at A's picture points to B's own picture (a cosine;
about 0 for a vanilla model), the "one image" target of Ganz, Kawar & Elad (ICML 2023).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm import tqdm

from ..attack import AttackConfig, pgd
from ..configs import PagConfig
from ..errors import ClipagError
from ..models.guide import Guide
from ..io import read_csv, read_picture, square_tensor
from .metrics import zero_shot_classifier, zero_shot_logits


@dataclass
class Pictures:
    """One real picture per name: its file, its name (the source) and the name it is pushed to."""
    files: list[str]
    names: list[str]
    targets: list[str]


@dataclass
class PagResult:
    """The targeted PAG measure of one model: rates per radius, the pictures and what the judge named them."""
    rates: dict[str, dict[str, float]]  # eps -> target / source / neither shares, mean similarity to target
    judge_clean_accuracy: float  # the judge's top-1 on the untouched pictures
    chance: float
    images: dict[str, torch.Tensor]  # "0" (the pictures) and each eps -> (N, 3, S, S) at the guide's size
    judged: dict[str, list[str]]  # eps -> the judge's name for each picture
    alignment: float = float("nan")  # mean cosine of the gradient towards B at A's picture with the way to B's


def sample_pictures(csv_path: str | Path, names: int = 48, seed: int = 0, name_column: str = "name",
                    path_column: str = "filepath", exclude: Sequence[str] = ()) -> Pictures:
    """`names` names drawn from a CSV (seeded), one of each name's pictures, and a target for each.

    Names in `exclude` are never drawn: choose settings on one sample, report on another."""
    csv_path = Path(csv_path)
    by_name: dict[str, list[str]] = {}
    excluded = set(exclude)
    for row in read_csv(csv_path, (path_column, name_column)):
        if row[name_column] in excluded:
            continue
        files = by_name.setdefault(row[name_column], [])
        file = str(csv_path.parent / row[path_column])
        if file not in files:
            files.append(file)
    if len(by_name) < 2 or names < 2:
        raise ClipagError(f"{csv_path} has {len(by_name)} names; the measure needs at least 2 (and --names >= 2)")
    rng = random.Random(seed)
    chosen = rng.sample(sorted(by_name), min(names, len(by_name)))
    files = [rng.choice(by_name[name]) for name in chosen]
    order = list(range(len(chosen)))  # a derangement: each picture's target is the next name in a shuffle
    rng.shuffle(order)
    targets = [""] * len(chosen)
    for k, i in enumerate(order):
        targets[i] = chosen[order[(k + 1) % len(order)]]
    return Pictures(files, chosen, targets)


def read_names(path: str | Path) -> list[str]:
    """Names to exclude: a `clipag pag` results.json (its sample's names), or a text file, one per line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ClipagError(f"cannot read names from {path} ({err}); give a results.json of `clipag pag` or "
                          f"a text file of names, one per line") from None
    if path.suffix.lower() == ".json":
        import json
        try:
            return list(json.loads(text)["pictures"]["names"])
        except (ValueError, KeyError, TypeError):
            raise ClipagError(f"{path} is not a results.json written by `clipag pag`") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def targeted_pag(guide: Guide, judge: Guide, pictures: Pictures, config: PagConfig = PagConfig(),
                 progress: bool = True) -> PagResult:
    """Attack each picture towards its target under `guide` at every radius; let `judge` say what it shows."""
    config.validate()
    if guide.model is judge.model:
        raise ClipagError("the judge must be another model than the guide; pass an independent --judge")
    images = torch.stack([square_tensor(read_picture(f), guide.image_size[0]) for f in pictures.files])  # (N, 3, S, S)
    names = sorted(set(pictures.names))
    classifier = zero_shot_classifier(judge, [config.template.format(n) for n in names], ["{}"])  # (D, C)
    source = torch.tensor([names.index(n) for n in pictures.names])  # (N,)
    target = torch.tensor([names.index(n) for n in pictures.targets])  # (N,)
    prompts = guide.encode_text([config.template.format(n) for n in pictures.targets], cache=False)  # (N, D)

    clean = _judge(judge, classifier, images, config.batch_size)
    results = {"0": images}
    judged = {"0": [names[i] for i in clean]}
    rates = {"0": _rates(clean, source, target, _similarity(guide, images, prompts, config.batch_size))}
    destinations = images[[pictures.names.index(n) for n in pictures.targets]]  # (N, 3, S, S) B's own picture
    alignment = _alignment(guide, images, prompts, destinations, config.batch_size)
    bar = tqdm(config.eps, desc="pag", unit="eps", disable=not progress, leave=False)
    for eps in bar:
        attacked = _attack(guide, images, prompts, eps, config)
        predicted = _judge(judge, classifier, attacked, config.batch_size)
        key = f"{eps:g}"
        results[key], judged[key] = attacked, [names[i] for i in predicted]
        rates[key] = _rates(predicted, source, target, _similarity(guide, attacked, prompts, config.batch_size))
    return PagResult(rates, float((clean == source).float().mean()), 1 / len(names), results, judged, alignment)


def gradient_alignment(guide: Guide, images: torch.Tensor, destinations: torch.Tensor, score,
                       create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(b,) the cosine between the input gradient of each image's `score` and the way to its row of
    `destinations` (b, 3, S, S), 0 where they coincide; and the (b, D) image embeddings, with gradients
    when `create_graph`. `score` maps the (b, D) embeddings to (b,) scores, one per image."""
    x = images.detach().requires_grad_(True)
    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):  # fused attention kernels have no second derivative
        image = guide.encode_image(x)  # (b, D)
        grad, = torch.autograd.grad(score(image).sum(), x, create_graph=create_graph)  # (b, 3, S, S)
    way = (destinations - images).detach().flatten(1)  # (b, 3*S*S): the "one image" target gradient
    cosine = F.cosine_similarity(grad.flatten(1), way, dim=1, eps=1e-12)  # (b,)
    return cosine * (way.norm(dim=1) > 1e-6), image


def _attack(guide: Guide, images: torch.Tensor, prompts: torch.Tensor, eps: float, config: PagConfig) -> torch.Tensor:
    attack = AttackConfig(norm="l2", eps=eps, steps=config.steps, step_size=config.step_size, random_start=False)
    out = []
    for start in range(0, len(images), config.batch_size):
        batch = images[start:start + config.batch_size].to(guide.device)  # (b, 3, S, S)
        wanted = prompts[start:start + config.batch_size].to(guide.device).float()  # (b, D)
        closer = lambda x: (guide.encode_image(x).float() * wanted).sum()  # summed cosines: each image its own
        out.append(pgd(closer, batch, attack, model=guide.model).cpu())
    return torch.cat(out)


def _alignment(guide: Guide, images: torch.Tensor, prompts: torch.Tensor, destinations: torch.Tensor,
               batch_size: int) -> float:
    """The mean gradient alignment of the cosine similarity to each prompt, the score that the attack climbs."""
    cosines = []
    for s in range(0, len(images), batch_size):
        wanted = prompts[s:s + batch_size].to(guide.device).float()  # (b, D)
        cosine, _ = gradient_alignment(guide, images[s:s + batch_size].to(guide.device),
                                       destinations[s:s + batch_size].to(guide.device),
                                       lambda image: (image.float() * wanted).sum(dim=1))
        cosines.append(cosine.detach().cpu())
    return float(torch.cat(cosines).mean())


def _judge(judge: Guide, classifier: torch.Tensor, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N,) the judge's class for each image, resized to the judge's input size if it differs."""
    predicted = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(judge.device)
            if batch.shape[-2:] != tuple(judge.image_size):
                batch = F.interpolate(batch, size=tuple(judge.image_size), mode="bilinear", antialias=True,
                                      align_corners=False)
            predicted.append(zero_shot_logits(judge, batch, classifier.to(judge.device)).argmax(dim=1).cpu())
    return torch.cat(predicted)


def _similarity(guide: Guide, images: torch.Tensor, prompts: torch.Tensor, batch_size: int) -> float:
    with torch.no_grad():
        cosines = [(guide.encode_image(images[s:s + batch_size].to(guide.device)).float()
                    * prompts[s:s + batch_size].to(guide.device).float()).sum(dim=1).cpu()
                   for s in range(0, len(images), batch_size)]
    return float(torch.cat(cosines).mean())


def _rates(predicted: torch.Tensor, source: torch.Tensor, target: torch.Tensor, similarity: float) -> dict:
    hit, kept = (predicted == target).float().mean().item(), (predicted == source).float().mean().item()
    return {"target": hit, "source": kept, "neither": 1 - hit - kept, "similarity": similarity}


def wilson(share: float, n: int, z: float = 2.576) -> tuple[float, float]:
    """The Wilson score interval of a share of n trials (99% by default)."""
    if n == 0:
        return (0.0, 1.0)
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def picture_strip(results: dict[str, PagResult], pictures: Pictures, rows: int = 6, scale: int = 2):
    """A PIL image: per example and model, the picture then each radius's result, labelled
    "A -> B" and with the judge's name under each result."""
    from PIL import Image, ImageDraw
    models = list(results)
    keys = list(next(iter(results.values())).images)
    side = max(r.images["0"].shape[-1] for r in results.values()) * scale
    label, caption = 14, 12
    width = 180 + len(keys) * side
    height = label + rows * len(models) * (side + caption)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for c, key in enumerate(keys):
        draw.text((180 + c * side + 2, 1), "picture" if key == "0" else f"eps {key}", fill="black")
    y = label
    for i in range(min(rows, len(pictures.names))):
        for model in models:
            draw.text((2, y + 2), f"{pictures.names[i][:26]}", fill="black")
            draw.text((2, y + 16), f"-> {pictures.targets[i][:24]}", fill="black")
            draw.text((2, y + 30), model[:28], fill="grey")
            for c, key in enumerate(keys):
                tile = results[model].images[key][i].clamp(0, 1).mul(255).byte().permute(1, 2, 0).numpy()
                sheet.paste(Image.fromarray(tile).resize((side, side), Image.NEAREST), (180 + c * side, y))
                seen = results[model].judged[key][i]
                colour = "green" if seen == pictures.targets[i] else "black" if seen == pictures.names[i] else "red"
                draw.text((180 + c * side + 2, y + side), seen[:side // 6], fill=colour)
            y += side + caption
    return sheet


def pag_table(results: dict[str, PagResult], n: int) -> str:
    """Markdown: per model and radius, the judge's target hits (with a 99% interval), sources kept, neither;
    the gradient alignment on each model's eps 0 row."""
    lines = ["| model | eps | target hit | source kept | neither | guide similarity to target | gradient alignment |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for model, result in results.items():
        for key, rate in result.rates.items():
            low, high = wilson(rate["target"], n)
            alignment = f"{result.alignment:.3f}" if key == "0" else ""
            lines.append(f"| {model} | {key} | {100 * rate['target']:.1f}% [{100 * low:.0f}, {100 * high:.0f}] | "
                         f"{100 * rate['source']:.1f}% | {100 * rate['neither']:.1f}% | {rate['similarity']:.3f} | "
                         f"{alignment} |")
    return "\n".join(lines)
