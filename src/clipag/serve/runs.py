"""What `clipag serve` does, without the web framework: checked requests, several guides stepped side by
side, results written as the CLI writes them, and the gallery read back from the output folder.

    request = Request("generate", "a red apple", ["clip-emoji", "clipag-emoji"], seed=0, steps=50)
    for frame in side_by_side(request, guides, out_dir, limits):    # every few steps
        frame.images, frame.captions                                 # one picture per guide
    frame.records                                                     # the last frame: what was written

Runs of different guides are interleaved step by step in one thread, each with its own state of torch's
global generator (the augmentations draw from it), so every guide's picture equals the CLI's with the
same seed and settings.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import torch

from ..configs import DrawConfig, GenerateConfig, StyleConfig, VQGANCLIPConfig, ViewConfig
from ..errors import ClipagError

METHODS = ("generate", "draw", "vqgan", "style")  # vqgan only where the server was given a VQGAN
LOSS_METHODS = ("vqgan", "style")  # their runs report a loss (lower is better), not a similarity


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask, so that a shared page cannot be made to run for hours."""
    prompt_chars: int = 300
    prompt_lines: int = 8
    upload_bytes: int = 10 * 2**20
    steps: int = 1000
    size: int = 512
    guides: int = 4
    seed: int = 2**31 - 1
    preview_every: int = 5  # steps between pictures sent to the page


@dataclass
class Request:
    """One run asked from the page: a method, the prompt text, the guides and the main settings."""
    method: str
    prompt: str  # one prompt per line; "text:weight", a negative weight is a negative prompt (draw)
    models: list[str]
    seed: int = 0
    steps: int = 50
    size: Optional[int] = None  # None: the guide's input size
    views: int = 16  # generate: augmented views and crops each; draw: augmented views
    strokes: int = 256  # draw
    init: str = "gmm"  # generate: "gmm" (the guide's own GMM, as the CLI) or "noise"
    content: Optional[str] = None  # style: the uploaded picture's path

    def prompts(self) -> list[str]:
        return [line.strip() for line in self.prompt.splitlines() if line.strip()]

    def check(self, limits: Limits) -> None:
        """A ClipagError naming the first thing out of bounds."""
        prompts = self.prompts()
        if self.method not in METHODS:
            raise ClipagError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if not prompts:
            raise ClipagError("write a prompt, e.g. a red apple")
        if len(self.prompt) > limits.prompt_chars or len(prompts) > limits.prompt_lines:
            raise ClipagError(f"the prompt is too long: at most {limits.prompt_chars} characters on "
                              f"{limits.prompt_lines} lines")
        if self.method == "generate" and len(prompts) > 1:
            raise ClipagError("generate makes one picture for one prompt: write it on one line")
        if not self.models:
            raise ClipagError("choose at least one guide")
        if len(self.models) > limits.guides:
            raise ClipagError(f"at most {limits.guides} guides at once")
        if not 1 <= self.steps <= limits.steps:
            raise ClipagError(f"steps must be between 1 and {limits.steps}, got {self.steps}")
        if self.size is not None and not 16 <= self.size <= limits.size:
            raise ClipagError(f"size must be between 16 and {limits.size} pixels, got {self.size}")
        if not 0 <= self.seed <= limits.seed:
            raise ClipagError(f"the seed must be between 0 and {limits.seed}")
        if self.init not in ("gmm", "noise"):
            raise ClipagError(f"init must be gmm or noise, got {self.init!r}")
        if not 1 <= self.views <= 64 or not 1 <= self.strokes <= 1024:
            raise ClipagError("views must be 1 to 64 and strokes 1 to 1024")
        if self.method == "style":
            check_upload(self.content, limits)
            if self.size is not None and self.size % 8:
                raise ClipagError(f"style needs a size divisible by 8, got {self.size}")

    def config(self):
        """The method's settings: the CLI's defaults, with the page's steps, size and views."""
        if self.method == "generate":
            return GenerateConfig(steps=self.steps, size=self.size, init=self.init,
                                  views=ViewConfig(views=self.views, crops=self.views))
        if self.method == "draw":
            return DrawConfig(steps=self.steps, size=self.size, views=self.views, strokes=self.strokes)
        if self.method == "vqgan":
            return VQGANCLIPConfig(steps=self.steps, size=self.size, crops=self.views)
        side = ({"width": self.size, "height": self.size, "crop_size": min(StyleConfig.crop_size, self.size // 2)}
                if self.size else {})  # the reference's 128 px patches, or half the side of a smaller picture
        return StyleConfig(steps=self.steps, crops=self.views, content_loss=_style_content_loss(), **side)


def _style_content_loss() -> str:
    """The reference's VGG19 content loss where torchvision's weights file is there, else pixels (as
    `clipag style --content-loss pixels`): a page never stops on a missing download."""
    from ..tools.style import default_vgg_weights
    return "vgg" if default_vgg_weights().is_file() else "pixels"


def check_upload(path: Optional[str], limits: Limits) -> None:
    """An uploaded content picture: present, within the size bound, and an image PIL can read."""
    from ..io import DECODE_ERRORS, read_picture
    if not path:
        raise ClipagError("style restyles a picture: upload one")
    if Path(path).stat().st_size > limits.upload_bytes:
        raise ClipagError(f"the picture is over {limits.upload_bytes // 2**20} MB; upload a smaller one")
    try:
        read_picture(path)
    except (ClipagError, *DECODE_ERRORS):
        raise ClipagError(f"{Path(path).name} is not a picture this page can read; upload a PNG or JPEG") from None


@dataclass
class Frame:
    """What the page shows after some steps: one picture and caption per guide."""
    images: list[torch.Tensor]  # (3, S, S) in [0,1]
    captions: list[str]
    records: list[dict] = field(default_factory=list)  # filled in the last frame: each guide's written record


def start_run(request: Request, guide, vqgan=None):
    """The method's step-at-a-time run (`GenerationRun`, `DrawRun`, `VQGANCLIPRun`, `StyleRun`) for one guide."""
    config = request.config()
    if request.method == "generate":
        from ..generation.generate import GenerationRun
        return GenerationRun(guide, request.prompts()[0], request.seed, config)
    if request.method == "draw":
        from ..tools.draw import DrawRun
        return DrawRun(guide, request.prompts(), request.seed, config)
    if request.method == "vqgan":
        if vqgan is None:
            raise ClipagError("this server has no VQGAN; start it with --vqgan-config YAML --vqgan-checkpoint CKPT")
        from ..tools.vqgan import VQGANCLIPRun
        return VQGANCLIPRun(guide, vqgan, request.prompts(), request.seed, config)
    from ..io import load_image_resized
    from ..tools.style import StyleRun
    content = load_image_resized(request.content, config.width, config.height)  # (1, 3, H, W)
    return StyleRun(guide, content, request.prompts(), request.seed, config)


def side_by_side(request: Request, guides: dict, out_dir: str | Path, limits: Limits = Limits(),
                 stop: Optional[threading.Event] = None, vqgan=None) -> Iterator[Frame]:
    """Step every guide's run in turn, yielding a Frame every `limits.preview_every` steps and a last one
    with the written records. Setting `stop` ends every run after its current step; what was made so far
    is written (its record says "stopped": the step)."""
    request.check(limits)
    runs, states = {}, {}
    for model in request.models:  # each run seeds the global generator; keep each one's state apart
        runs[model] = start_run(request, guides[model], vqgan.model if vqgan else None)
        states[model] = _rng_state()
    while not all(run.done for run in runs.values()) and not (stop and stop.is_set()):
        for model, run in runs.items():
            _set_rng_state(states[model])
            run.step()
            states[model] = _rng_state()
        if runs[request.models[0]].steps_done % limits.preview_every == 0:
            yield _frame(runs, request)
    from ..io import unique_stems
    frame = _frame(runs, request)
    folders = dict(zip(request.models, unique_stems(request.models)))  # distinct even when long names share a start
    frame.records = [_write(request, run, model, guides[model], Path(out_dir) / request.method / folders[model], vqgan)
                     for model, run in runs.items()]
    yield frame


def _frame(runs: dict, request: Request) -> Frame:
    images, captions = [], []
    for model, run in runs.items():
        images.append(run.image())
        what = "loss" if request.method in LOSS_METHODS else "similarity"
        score = f", {what} {run.history[-1]:.3f}" if run.history else ""
        captions.append(f"{model}: step {run.steps_done}/{request.steps}{score}")
    return Frame(images, captions)


def _write(request: Request, run, model: str, guide, folder: Path, vqgan=None) -> dict:
    """The run's result where the CLI would write it: FOLDER/STEM-seedN.{png,json} (FOLDER: OUT/METHOD/MODEL)."""
    from ..io import unique_stems
    result = run.result()
    extra = {} if run.done else {"stopped": run.steps_done}
    prompts = " ".join(request.prompts())

    def stem(text: str) -> Path:  # the CLI's file name for this text and seed
        return folder / f"{unique_stems([text])[0]}-seed{request.seed}"
    if request.method == "generate":
        from ..generation.generate import write_generation
        return write_generation(result, stem(result.prompt), run.config, guide, model, **extra)
    if request.method == "draw":
        from ..tools.draw import write_drawing
        return write_drawing(result, stem(prompts), run.config, model, **extra)
    if request.method == "vqgan":
        from ..tools.vqgan import write_vqgan
        return write_vqgan(result, stem(prompts), run.config, model, vqgan.files, **extra)
    from ..tools.style import write_style
    return write_style(result, stem(f"{Path(request.content).stem} {prompts}"), run.content.cpu(), request.content,
                       run.config, model, request.seed, **extra)


def _rng_state() -> tuple:
    return torch.get_rng_state(), (torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)


def _set_rng_state(state: tuple) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


# ---------------------------------------------------------------- the gallery

def past_results(out_dir: str | Path, limit: int = 200) -> list[dict]:
    """The finished results under `out_dir` (newest first, at most `limit`), each its record plus
    "files": the PNG, the SVG of a drawing and the JSON."""
    from ..io import finished_result
    found = []
    for path in sorted(Path(out_dir).rglob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        record = finished_result(path.with_suffix(""))
        if record is None or "image" not in record:
            continue
        files = [record["image"]] + ([record["svg"]] if record.get("svg") else []) + [str(path)]
        found.append({**record, "files": [f for f in files if Path(f).is_file()]})
        if len(found) == limit:
            break
    return found


def caption(record: dict) -> str:
    """A gallery picture's line: guide, prompt, seed, similarity."""
    stopped = f", stopped at step {record['stopped']}" if record.get("stopped") else ""
    similarity = record.get("similarity")
    score = f", similarity {similarity:.3f}" if isinstance(similarity, (int, float)) else ""
    return f"{record.get('model', '?')}: {record.get('prompt', '')} (seed {record.get('seed', '?')}{score}{stopped})"


def settings_of(record: dict) -> dict:
    """The record without its long histories, for the page."""
    return {k: v for k, v in record.items() if not k.endswith("_history") and k != "files"}


__all__ = ["Frame", "Limits", "METHODS", "Request", "caption", "past_results", "side_by_side", "start_run"]


@dataclass
class ServedVQGAN:
    """The VQGAN a server offers: the model, loaded once, and its two files (recorded with each result)."""
    model: object
    files: tuple[str, str]

    @classmethod
    def load(cls, config: str, checkpoint: str) -> "ServedVQGAN":
        from ..tools.vqgan_model import load_vqgan
        return cls(load_vqgan(config, checkpoint), (str(config), str(checkpoint)))
