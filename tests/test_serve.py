"""`clipag serve` without a browser: the runs side by side (clipag.serve.runs) and the Gradio page through
its own client (gradio_client), on tiny random models."""
import json
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipag.cli.main import main
from clipag.errors import ClipagError
from clipag.serve import Limits, Request, past_results, side_by_side
from clipag.serve.app import Guides

TINY = "clipag-tiny:random"


def _cli_picture(tmp_path: Path, method: str, model: str, *options: str) -> np.ndarray:
    out = tmp_path / "cli"
    assert main([method, "a red apple", "--model", model, "--seed", "3", "--steps", "4", *options,
                 "--out", str(out), "--quiet"]) == 0
    return np.asarray(Image.open(next(out.glob("*-seed3.png"))))


@pytest.fixture
def guides(tmp_path, tiny_checkpoint):
    """Two guides with weights in files (a ':random' model would differ between the page and the CLI)."""
    import torch
    from clipag.models.loading import load_model
    torch.manual_seed(1)
    with pytest.warns(UserWarning, match="random weights"):
        other = load_model(TINY).model
    torch.save(other.state_dict(), tmp_path / "other.pt")
    models = [f"clipag-tiny:{tiny_checkpoint[0]}", f"clipag-tiny:{tmp_path / 'other.pt'}"]
    return models, Guides(device="cpu", precision="fp32").get(models)


@pytest.mark.parametrize("method,options", [("generate", ["--views", "2", "--crops", "2", "--init", "noise"]),
                                            ("draw", ["--views", "2", "--strokes", "8"])])
def test_side_by_side_streams_and_ends_with_the_clis_pictures(tmp_path, capsys, guides, method, options):
    models, loaded = guides
    request = Request(method, "a red apple", models, seed=3, steps=4, views=2, strokes=8, init="noise")
    frames = list(side_by_side(request, loaded, tmp_path / "serve", Limits(preview_every=2)))
    assert len(frames) == 3 and not frames[0].records and len(frames[-1].records) == 2  # steps 2, 4, then written
    assert frames[0].captions[1].startswith(f"{models[1]}: step 2/4, similarity ")
    for model, record in zip(models, frames[-1].records):
        served = np.asarray(Image.open(record["image"]))
        assert "stopped" not in record and record["model"] == model
        assert np.array_equal(served, _cli_picture(tmp_path / Path(model).stem, method, model, *options))


def test_stop_keeps_what_was_made_and_says_where_it_stopped(tmp_path, guides):
    models, loaded = guides
    stop = threading.Event()
    request = Request("generate", "fire", models, steps=50, views=2, init="noise")
    frames = side_by_side(request, loaded, tmp_path, Limits(preview_every=1), stop)
    next(frames)
    stop.set()
    last = list(frames)[-1]
    assert [r["stopped"] for r in last.records] in ([1, 1], [2, 2])
    assert all(Path(r["image"]).is_file() for r in last.records)
    assert {r["prompt"] for r in past_results(tmp_path)} == {"fire"}


@pytest.mark.parametrize("change,message", [({"prompt": "x" * 301}, "too long"), ({"steps": 0}, "steps must be"),
                                            ({"models": []}, "at least one guide"), ({"size": 5000}, "size must be"),
                                            ({"prompt": "a\nb"}, "one prompt"), ({"method": "paint"}, "unknown method")])
def test_requests_out_of_bounds_are_refused_with_a_reason(change, message):
    request = Request(**{"method": "generate", "prompt": "a red apple", "models": [TINY], **change})
    with pytest.raises(ClipagError, match=message):
        request.check(Limits())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_page_streams_a_run_and_survives_bad_input(tmp_path, guides):
    pytest.importorskip("gradio")
    from gradio_client import Client, handle_file
    from clipag.serve import build_app
    from clipag.serve.app import launch
    models, _ = guides
    app = build_app(models, tmp_path / "serve", Limits(preview_every=1), device="cpu", precision="fp32")
    port = _free_port()
    launch(app, port=port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        job = client.submit("a red apple", "draw", models, 3, 3, None, 2, 8, "gmm", None, api_name="/run")
        outputs = job.outputs() if job.result() else []
        assert len(outputs) >= 3  # a picture after every step, then the written one
        gallery, status = outputs[-1]
        assert len(gallery) == 2 and status.startswith("done: written to")
        with pytest.raises(Exception, match="too long"):
            client.predict("x" * 400, "generate", models, 0, 3, None, 2, 8, "noise", None, api_name="/run")
        with pytest.raises(Exception, match="minimum value 1|steps must be"):  # the slider refuses it first
            client.predict("fire", "generate", models, 0, 0, None, 2, 8, "noise", None, api_name="/run")
        bad = tmp_path / "notes.png"
        bad.write_text("not a picture")
        with pytest.raises(Exception, match="not a picture this page can read"):
            client.predict("fire", "style", models, 0, 2, None, 2, 8, "noise", handle_file(str(bad)), api_name="/run")
        past = client.predict(api_name="/gallery")  # the gallery (the page's State stays on the server)
        assert len(past) == 2 and all("a red apple (seed 3" in p["caption"] for p in past)  # still serving
    finally:
        app.close()
    record = json.loads(next((tmp_path / "serve" / "draw").rglob("*.json")).read_text())
    assert record["settings"]["strokes"] == 8 and record["seed"] == 3
    downloads = past_results(tmp_path / "serve")[0]["files"]  # what the gallery offers for a drawing
    assert [Path(f).suffix for f in downloads] == [".png", ".svg", ".json"]


def test_style_and_vqgan_run_side_by_side_and_equal_the_cli(tmp_path, capsys, guides, tiny_vqgan_files):
    from clipag.serve.runs import ServedVQGAN
    models, loaded = guides
    picture = tmp_path / "content.png"
    Image.new("RGB", (40, 30), "red").save(picture)
    style = Request("style", "fire", models, seed=3, steps=2, size=32, views=2, content=str(picture))
    vqgan = ServedVQGAN.load(*map(str, tiny_vqgan_files))
    records = list(side_by_side(style, loaded, tmp_path / "serve", Limits()))[-1].records
    out = tmp_path / "cli"
    assert main(["style", str(picture), "fire", "--model", models[0], "--seed", "3", "--steps", "2", "--width", "32",
                 "--height", "32", "--crops", "2", "--crop-size", "16", "--content-loss", records[0]["settings"]["content_loss"], "--out", str(out), "--quiet"]) == 0
    served = np.asarray(Image.open(records[0]["image"]))
    assert np.array_equal(served, np.asarray(Image.open(next(out.glob("*-seed3.png")))))
    request = Request("vqgan", "fire", models, seed=1, steps=2, size=16, views=2)
    records = list(side_by_side(request, loaded, tmp_path / "serve", Limits(), vqgan=vqgan))[-1].records
    assert len(records) == 2 and records[0]["method"] == "vqgan" and Path(records[1]["image"]).is_file()
    with pytest.raises(ClipagError, match="no VQGAN"):
        list(side_by_side(request, loaded, tmp_path / "serve", Limits()))
    with pytest.raises(ClipagError, match="upload one"):
        Request("style", "fire", models).check(Limits())
