"""`clipag evaluate`: score generated images against their prompts with evaluator models.

    items, problems = collect_items(["outputs/generate"])          # run folders or image,prompt CSVs
    report = evaluate_items(items, {"clip-emoji": Guide.from_pretrained("clip-emoji")}, top_k=(1, 5))

For each evaluator: the cosine similarity of every image with its own prompt, and R-Precision, the
share of images whose prompt is among the k prompts of the whole set most similar to them. Optionally
the aesthetic score (clipag.measure.aesthetic). An evaluator that also guided an image scores it with a bias
(it was optimised for that model): such pairs are reported as warnings.
"""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from tqdm import tqdm

from .aesthetic import AestheticScorer
from ..distributed import World, gather_shards
from ..errors import ClipagError
from ..models.guide import Guide
from ..io import DECODE_ERRORS, atomic_path, path_kind, read_csv, read_rgb, save_json, square_tensor
from .metrics import paired_similarity, r_precision


@dataclass
class Item:
    """One picture to score: its path, the prompt it was made for, and the guide and seed when known."""
    image: str
    prompt: str
    model: str = ""  # the guide that made it, when known
    seed: Optional[int] = None


def collect_items(sources: Sequence[str]) -> tuple[list[Item], list[str]]:
    """Run folders (each image's settings JSON, as `clipag generate` writes) or CSV files (image, prompt
    columns; paths relative to the file) -> readable items, and one line per item that cannot be scored."""
    items, problems = [], []
    for source in map(Path, sources):
        kind = path_kind(source, "source")
        if kind == "dir":
            found = _from_run_folder(source, problems)
        elif source.suffix.lower() == ".csv" and kind == "file":
            found = _from_csv(source, problems)
        else:
            raise ClipagError(f"{source} is neither a run folder nor a CSV of image,prompt; give one of them")
        items += found
    if not items:
        raise ClipagError(f"nothing to evaluate in {', '.join(sources)}"
                          + (f" ({len(problems)} unreadable items, e.g. {problems[0]})" if problems else ""))
    return items, problems


def _from_run_folder(folder: Path, problems: list[str]) -> list[Item]:
    items = []
    for record_file in sorted(folder.rglob("*.json")):
        try:
            record = json.loads(record_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            problems.append(f"{record_file}: not readable JSON")
            continue
        if not isinstance(record, dict) or "image" not in record or "prompt" not in record:
            continue  # another kind of JSON (results, settings of a run): not an image record
        wrong = _wrong_types(record)
        if wrong:
            problems.append(f"{record_file}: {wrong}")
            continue
        image = Path(record["image"])
        if not image.is_absolute() and _missing(image):
            image = record_file.parent / image.name
        items.append(Item(str(image), record["prompt"], record.get("model") or "", record.get("seed")))
    return _readable(items, problems)


def _missing(path: Path) -> bool:
    try:
        return not path.exists()
    except OSError:  # a name the file system refuses: reported as unreadable later
        return True


def _wrong_types(record: dict) -> str:
    """What in an image record is not of its kind ('' when nothing)."""
    for key in ("image", "prompt"):
        if not isinstance(record[key], str) or not record[key]:
            return f"{key} must be text, got {record[key]!r}"
    if not isinstance(record.get("model") or "", str):
        return f"model must be text, got {record['model']!r}"
    seed = record.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        return f"seed must be an integer, got {seed!r}"
    return ""


def _from_csv(path: Path, problems: list[str]) -> list[Item]:
    rows = read_csv(path, ("image", "prompt"))
    return _readable([Item(str(path.parent / r["image"]), r["prompt"], r.get("model") or "") for r in rows], problems)


def _readable(items: list[Item], problems: list[str]) -> list[Item]:
    kept = []
    for item in items:
        try:
            read_rgb(item.image)
            kept.append(item)
        except DECODE_ERRORS as err:
            problems.append(f"{item.image}: cannot read the image ({type(err).__name__})")
    return kept


def load_images(items: Sequence[Item], size: int) -> torch.Tensor:
    return torch.stack([square_tensor(read_rgb(item.image), size) for item in items])  # (N, 3, S, S)


def shard_images(items: Sequence[Item], world: World = World()) -> Callable[[int], torch.Tensor]:
    """size -> this rank's shard of the images (N_rank, 3, size, size), decoded once per size."""
    mine = [items[i] for i in world.shard(len(items))]
    decoded: dict[int, torch.Tensor] = {}

    def at(size: int) -> torch.Tensor:
        if size not in decoded:
            decoded[size] = load_images(mine, size) if mine else torch.zeros(0, 3, size, size)
        return decoded[size]
    return at


def encode_images(images: torch.Tensor, guide: Guide, count: int, batch_size: int = 64,
                  world: World = World(), bar: Optional[tqdm] = None) -> torch.Tensor:
    """This rank's images (N_rank, 3, S, S) -> all `count` embeddings (N, D), gathered from every rank."""
    features = []
    for i in range(0, len(images), batch_size):
        features.append(guide.encode_image(images[i:i + batch_size].to(guide.device)).float().cpu())
        if bar is not None:
            bar.update(len(features[-1]))
    features = torch.cat(features) if features else torch.zeros(0, guide.embed_dim)  # (N_rank, D)
    return gather_shards(features, world, count)  # (N, D)


@torch.no_grad()
def evaluate_items(items: Sequence[Item], evaluators: dict[str, Guide], top_k: Sequence[int] = (1,),
                   aesthetic: Optional[AestheticScorer] = None, batch_size: int = 64,
                   world: World = World(), progress: bool = False) -> dict:
    """Per-item scores and a summary per evaluator (mean similarity, R-Precision@k), plus warnings.

    Under torchrun (`world` from clipag.distributed.init_world) the images are sharded across ranks and
    every rank returns the same, whole report."""
    prompts = sorted({item.prompt for item in items})
    targets = torch.tensor([prompts.index(item.prompt) for item in items])
    rows = [asdict(item) for item in items]
    summary, warnings = {}, []
    images_at = shard_images(items, world)
    bar = tqdm(total=len(world.shard(len(items))) * len(evaluators), desc="evaluate", unit="img",
               disable=not progress or not world.is_main, leave=False)
    for name, guide in evaluators.items():
        bar.set_postfix_str(name)
        image_features = encode_images(images_at(guide.image_size[0]), guide, len(items), batch_size, world, bar)  # (N, D)
        text_features = guide.encode_text(prompts, cache=False).float().cpu()  # (P, D)
        similarity = paired_similarity(image_features, text_features[targets])
        scores = image_features @ text_features.T  # (N, P); own score from the same product, so ties are exact
        ranks = (scores > scores.gather(1, targets.view(-1, 1))).sum(dim=1)  # prompts ranked above its own
        for row, s, r in zip(rows, similarity.tolist(), ranks.tolist()):
            row[f"{name} similarity"], row[f"{name} rank"] = s, r + 1
        summary[name] = {"similarity": similarity.mean().item(),
                         **{f"r_precision@{k}": r_precision(image_features, text_features, targets, k) for k in top_k}}
        biased = sorted({item.model for item in items if item.model == name})
        if biased:
            warnings.append(f"{name} also guided these images, so its scores of them are biased upwards")
    bar.close()
    if aesthetic is not None:
        images = images_at(aesthetic.embedder.image_size[0])
        scores = aesthetic(images).float().cpu() if len(images) else torch.zeros(0)
        scores = gather_shards(scores, world, len(items))  # (N,)
        for row, s in zip(rows, scores.tolist()):
            row["aesthetic"] = s
        summary["aesthetic"] = {"mean": scores.mean().item()}
    return {"images": len(items), "prompts": len(prompts), "summary": summary, "items": rows, "warnings": warnings}


def write_report(report: dict, out: Path) -> None:
    save_json(report, out / "results.json")
    columns = list(report["items"][0])
    with atomic_path(out / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(report["items"])


def summary_table(report: dict) -> str:
    lines = ["| evaluator | metric | value |", "|---|---|---:|"]
    for evaluator, metrics in report["summary"].items():
        for metric, value in metrics.items():
            shown = f"{100 * value:.1f}%" if metric.startswith("r_precision") else f"{value:.4f}"
            lines.append(f"| {evaluator} | {metric} | {shown} |")
    return "\n".join(lines)
