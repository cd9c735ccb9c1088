"""`clipag reproduce`: the CLIPAG supplementary's figures and tables, one command each.

    from clipag.reproduce import reproduce
    reproduce("fig7", ["clip-emoji", "clipag-emoji"], "outputs/reproduce", ReproduceConfig(quick=True))
    reproduce("all", ["clip-vit-b-32", "clipag-vit-b-32"])          # the paper's settings, on a GPU

Each target writes OUT/TARGET/index.html, its Markdown twin index.md, settings.json and every picture;
`all` runs every target whose inputs were given and writes OUT/index.html listing them (and why the
others were not run). A re-run with the same settings keeps every picture it already has.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..configs import REPRODUCE_TARGETS, ReproduceConfig
from ..errors import ClipagError
from . import figures, tools
from .figures import Context
from .page import Figure, write_index, write_page


@dataclass(frozen=True)
class Target:
    title: str
    build: Callable[[Context], Figure]
    needs: Callable[[ReproduceConfig, Sequence[str]], Optional[str]] = lambda config, models: None  # what is missing


TARGETS: dict[str, Target] = {
    "fig1": Target("VQGAN+CLIP additional results", tools.fig1, tools.needs_vqgan),
    "fig2": Target("CLIPStyler additional results", tools.fig2, tools.needs_contents),
    "fig3": Target("Generation trajectory", figures.fig3),
    "fig4": Target("Initialisation ablation", figures.fig4),
    "fig5": Target("Explainability visualisations", figures.fig5, figures.needs_images),
    "fig6": Target("Generator-free ablation", figures.fig6),
    "fig7": Target("Generator-free text-to-image results", figures.fig7),
    "fig8": Target("Prefix effect", figures.fig8),
    "fig9": Target("Stochasticity", figures.fig9),
    "table-clipdraw": Target("CLIPDraw with each guide", tools.table_clipdraw, tools.needs_evaluators),
    "table-vqgan": Target("VQGAN+CLIP with each guide", tools.table_vqgan, tools.needs_table_vqgan),
}
assert tuple(TARGETS) == REPRODUCE_TARGETS  # the CLI offers the names without importing this module


def reproduce(target: str, models: Sequence[str], out_dir: str | Path = "outputs/reproduce",
              config: ReproduceConfig = ReproduceConfig(), device: str = "auto", precision: str = "auto",
              progress: bool = True, overwrite: bool = False) -> Path:
    """Make `target` (a key of TARGETS, or "all") with each model; returns the page's Markdown path."""
    config.validate()
    tools.check_files(config)
    models = list(dict.fromkeys(models))
    if not models:
        raise ClipagError("give at least one model, e.g. --model clip-emoji --model clipag-emoji")
    out_dir, guides = Path(out_dir), {}
    if target == "all":
        return _reproduce_all(models, out_dir, config, device, precision, progress, overwrite)
    if target not in TARGETS:
        raise ClipagError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)} or all")
    missing = TARGETS[target].needs(config, models)
    if missing:
        raise ClipagError(f"{target} needs {missing}")
    ctx = Context(models, out_dir / target, config, device, precision, progress, overwrite, guides)
    return _make(target, ctx)


def _reproduce_all(models, out_dir, config, device, precision, progress, overwrite) -> Path:
    guides, entries = {}, []
    for name, target in TARGETS.items():
        missing = target.needs(config, models)
        if missing:
            entries.append((name, target.title, f"not run: needs {missing}"))
            continue
        ctx = Context(models, out_dir / name, config, device, precision, progress, overwrite, guides)
        _make(name, ctx)
        entries.append((name, target.title, f"{name}/index.md"))
        if progress:
            print(f"{name}: {out_dir / name / 'index.html'}", flush=True)
    return write_index(entries, out_dir)[1]


def _make(name: str, ctx: Context) -> Path:
    from ..files import save_json
    from ..io import environment
    figure = TARGETS[name].build(ctx)
    save_json({"target": name, **figures.dataclass_settings(ctx), "device": ctx.device,
               "precision": ctx.precision, **environment()}, ctx.out_dir / "settings.json")
    return write_page(figure, ctx.out_dir)[1]


__all__ = ["TARGETS", "ReproduceConfig", "Target", "reproduce"]
