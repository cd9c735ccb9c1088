"""The `clipag serve` page, built with Gradio: the convention of this field's demos (Hugging Face Spaces,
the CLIP-guided notebooks' web UIs), with streaming outputs, a bounded queue and a Python client
(`gradio_client`) that the tests drive without a browser.

    app = build_app(["clip-emoji", "clipag-emoji"], "outputs/serve")
    app.launch(server_name="127.0.0.1", server_port=7860)

No `from __future__ import annotations` here: Gradio finds the `gr.Request` argument of a handler by its
annotation, which must be the class, not a string.
"""

import threading
from pathlib import Path
from typing import Sequence

from ..errors import ClipagError
from .runs import METHODS, Limits, Request, ServedVQGAN, caption, past_results, settings_of, side_by_side


class Guides:
    """Guides loaded on first use and kept, one at a time (loading is not thread-safe in every library)."""

    def __init__(self, device: str = "auto", precision: str = "auto"):
        self.device, self.precision, self.loaded, self.lock = device, precision, {}, threading.Lock()

    def get(self, models: Sequence[str]) -> dict:
        from ..models.guide import Guide
        with self.lock:
            for model in models:
                if model not in self.loaded:
                    self.loaded[model] = Guide.from_pretrained(model, device=self.device, precision=self.precision)
            return {m: self.loaded[m] for m in models}


def build_app(models: Sequence[str], out_dir: str | Path = "outputs/serve", limits: Limits = Limits(),
              device: str = "auto", precision: str = "auto", queue_size: int = 16, vqgan: tuple[str, str] = None):
    """The page: prompt, method, guides and settings; the guides' pictures live, side by side, with a stop
    button that keeps what was made; and the gallery of past results in `out_dir`. With `vqgan` (its
    YAML and checkpoint) the page offers VQGAN+CLIP too."""
    import gradio as gr
    out_dir, guides, stops = Path(out_dir), Guides(device, precision), {}
    served_vqgan = ServedVQGAN.load(*vqgan) if vqgan else None
    methods = [m for m in METHODS if m != "vqgan" or served_vqgan]
    defaults = Request("generate", "", list(models))

    def run(prompt, method, chosen, seed, steps, size, views, strokes, init, content, request: gr.Request):
        stop = stops.setdefault(request.session_hash, threading.Event())
        stop.clear()
        try:
            asked = Request(method, prompt or "", list(chosen or []), int(seed or 0), int(steps or 0),
                            int(size) if size else None, int(views or 0), int(strokes or 0), init or "gmm",
                            content or None)
            asked.check(limits)
            for frame in side_by_side(asked, guides.get(asked.models), out_dir, limits, stop, served_vqgan):
                done = "stopped" if stop.is_set() else "done"
                status = f"{done}: written to {out_dir / method}" if frame.records else "running..."
                yield [(_pil(image), text) for image, text in zip(frame.images, frame.captions)], status
        except ClipagError as err:
            raise gr.Error(str(err)) from None

    def stop_run(request: gr.Request):
        stops.setdefault(request.session_hash, threading.Event()).set()

    def gallery():
        records = past_results(out_dir)
        return [(r["image"], caption(r)) for r in records], records

    def select(records, event: gr.SelectData):
        record = records[event.index] if records and event.index < len(records) else None
        return (settings_of(record), record["files"]) if record else ({}, [])

    with gr.Blocks(title="clipag: guides draw side by side") as app:
        gr.Markdown("# clipag\nOne prompt, several guides, side by side: see what each model's gradients draw. "
                    "Settings as `clipag generate`, `draw`, `vqgan` and `style` take them; results go where the "
                    "CLI writes them.")
        with gr.Row():
            with gr.Column(scale=1):
                prompt = gr.Textbox(label="prompt", lines=3, max_length=limits.prompt_chars,
                                    placeholder='a red apple\n(draw: one per line, "text:weight", negative weights push away)')
                method = gr.Radio(methods, value="generate", label="method")
                content = gr.File(label="picture to restyle (style)", file_types=["image"], type="filepath")
                chosen = gr.CheckboxGroup(list(models), value=list(models), label="guides")
                with gr.Row():
                    seed = gr.Number(value=defaults.seed, precision=0, label="seed", minimum=0, maximum=limits.seed)
                    steps = gr.Slider(1, limits.steps, value=defaults.steps, step=1, label="steps")
                with gr.Accordion("more settings", open=False):
                    size = gr.Number(value=None, precision=0, label="size in pixels (empty: the guide's)")
                    views = gr.Slider(1, 64, value=defaults.views, step=1,
                                      label="views (generate: and crops; vqgan: cutouts; style: crops)")
                    strokes = gr.Slider(1, 1024, value=defaults.strokes, step=1, label="strokes (draw)")
                    init = gr.Radio(["gmm", "noise"], value="gmm", label="start (generate)")
                with gr.Row():
                    start = gr.Button("run", variant="primary", elem_id="run")
                    stop = gr.Button("stop", elem_id="stop")
            with gr.Column(scale=2):
                live = gr.Gallery(label="live", columns=max(1, len(models)), format="png", elem_id="live")
                status = gr.Markdown(elem_id="status")
        with gr.Accordion("past results", open=False):
            refresh = gr.Button("refresh")
            past = gr.Gallery(label="past results", columns=6, elem_id="past")
            records = gr.State([])
            details = gr.JSON(label="settings and scores")
            files = gr.File(label="downloads", file_count="multiple")
        start.click(run, [prompt, method, chosen, seed, steps, size, views, strokes, init, content], [live, status],
                    api_name="run", concurrency_limit=1)
        stop.click(stop_run, None, None, queue=False, api_name="stop")
        refresh.click(gallery, None, [past, records], api_name="gallery")
        past.select(select, records, [details, files])
        app.load(gallery, None, [past, records])
    app.queue(max_size=queue_size, default_concurrency_limit=1)
    app.clipag_out_dir = out_dir
    return app


def launch(app, host: str = "127.0.0.1", port: int = 7860, block: bool = True, max_upload: str = "10mb"):
    """Serve `app` on host:port (localhost by default); only the output folder's files are served."""
    return app.launch(server_name=host, server_port=port, allowed_paths=[str(app.clipag_out_dir)],
                      max_file_size=max_upload, prevent_thread_lock=not block, quiet=not block, show_error=True,
                      ssr_mode=False)


def _pil(image):
    from ..io import to_pil
    return to_pil(image)
