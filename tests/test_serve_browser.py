"""`clipag serve` in a real browser: Debian's Chromium driven by Playwright types a prompt, runs two tiny
guides and waits for their pictures; bad input shows a message and the page keeps serving. Skipped
where Chromium or Playwright is missing (.ci/run installs both). The screenshot is kept in
$CLIPAG_TEST_ARTIFACTS (default outputs/test-artifacts)."""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, tiny_checkpoint):
    port = _free_port()
    shutil.copy(tiny_checkpoint[0], tmp_path / "copy.pt")  # two guides (the same weights: only the page is tested)
    models = [f"clipag-tiny:{tiny_checkpoint[0]}", f"clipag-tiny:{tmp_path / 'copy.pt'}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "clipag", "serve", "--model", models[0], "--model", models[1], "--port", str(port),
               "--out", str(tmp_path / "serve"), "--device", "cpu"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"clipag serve exited: {process.stdout.read()}")
            time.sleep(0.5)
    yield f"http://127.0.0.1:{port}/", tmp_path / "serve"
    process.terminate()
    process.wait(timeout=30)


def test_a_browser_runs_two_guides_and_sees_their_pictures(server):
    playwright = pytest.importorskip("playwright.sync_api")
    url, out = server
    artifacts = Path(os.environ.get("CLIPAG_TEST_ARTIFACTS", "outputs/test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url, wait_until="load")
        page.get_by_label("prompt").fill("a red apple\nfire")  # two lines: generate makes one picture
        page.locator("#run").click()
        page.get_by_text("one picture for one prompt").first.wait_for(timeout=60_000)  # a message on the page

        page.get_by_label("draw").check()  # draw takes several prompts: the page still serves
        page.locator("#run").click()
        page.get_by_text("done: written to").wait_for(timeout=120_000)
        pictures = page.locator("#live img")
        assert pictures.count() == 2
        page.screenshot(path=str(artifacts / "serve-page.png"), full_page=True)
        browser.close()
    assert len(list((out / "draw").rglob("*-seed0.png"))) == 2
