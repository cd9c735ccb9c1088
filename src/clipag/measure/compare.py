"""`clipag compare`: one method, several guides, the same prompts and seeds; evaluated; one report.

    report = compare(["a red apple", "fire"], ["clip-emoji", "clipag-emoji"], "outputs/compare",
                     evaluators=["emoji-judge"], seeds=[0, 1])

Each guide's images go to OUT/runs/GUIDE/ (as the method's command writes them); every run is scored by
every evaluator (clipag.measure.evaluate), with the aesthetic score and pairwise preference against the first
guide when a predictor is given. OUT/report.html and its Markdown twin OUT/report.md hold the metrics
table, a bar chart, and one side-by-side strip per prompt (each guide's seeds in turn).
Methods are looked up in METHODS: generate, draw (CLIPDraw), vqgan (VQGAN+CLIP) and style (CLIPStyler).
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from .aesthetic import AestheticScorer, pairwise_preference
from .evaluate import collect_items, evaluate_items
from ..configs import COMPARE_METHODS
from ..errors import ClipagError
from ..generation.generate import GenerateConfig, generate_to_folder
from ..models.guide import Guide
from ..io import image_grid, load_image, save_json, save_png, unique_stems

if TYPE_CHECKING:
    from ..tools.style import StyleConfig
    from ..tools.vqgan import VQGANCLIPConfig

Method = Callable[[Guide, Sequence[str], Sequence[int], Path, str, bool], None]


def _run_generate(config: GenerateConfig) -> Method:
    def run(guide, prompts, seeds, out_dir, reference, progress, overwrite=False):
        generate_to_folder(guide, prompts, seeds, out_dir, config, model_reference=reference, progress=progress,
                           overwrite=overwrite)
    return run


def _run_draw(config) -> Method:
    from ..tools.draw import draw_to_folder

    def run(guide, prompts, seeds, out_dir, reference, progress, overwrite=False):
        for prompt in prompts:  # one drawing per prompt and seed
            draw_to_folder(guide, [prompt], seeds, out_dir, config, model_reference=reference, progress=progress,
                           overwrite=overwrite)
    return run


@dataclass
class VQGANMethod:
    """What `clipag compare vqgan` needs: the VQGAN+CLIP settings and the VQGAN's two files."""
    config: "VQGANCLIPConfig"
    vqgan_config: str
    vqgan_checkpoint: str

    def validate(self) -> None:
        self.config.validate()


def _run_vqgan(method: VQGANMethod) -> Method:
    from ..tools.vqgan import vqgan_to_folder
    from ..tools.vqgan_model import load_vqgan
    vqgan = load_vqgan(method.vqgan_config, method.vqgan_checkpoint)  # once, shared by every guide
    files = (method.vqgan_config, method.vqgan_checkpoint)

    def run(guide, prompts, seeds, out_dir, reference, progress, overwrite=False):
        for prompt in prompts:
            vqgan_to_folder(guide, vqgan, [prompt], seeds, out_dir, method.config, reference, files, progress,
                            overwrite)
    return run


@dataclass
class StyleMethod:
    """What `clipag compare style` needs: the CLIPStyler settings and the content image every prompt restyles."""
    config: "StyleConfig"
    content: str

    def validate(self) -> None:
        self.config.validate()
        if not Path(self.content).is_file():
            raise ClipagError(f"content image {self.content} not found; give --content IMAGE")


def _run_style(method: StyleMethod) -> Method:
    from ..tools.style import style_to_folder

    def run(guide, prompts, seeds, out_dir, reference, progress, overwrite=False):
        for prompt in prompts:  # one picture per prompt and seed
            style_to_folder(guide, method.content, [prompt], seeds, out_dir, method.config, reference, progress,
                            overwrite)
    return run


METHODS: dict[str, Callable[..., Method]] = {"generate": _run_generate, "draw": _run_draw, "vqgan": _run_vqgan,
                                             "style": _run_style}
assert tuple(METHODS) == COMPARE_METHODS  # the CLI offers the names without importing this module


def compare(prompts: Sequence[str], guides: Sequence[str], out_dir: str | Path, evaluators: Sequence[str],
            seeds: Sequence[int] = (0,), method: str = "generate", method_config=None, top_k: Sequence[int] = (1,),
            aesthetic: Optional[AestheticScorer] = None, device: str = "auto", precision: str = "fp32",
            progress: bool = True, overwrite: bool = False) -> dict:
    """Run `method` with each guide, evaluate every run, write report.html / report.md; returns the report.

    Re-run into the same folder, results made with the same settings are kept (see `io.earlier_result`).
    """
    if len(guides) < 2:
        raise ClipagError("compare needs two or more guides, e.g. --model clip-emoji --model clipag-emoji")
    if method not in METHODS:
        raise ClipagError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
    out_dir = Path(out_dir)
    run_method = METHODS[method](method_config if method_config is not None else _default_config(method))
    scorers = {ref: Guide.from_pretrained(ref, device=device, precision=precision) for ref in evaluators}
    runs = {}
    guides = list(dict.fromkeys(guides))
    for reference, stem in zip(guides, unique_stems(guides)):
        run_dir = out_dir / "runs" / stem
        guide = Guide.from_pretrained(reference, device=device, precision=precision)
        run_method(guide, prompts, seeds, run_dir, reference, progress, overwrite)
        items, problems = collect_items([str(run_dir)])
        runs[reference] = {**evaluate_items(items, scorers, top_k, aesthetic, progress=progress), "skipped": problems, "folder": str(run_dir)}
    report = {"method": method, "guides": list(guides), "evaluators": list(evaluators), "prompts": list(prompts),
              "seeds": list(seeds), "top_k": list(top_k), "settings": _settings(method_config, method),
              "runs": runs, "preference": _preferences(runs, guides) if aesthetic else {}}
    save_json(report, out_dir / "report.json")
    write_report_files(report, out_dir)
    return report


def _settings(method_config, method: str) -> dict:
    """The method's settings as plain JSON, for the report (the images' own JSON files hold them too)."""
    import dataclasses
    config = method_config if method_config is not None else _default_config(method)
    inner = getattr(config, "config", config)  # VQGANMethod / StyleMethod wrap the method's config
    settings = dataclasses.asdict(inner) if dataclasses.is_dataclass(inner) else {}
    extra = {k: v for k, v in vars(config).items() if k != "config"} if inner is not config else {}
    return {**settings, **{k: str(v) for k, v in extra.items()}}


def _default_config(method: str):
    if method == "draw":
        from ..tools.draw import DrawConfig
        return DrawConfig()
    if method in ("vqgan", "style"):
        needs = "VQGANMethod (a VQGAN config and checkpoint)" if method == "vqgan" else "StyleMethod (a content image)"
        raise ClipagError(f"method {method} has no default configuration; pass a {needs}")
    return GenerateConfig()


def _preferences(runs: dict, guides: Sequence[str]) -> dict:
    """Aesthetic preference of each later guide over the first, paired by (prompt, seed)."""
    def scores(guide):
        return {(row["prompt"], row["seed"]): row["aesthetic"] for row in runs[guide]["items"]}
    base = scores(guides[0])
    result = {}
    for guide in guides[1:]:
        other = scores(guide)
        keys = sorted(set(base) & set(other), key=str)
        result[f"{guide} over {guides[0]}"] = vars(pairwise_preference([other[k] for k in keys], [base[k] for k in keys]))
    return result


# ---------------------------------------------------------------- report files

def metric_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """Table header and rows: one row per guide, one column per evaluator metric."""
    first = report["runs"][report["guides"][0]]["summary"]
    columns = [(evaluator, metric) for evaluator, metrics in first.items() for metric in metrics]
    header = ["guide"] + [f"{evaluator} {metric}" for evaluator, metric in columns]
    rows = []
    for guide in report["guides"]:
        summary = report["runs"][guide]["summary"]
        rows.append([guide] + [_format(metric, summary[e][metric]) for e, metric in columns])
    return header, rows


def _format(metric: str, value: float) -> str:
    return f"{100 * value:.1f}%" if metric.startswith("r_precision") else f"{value:.4f}"


def sample_line(report: dict) -> str:
    """How many images each number rests on, and what chance would score."""
    prompts, seeds = len(report["prompts"]), len(report["seeds"])
    chance = ", ".join(f"R-Precision@{k} {100 * min(k, prompts) / prompts:.1f}%" for k in report.get("top_k", [1]))
    return (f"{prompts} prompts x {seeds} seeds = {prompts * seeds} images per guide; chance level (a random "
            f"ranking of the {prompts} prompts): {chance}; evaluators: {', '.join(report['evaluators'])}")


def image_cells(report: dict, out_dir: Path) -> list[tuple[str, list[tuple[str, str, list[str]]]]]:
    """Per prompt: (caption, image path relative to the report, score lines) for each guide and seed."""
    out = []
    for prompt in report["prompts"]:
        cells = []
        for guide in report["guides"]:
            rows = {row["seed"]: row for row in report["runs"][guide]["items"] if row["prompt"] == prompt}
            for seed in report["seeds"]:
                if seed in rows:
                    cells.append((f"{guide}, seed {seed}", _relative(rows[seed]["image"], out_dir), _scores(rows[seed], report)))
        out.append((prompt, cells))
    return out


def _scores(row: dict, report: dict) -> list[str]:
    lines = [f"{e}: {row[f'{e} similarity']:.3f}, rank {row[f'{e} rank']}/{len(report['prompts'])}"
             for e in report["evaluators"] if f"{e} similarity" in row]
    return lines + ([f"aesthetic {row['aesthetic']:.2f}"] if "aesthetic" in row else [])


def _relative(path: str, out_dir: Path) -> str:
    import os
    return Path(os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())).as_posix()


def write_report_files(report: dict, out_dir: Path) -> None:
    header, rows = metric_rows(report)
    strips = _prompt_strips(report, out_dir)
    cells = image_cells(report, out_dir)
    _bar_chart(report, out_dir / "metrics.png")
    warnings = sorted({w for run in report["runs"].values() for w in run["warnings"]})
    md = [f"# {report['method']}: {' vs '.join(report['guides'])}", "", sample_line(report), "",
          "| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
    md += ["", *[f"> warning: {w}" for w in warnings], "", "![metrics](metrics.png)", ""]
    for name, value in report["preference"].items():
        md.append(f"- aesthetic preference, {name}: {100 * value['wins']:.1f}% "
                  f"(95% CI {100 * value['low']:.1f}-{100 * value['high']:.1f}%, {value['prompts']} pairs)")
    md += ["", "## Per prompt", "", "Each image with its scores: the evaluator's similarity to the prompt and the "
           "prompt's rank among all prompts (1 = the image is closest to its own prompt).", ""]
    strip_of = dict(strips)
    for prompt, prompt_cells in cells:
        if not prompt_cells:
            continue
        md += [f"### {prompt}", "", f"![{prompt}]({strip_of[prompt]})", "",
               "| " + " | ".join(c[0] for c in prompt_cells) + " |", "|" + "---|" * len(prompt_cells),
               "| " + " | ".join(f"![{c[0]}]({c[1]})" for c in prompt_cells) + " |",
               "| " + " | ".join("<br>".join(c[2]) for c in prompt_cells) + " |", ""]
    md += ["## Settings", "", f"Method `{report['method']}`, as each image's JSON records them:", "", "```json",
           json.dumps(report.get("settings", {}), indent=2), "```"]
    (out_dir / "report.md").write_text("\n".join(md) + "\n")
    (out_dir / "report.html").write_text(_html(report, header, rows, warnings, cells))


def _prompt_strips(report: dict, out_dir: Path) -> list[tuple[str, str]]:
    strips = []
    for prompt, stem in zip(report["prompts"], unique_stems(report["prompts"])):
        tiles = []
        for guide in report["guides"]:
            by_seed = {row["seed"]: row["image"] for row in report["runs"][guide]["items"] if row["prompt"] == prompt}
            tiles += [load_image(by_seed[s], 128)[0] for s in report["seeds"] if s in by_seed]
        if tiles:
            name = f"strips/{stem}.png"
            save_png(image_grid(tiles, columns=len(tiles)), out_dir / name)
            strips.append((prompt, name))
    return strips


def _bar_chart(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    evaluators = report["evaluators"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    width = 0.8 / len(report["guides"])
    for i, guide in enumerate(report["guides"]):
        summary = report["runs"][guide]["summary"]
        xs = [e + i * width for e in range(len(evaluators))]
        axes[0].bar(xs, [summary[e]["r_precision@1"] for e in evaluators], width, label=guide)
        axes[1].bar(xs, [summary[e]["similarity"] for e in evaluators], width, label=guide)
    for ax, title in zip(axes, ("R-Precision@1", "mean similarity")):
        ax.set_xticks([e + 0.4 - width / 2 for e in range(len(evaluators))], evaluators)
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _html(report: dict, header: list[str], rows: list[list[str]], warnings: list[str], cells: list) -> str:
    e = html.escape
    table = "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows) + "</table>"
    prefs = "".join(f"<li>aesthetic preference, {e(n)}: {100 * v['wins']:.1f}% (95% CI {100 * v['low']:.1f}-"
                    f"{100 * v['high']:.1f}%, {v['prompts']} pairs)</li>" for n, v in report["preference"].items())
    body = "".join(f"<h3>{e(p)}</h3><div class=\"row\">" + "".join(
        f"<figure><img src=\"{e(path)}\" alt=\"{e(caption)}\"/><figcaption><b>{e(caption)}</b><br/>"
        + "<br/>".join(e(line) for line in lines) + "</figcaption></figure>" for caption, path, lines in prompt_cells)
        + "</div>" for p, prompt_cells in cells)
    settings = e(json.dumps(report.get("settings", {}), indent=2))
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"/><title>{e(report['method'])} comparison</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;border-bottom:1px solid #ddd}"
            "img{image-rendering:pixelated;max-width:100%}.row{display:flex;flex-wrap:wrap;gap:12px}"
            "figure{margin:0;font-size:12px}figure img{width:160px}</style></head><body>"
            f"<h1>{e(report['method'])}: {e(' vs '.join(report['guides']))}</h1>"
            f"<p>{e(sample_line(report))}</p>{table}"
            + "".join(f"<p><b>warning:</b> {e(w)}</p>" for w in warnings)
            + f"<img src=\"metrics.png\" alt=\"metrics\"/><ul>{prefs}</ul><h2>Per prompt</h2>"
            "<p>Each image with its scores: the evaluator's similarity to the prompt and the prompt's rank among all "
            f"prompts (1 = the image is closest to its own prompt).</p>{body}"
            f"<h2>Settings</h2><p>method {e(report['method'])}</p><pre>{settings}</pre></body></html>\n")
