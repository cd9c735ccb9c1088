"""The supplementary's generation and explanation figures (3 to 9), each a function Context -> Figure.

Captions are the paper's (assets/prompts/paper.json). Figures 3, 4, 6 and 8 name no captions in the
text; they take captions of Figure 7 (which ones is written on each page). Every picture is made by the
library's own functions (`generate_to_folder`, `explain_picture`) into the target's folder, so a re-run
with the same settings keeps what it already has.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

from ..configs import GenerateConfig, ReproduceConfig, ViewConfig
from ..errors import ClipagError
from ..models.registry import ASSETS
from .page import Cell, Figure, Panel, cell

QUICK_VIEWS = ViewConfig(views=8, crops=8)


@lru_cache(maxsize=1)
def paper() -> dict:
    """The supplementary's captions, prefixes, seeds and Grad-CAM targets, by figure."""
    return json.loads((ASSETS / "prompts" / "paper.json").read_text(encoding="utf-8"))


def captions(*indices: int) -> list[str]:
    """Figure 7's captions at `indices` (for the figures whose captions the text does not list)."""
    return [paper()["fig7"]["captions"][i] for i in indices]


@dataclass
class Context:
    """What a target needs: the models, its folder, the settings, and guides loaded once per run."""
    models: list[str]
    out_dir: Path  # the target's own folder: its page, settings and pictures
    config: ReproduceConfig
    device: str = "auto"
    precision: str = "fp32"
    progress: bool = True
    overwrite: bool = False
    guides: dict = field(default_factory=dict)  # model reference -> Guide, shared between targets

    def guide(self, model: str):
        if model not in self.guides:
            from ..models.guide import Guide
            self.guides[model] = Guide.from_pretrained(model, device=self.device, precision=self.precision)
        return self.guides[model]

    def folder(self, model: str, *parts: str) -> Path:
        from ..io import unique_stems
        stems = dict(zip(self.models, unique_stems(self.models)))
        return self.out_dir.joinpath(stems[model], *parts)


def generation_config(ctx: Context, **changes) -> GenerateConfig:
    """The generation settings of every figure: the library's defaults at the paper's K (1000) steps;
    with quick, few steps and views."""
    views = QUICK_VIEWS if ctx.config.quick else ViewConfig()
    return GenerateConfig(steps=ctx.config.generation_steps(), views=views, gmm_path=ctx.config.gmm, **changes)


def generate_grid(ctx: Context, model: str, prompts: Sequence[str], seeds: Sequence[int], folder: Path,
                  config: GenerateConfig) -> list[list[dict]]:
    """Generate prompts x seeds with `model` into `folder`; the records as rows (prompts) of seeds."""
    from ..generation.generate import generate_to_folder
    prompts, seeds = list(dict.fromkeys(prompts)), list(dict.fromkeys(seeds))
    records = generate_to_folder(ctx.guide(model), prompts, seeds, folder, config, model_reference=model,
                                 progress=ctx.progress, overwrite=ctx.overwrite)
    return [records[i * len(seeds):(i + 1) * len(seeds)] for i in range(len(prompts))]


def _similarity(record: dict) -> str:
    return f"similarity {record['similarity']:.3f}"


# ---------------------------------------------------------------- generation figures

def fig3(ctx: Context) -> Figure:
    prompts = captions(0, 7, 3)
    config = generation_config(ctx, trajectory_frames=2)
    figure = Figure("fig3", "Generation trajectory", "The initialisation (the best GMM sample), an intermediate "
                    f"image (step {config.steps // 2}) and the final image of {config.steps} steps, for three "
                    "captions of Figure 7 (the text does not list Figure 3's; the third contains 'town').")
    for model in ctx.models:
        rows = generate_grid(ctx, model, prompts, [0], ctx.folder(model), config)
        figure.panels.append(Panel(model, ["initialisation | intermediate | final"],
                                   [(p, [cell(r[0]["trajectory"], ctx.out_dir, _similarity(r[0]), wide=True)])
                                    for p, r in zip(prompts, rows)]))
    return figure


def fig4(ctx: Context) -> Figure:
    prompts = captions(1, 7, 12)
    inits = {"GMM initialisation": "gmm", "Gaussian noise": "noise"}
    figure = Figure("fig4", "Initialisation ablation", "The same captions and seed from the best of the GMM's "
                    "samples and from Gaussian noise (three captions of Figure 7; the text lists none).")
    for model in ctx.models:
        columns = {title: generate_grid(ctx, model, prompts, [0], ctx.folder(model, init),
                                        generation_config(ctx, init=init)) for title, init in inits.items()}
        figure.panels.append(Panel(model, list(inits), [
            (p, [cell(columns[t][i][0]["image"], ctx.out_dir, _similarity(columns[t][i][0])) for t in inits])
            for i, p in enumerate(prompts)]))
    return figure


def fig6(ctx: Context) -> Figure:
    prompts = captions(0, 4, 8, 12)
    figure = Figure("fig6", "Generator-free ablation", "The same captions (one from each row of Figure 7) and "
                    "seed with every model given, side by side. The paper's columns: "
                    + ", ".join(paper()["fig6"]["models"]) + ".")
    config = generation_config(ctx)
    by_model = {m: generate_grid(ctx, m, prompts, [0], ctx.folder(m), config) for m in ctx.models}
    figure.panels.append(Panel("", list(ctx.models), [
        (p, [cell(by_model[m][i][0]["image"], ctx.out_dir, _similarity(by_model[m][i][0])) for m in ctx.models])
        for i, p in enumerate(prompts)]))
    return figure


def fig7(ctx: Context) -> Figure:
    prompts, per_row = paper()["fig7"]["captions"], len(paper()["fig7"]["captions"]) // paper()["fig7"]["rows"]
    figure = Figure("fig7", "Generator-free text-to-image results", "The 16 captions of Figure 7 in its four "
                    "rows: natural results (rows 1-2), cartoonish ones (row 3), the paper's failure cases (row 4).")
    config = generation_config(ctx)
    for model in ctx.models:
        records = [r[0] for r in generate_grid(ctx, model, prompts, [0], ctx.folder(model), config)]
        rows = [(f"row {k + 1}", [cell(r["image"], ctx.out_dir, p)
                                  for p, r in zip(prompts[k * per_row:(k + 1) * per_row],
                                                  records[k * per_row:(k + 1) * per_row])])
                for k in range(paper()["fig7"]["rows"])]
        figure.panels.append(Panel(model, [str(i + 1) for i in range(per_row)], rows))
    return figure


def fig8(ctx: Context) -> Figure:
    prompts, prefixes = captions(2, 7), paper()["fig8"]["prefixes"]
    figure = Figure("fig8", "Prefix effect", "Each style prefix put before the same captions (two of Figure 7), "
                    "same seed.")
    for model in ctx.models:
        columns = [generate_grid(ctx, model, prompts, [0], ctx.folder(model, prefix.replace(" ", "-")),
                                 generation_config(ctx, prefix=prefix)) for prefix in prefixes]
        figure.panels.append(Panel(model, prefixes, [
            (p, [cell(column[i][0]["image"], ctx.out_dir, _similarity(column[i][0])) for column in columns])
            for i, p in enumerate(prompts)]))
    return figure


def fig9(ctx: Context) -> Figure:
    prompts, seeds = paper()["fig9"]["captions"], list(range(paper()["fig9"]["seeds"]))
    figure = Figure("fig9", "Stochasticity", f"Each caption of Figure 9 with seeds 0-{seeds[-1]}: the GMM start "
                    "and the random views are the only randomness.")
    config = generation_config(ctx)
    for model in ctx.models:
        rows = generate_grid(ctx, model, prompts, seeds, ctx.folder(model), config)
        figure.panels.append(Panel(model, [f"seed {s}" for s in seeds], [
            (p, [cell(r["image"], ctx.out_dir, _similarity(r)) for r in row]) for p, row in zip(prompts, rows)]))
    return figure


# ---------------------------------------------------------------- explanation

def picture_targets(images: Sequence[str]) -> list[tuple[str, str]]:
    """"PATH" or "PATH=TARGET" -> (path, target); a PATH alone takes the paper's next target."""
    targets = paper()["fig5"]["targets"]
    pairs = []
    for i, item in enumerate(images):
        path, _, target = item.partition("=")
        if not target and i >= len(targets):
            raise ClipagError(f"give a target for {path} as {path}=TARGET (the paper names {len(targets)}: "
                              f"{', '.join(targets)})")
        if not Path(path).is_file():
            raise ClipagError(f"picture {path} not found; give --image PATH or PATH=TARGET")
        pairs.append((path, target.strip() or targets[i]))
    return pairs


def fig5(ctx: Context) -> Figure:
    from ..explain import NEGATION_ATTACK
    attack = NEGATION_ATTACK
    figure = Figure("fig5", "Explainability visualisations", "Grad-CAM of each model for the target, on the clean "
                    f"picture and after the supplementary's attack towards 'not TARGET' (L-inf {attack.eps:g}/255, "
                    f"{attack.steps} steps of {attack.step_size:g}/255).")
    columns = [f"{m} {kind}" for m in ctx.models for kind in ("clean", "attacked")]
    rows = [_explained_row(ctx, path, target) for path, target in picture_targets(ctx.config.images)]
    figure.panels.append(Panel("", ["picture"] + columns, rows))
    return figure


def _explained_row(ctx: Context, path: str, target: str) -> tuple[str, list[Cell]]:
    """One picture's row: the picture as the models see it, then each model's clean and attacked maps.
    Written as one result (`io.save_result`: tiles first, JSON last), so a re-run keeps a finished row."""
    import hashlib
    from ..io import earlier_result, read_picture, save_png, save_result, square_tensor, unique_stems
    stem = ctx.out_dir / "pictures" / unique_stems([f"{Path(path).stem}-{target}"])[0]
    identity = {"picture": str(path), "picture_sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
                "target": target, "models": ctx.models}
    record = earlier_result(stem, identity, ctx.overwrite)
    if record is None:
        from ..explain import explain_picture
        picture = read_picture(path)
        size = max(ctx.guide(m).image_size[0] for m in ctx.models)
        rows = explain_picture({m: ctx.guide(m) for m in ctx.models}, picture, target, attack=True, map_size="model")

        def write_tiles() -> dict:
            tiles = []
            for n, row in enumerate(rows):
                save_png(row.tile, f"{stem}-{n}.png")
                tiles.append({"model": row.model, "attacked": row.attacked, "image": f"{stem}-{n}.png",
                              "similarity": row.result.similarity,
                              "negation_similarity": row.result.negation_similarity})
            return {"tiles": tiles}
        record = save_result(square_tensor(picture, size), identity, stem, [write_tiles])
    cells = [cell(record["image"], ctx.out_dir, target)]
    cells += [cell(t["image"], ctx.out_dir, f"cos {t['similarity']:.2f}, not {t['negation_similarity']:.2f}")
              for t in record["tiles"]]
    return Path(path).name, cells


def dataclass_settings(ctx: Context) -> dict:
    return {"models": ctx.models, "reproduce": dataclasses.asdict(ctx.config),
            "generation": dataclasses.asdict(generation_config(ctx))}


def needs_images(config: ReproduceConfig, models: Sequence[str]) -> Optional[str]:
    return None if config.images else "pictures with targets: --image PATH[=TARGET] (the paper: dog, parrot, cars, monkey)"
