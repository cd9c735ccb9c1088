"""The supplementary's results with existing tools: Figure 1 (VQGAN+CLIP), Figure 2 (CLIPStyler), and the
two tables (CLIPDraw on the drawing prompts, VQGAN+CLIP on MS-COCO captions), each with every model.

The figures name no prompts in the text: Figure 1 takes captions of Figure 7, Figure 2 the text prompts
of CLIPStyler's own examples. The tables run `clipag compare` (its report pages sit beside the table).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from ..configs import DrawConfig, ReproduceConfig, StyleConfig, VQGANCLIPConfig
from ..errors import ClipagError
from .figures import Context, captions
from .page import Figure, Panel, cell

STYLE_PROMPTS = ["Sketch with black pencil", "Starry Night by Vincent van gogh", "fire", "a watercolor painting"]
TABLE_PROMPTS_QUICK = 8  # drawing prompts (of 100) and COCO captions with --quick


def vqgan_config(config: ReproduceConfig) -> VQGANCLIPConfig:
    """nerdyrodent/VQGAN-CLIP's defaults; quick: 20 steps, 8 cutouts, 128 px. --steps sets the steps."""
    quick = VQGANCLIPConfig(steps=20, crops=8, size=128) if config.quick else VQGANCLIPConfig()
    return replace(quick, steps=config.steps or quick.steps)


def style_config(config: ReproduceConfig) -> StyleConfig:
    """CLIPStyler's settings; quick: 10 steps, 128 px, pixel content loss (no VGG weights needed)."""
    quick = (StyleConfig(steps=10, width=128, height=128, crops=8, crop_size=64, content_loss="pixels")
             if config.quick else StyleConfig())
    return replace(quick, steps=config.steps or quick.steps)


def draw_config(config: ReproduceConfig, augment: bool) -> DrawConfig:
    """kvfrans/clipdraw's settings (1000 steps, 256 strokes); quick: 20 steps, 32 strokes."""
    quick = DrawConfig(steps=20, strokes=32, augment=augment) if config.quick else DrawConfig(augment=augment)
    return replace(quick, steps=config.steps or quick.steps)


def _load_vqgan(config: ReproduceConfig):
    from ..tools.vqgan_model import load_vqgan
    return load_vqgan(config.vqgan_config, config.vqgan_checkpoint)


# ---------------------------------------------------------------- figures

def fig1(ctx: Context) -> Figure:
    from ..tools.vqgan import vqgan_to_folder
    prompts, config, vqgan = captions(0, 4, 8, 12), vqgan_config(ctx.config), _load_vqgan(ctx.config)
    files = (ctx.config.vqgan_config, ctx.config.vqgan_checkpoint)
    figure = Figure("fig1", "VQGAN+CLIP additional results", f"VQGAN+CLIP ({config.steps} steps, "
                    f"{config.crops} cutouts) guided by each model, seed 0, on four captions of Figure 7 (the text "
                    "names none).")
    records = {m: [vqgan_to_folder(ctx.guide(m), vqgan, [p], [0], ctx.folder(m), config, m, files, ctx.progress,
                                   ctx.overwrite)[0] for p in prompts] for m in ctx.models}
    figure.panels.append(Panel("", list(ctx.models), [
        (p, [cell(records[m][i]["image"], ctx.out_dir) for m in ctx.models]) for i, p in enumerate(prompts)]))
    return figure


def fig2(ctx: Context) -> Figure:
    from ..tools.style import style_to_folder
    config = style_config(ctx.config)
    figure = Figure("fig2", "CLIPStyler additional results", f"CLIPStyler with its style network ({config.steps} "
                    f"steps) guided by each model, seed 0: each content picture restyled by text prompts of "
                    "CLIPStyler's own examples (the text names none).")
    rows = []
    for content in ctx.config.contents:
        shown = _content_as_styled(content, config, ctx.out_dir)
        for prompt in STYLE_PROMPTS:
            cells = [cell(shown, ctx.out_dir, "content")]
            for m in ctx.models:
                folder = ctx.folder(m, Path(content).stem)
                record = style_to_folder(ctx.guide(m), content, [prompt], [0], folder, config, m, ctx.progress,
                                         ctx.overwrite)[0]
                cells.append(cell(record["image"], ctx.out_dir))
            rows.append((f"{Path(content).name}: {prompt}", cells))
    figure.panels.append(Panel("", ["content"] + list(ctx.models), rows))
    return figure


def _content_as_styled(content: str, config: StyleConfig, out_dir: Path) -> Path:
    """The content picture as CLIPStyler sees it, inside the page's folder (the page needs no other file)."""
    from ..io import load_image_resized, save_png, unique_stems
    path = out_dir / "contents" / f"{unique_stems([Path(content).stem])[0]}.png"
    save_png(load_image_resized(content, config.width, config.height)[0], path)
    return path


# ---------------------------------------------------------------- tables

def table_clipdraw(ctx: Context) -> Figure:
    from ..measure.compare import compare
    from ..generation.prompts import load_prompts
    prompts = load_prompts("drawing")[:TABLE_PROMPTS_QUICK if ctx.config.quick else None]
    figure = Figure("table-clipdraw", "CLIPDraw with each guide", f"CLIPDraw on {len(prompts)} drawing prompts, "
                    "seed 0, with and without its augmentation, guided by each model and scored by the evaluators: "
                    "similarity, R-Precision@1 among the prompts, and the aesthetic score and preference when a "
                    "predictor is given.")
    reports = {}
    for augment in (True, False):
        name = "augment" if augment else "no-augment"
        reports[name] = compare(prompts, ctx.models, ctx.out_dir / name, ctx.config.evaluators, seeds=[0],
                                method="draw", method_config=draw_config(ctx.config, augment),
                                aesthetic=_aesthetic(ctx), device=ctx.device, precision=ctx.precision,
                                progress=ctx.progress, overwrite=ctx.overwrite)
    return _table(figure, reports, ctx)


def table_vqgan(ctx: Context) -> Figure:
    from ..measure.compare import VQGANMethod, compare
    from ..generation.prompts import sample_coco_captions
    count = TABLE_PROMPTS_QUICK if ctx.config.quick else 100
    prompts = sample_coco_captions(ctx.config.captions, count, seed=0)
    config = vqgan_config(ctx.config)
    figure = Figure("table-vqgan", "VQGAN+CLIP with each guide", f"VQGAN+CLIP on {count} MS-COCO captions "
                    f"(seeded sample, seed 0), {config.steps} steps, scored by the evaluators.")
    method = VQGANMethod(config, ctx.config.vqgan_config, ctx.config.vqgan_checkpoint)
    report = compare(prompts, ctx.models, ctx.out_dir / "runs", ctx.config.evaluators, seeds=[0], method="vqgan",
                     method_config=method, device=ctx.device, precision=ctx.precision, progress=ctx.progress,
                     overwrite=ctx.overwrite)
    return _table(figure, {"": report}, ctx)


def _aesthetic(ctx: Context):
    if not ctx.config.aesthetic:
        return None
    from ..measure.aesthetic import AestheticScorer
    return AestheticScorer.from_files(ctx.config.aesthetic, device=ctx.device)


def _table(figure: Figure, reports: dict, ctx: Context) -> Figure:
    """One row per (setting, guide): each evaluator's similarity and R-Precision@1, the aesthetic mean and
    preference over the first guide; a note for every evaluator that also guided."""
    evaluators = ctx.config.evaluators
    header = ["guide"] + (["setting"] if len(reports) > 1 else [])
    header += [f"{e} {m}" for e in evaluators for m in ("similarity", "R-Precision@1")]
    aesthetic = any("aesthetic" in r["runs"][g]["summary"] for r in reports.values() for g in r["guides"])
    header += ["aesthetic", f"preferred over {ctx.models[0]}"] if aesthetic else []
    rows = []
    for setting, report in reports.items():
        for guide in report["guides"]:
            summary = report["runs"][guide]["summary"]
            row = [guide] + ([setting] if len(reports) > 1 else [])
            row += [v for e in evaluators for v in (f"{summary[e]['similarity']:.4f}",
                                                     f"{100 * summary[e]['r_precision@1']:.1f}%")]
            if aesthetic:
                row += [f"{summary['aesthetic']['mean']:.3f}", _preference(report, guide)]
            rows.append(row)
    figure.table = (header, rows)
    figure.notes += [f"{e} is also a guide: its scores of its own results are biased upwards" for e in evaluators
                     if e in ctx.models]
    figure.notes += [f"each image with its scores: {name or 'runs'}/report.html" for name in reports]
    return figure


def _preference(report: dict, guide: str) -> str:
    value = report["preference"].get(f"{guide} over {report['guides'][0]}")
    if value is None:
        return "-"
    return f"{100 * value['wins']:.1f}% [{100 * value['low']:.1f}, {100 * value['high']:.1f}]"


# ---------------------------------------------------------------- what each needs

def needs_vqgan(config: ReproduceConfig, models: Sequence[str]) -> Optional[str]:
    return None if config.vqgan_config else "a VQGAN: --vqgan-config YAML --vqgan-checkpoint CKPT"


def needs_contents(config: ReproduceConfig, models: Sequence[str]) -> Optional[str]:
    return None if config.contents else "content pictures: --content PATH"


def needs_evaluators(config: ReproduceConfig, models: Sequence[str]) -> Optional[str]:
    if len(models) < 2:
        return "two or more --model to compare"
    return None if config.evaluators else "evaluators: --evaluator MODEL (two, as the paper)"


def needs_table_vqgan(config: ReproduceConfig, models: Sequence[str]) -> Optional[str]:
    missing = needs_evaluators(config, models) or needs_vqgan(config, models)
    return missing or (None if config.captions else "MS-COCO captions: --captions captions_val2017.json")


def check_files(config: ReproduceConfig) -> None:
    """Every input file named in `config` exists (before any model is loaded)."""
    named = [*config.contents, config.vqgan_config, config.vqgan_checkpoint, config.captions, config.aesthetic]
    for path in named:
        if path and not Path(path).is_file():
            raise ClipagError(f"{path} not found; check the path")
