"""`clipag compare` end to end on tiny random models."""
import json
from xml.etree import ElementTree

import pytest

from clipag.cli.main import main


def test_compare_writes_a_well_formed_report(tmp_path, capsys, tiny_checkpoint):
    out = tmp_path / "cmp"
    second = f"clipag-tiny:{tiny_checkpoint[0]}"
    code = main(["compare", "a red apple", "fire", "--guide", "clipag-tiny:random", "--guide", second,
                 "--evaluator", "clipag-tiny:random", "--seed", "0", "1", "--steps", "2", "--views", "2",
                 "--crops", "1", "--init", "noise", "--optimizer", "l2", "--out", str(out), "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    image_record = json.loads((out / "runs" / "clipag-tiny-random" / "fire-seed1.json").read_text())
    assert image_record["settings"]["optimizer"] == "l2"
    assert report["guides"] == ["clipag-tiny:random", second]
    for guide in report["guides"]:
        run = report["runs"][guide]
        assert run["images"] == 4 and 0 <= run["summary"]["clipag-tiny:random"]["r_precision@1"] <= 1
    markdown = (out / "report.md").read_text()
    assert "| clipag-tiny:random |" in markdown and "strips/a-red-apple.png" in markdown
    assert "biased" in markdown  # the evaluator also guided the first run
    for name in ("metrics.png", "strips/a-red-apple.png", "strips/fire.png"):
        assert (out / name).stat().st_size > 0
    page = (out / "report.html").read_text()
    ElementTree.fromstring(page.replace("<!doctype html>", ""))  # well-formed markup
    assert page.count("<img") == 3


def test_compare_needs_two_guides(tmp_path, capsys):
    assert main(["compare", "x", "--guide", "clipag-tiny:random", "--evaluator", "clipag-tiny:random",
                 "--out", str(tmp_path)]) == 2
    assert "two or more guides" in capsys.readouterr().err


def test_compare_runs_clipdraw_too(tmp_path, capsys, tiny_checkpoint):
    out = tmp_path / "cmp"
    code = main(["compare", "a red apple", "--method", "draw", "--guide", "clipag-tiny:random",
                 "--guide", f"clipag-tiny:{tiny_checkpoint[0]}", "--evaluator", "clipag-tiny:random",
                 "--steps", "2", "--strokes", "4", "--out", str(out), "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "draw" and all(run["images"] == 1 for run in report["runs"].values())
    assert (out / "strips" / "a-red-apple.png").is_file()


def test_compare_runs_vqgan_and_style(tmp_path, capsys, tiny_checkpoint, tiny_vqgan_files):
    from PIL import Image
    guides = ["--guide", "clipag-tiny:random", "--guide", f"clipag-tiny:{tiny_checkpoint[0]}",
              "--evaluator", "clipag-tiny:random", "--steps", "2", "--quiet"]
    vq_yaml, vq_ckpt = tiny_vqgan_files
    assert main(["compare", "a red apple", "fire", "--method", "vqgan", "--vqgan-config", str(vq_yaml),
                 "--vqgan-checkpoint", str(vq_ckpt), "--size", "16", "--crops", "2", *guides,
                 "--out", str(tmp_path / "vq")]) == 0
    Image.new("RGB", (40, 30), (20, 120, 200)).save(tmp_path / "content.png")
    assert main(["compare", "a watercolor painting", "--method", "style", "--content", str(tmp_path / "content.png"),
                 "--size", "48", "--no-network", "--content-loss", "pixels", *guides, "--out", str(tmp_path / "st")]) == 0
    for folder, method, images in (("vq", "vqgan", 2), ("st", "style", 1)):
        report = json.loads((tmp_path / folder / "report.json").read_text())
        assert report["method"] == method and all(run["images"] == images for run in report["runs"].values())
        assert (tmp_path / folder / "report.html").is_file()
    assert main(["compare", "x", "--method", "vqgan", *guides, "--out", str(tmp_path / "bad")]) == 2
    assert "--vqgan-config" in capsys.readouterr().err
