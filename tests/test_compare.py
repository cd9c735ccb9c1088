"""`clipag compare` end to end on tiny random models."""
import json
from xml.etree import ElementTree

import pytest

from clipag.cli.main import main


def test_compare_writes_a_well_formed_report(tmp_path, capsys, tiny_checkpoint):
    out = tmp_path / "cmp"
    second = f"clipag-tiny:{tiny_checkpoint[0]}"
    code = main(["compare", "a red apple", "fire", "--model", "clipag-tiny:random", "--model", second,
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
    assert page.count("<img") == 1 + 2 * 2 * 2  # the chart, then every image (2 prompts x 2 guides x 2 seeds)
    row = next(r for r in report["runs"][second]["items"] if r["prompt"] == "fire" and r["seed"] == 1)
    score = f"clipag-tiny:random: {row['clipag-tiny:random similarity']:.3f}, rank {row['clipag-tiny:random rank']}/2"
    for text in (markdown, page):  # each image's scores under it, the sample size, chance, the settings
        assert score in text and "runs/clipag-tiny-random/fire-seed1.png" in text
        assert "2 prompts x 2 seeds = 4 images per guide" in text and "R-Precision@1 50.0%" in text
        assert '"optimizer": "l2"' in text.replace("&quot;", '"')
    assert report["settings"]["optimizer"] == "l2" and report["settings"]["steps"] == 2


def test_compare_needs_two_guides(tmp_path, capsys):
    assert main(["compare", "x", "--model", "clipag-tiny:random", "--evaluator", "clipag-tiny:random",
                 "--out", str(tmp_path)]) == 2
    assert "two or more guides" in capsys.readouterr().err


def test_compare_runs_clipdraw_too(tmp_path, capsys, tiny_checkpoint):
    out = tmp_path / "cmp"
    code = main(["compare", "draw", "a red apple", "--model", "clipag-tiny:random",
                 "--model", f"clipag-tiny:{tiny_checkpoint[0]}", "--evaluator", "clipag-tiny:random",
                 "--steps", "2", "--strokes", "4", "--out", str(out), "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "draw" and all(run["images"] == 1 for run in report["runs"].values())
    assert (out / "strips" / "a-red-apple.png").is_file()


def test_compare_runs_vqgan_and_style(tmp_path, capsys, tiny_checkpoint, tiny_vqgan_files):
    from PIL import Image
    guides = ["--model", "clipag-tiny:random", "--model", f"clipag-tiny:{tiny_checkpoint[0]}",
              "--evaluator", "clipag-tiny:random", "--steps", "2", "--quiet"]
    vq_yaml, vq_ckpt = tiny_vqgan_files
    assert main(["compare", "vqgan", "a red apple", "fire", "--vqgan-config", str(vq_yaml),
                 "--vqgan-checkpoint", str(vq_ckpt), "--size", "16", "--crops", "2", *guides,
                 "--out", str(tmp_path / "vq")]) == 0
    Image.new("RGB", (40, 30), (20, 120, 200)).save(tmp_path / "content.png")
    assert main(["compare", "style", "a watercolor painting", "--content", str(tmp_path / "content.png"),
                 "--size", "48", "--crop-size", "16", "--no-network", "--content-loss", "pixels", *guides, "--out", str(tmp_path / "st")]) == 0
    for folder, method, images in (("vq", "vqgan", 2), ("st", "style", 1)):
        report = json.loads((tmp_path / folder / "report.json").read_text())
        assert report["method"] == method and all(run["images"] == images for run in report["runs"].values())
        assert (tmp_path / folder / "report.html").is_file()
    with pytest.raises(SystemExit) as exit:
        main(["compare", "vqgan", "x", *guides, "--out", str(tmp_path / "bad")])
    assert exit.value.code == 2
    assert "--vqgan-config" in capsys.readouterr().err


METHOD_ARGS = {  # the least each method's own command needs
    "generate": ["a red apple"],
    "draw": ["a red apple"],
    "vqgan": ["a red apple", "--vqgan-config", "v.yaml", "--vqgan-checkpoint", "v.ckpt"],
    "style": ["content.png", "a watercolor painting"],
}


@pytest.mark.parametrize("method", sorted(METHOD_ARGS))
def test_compare_takes_every_option_and_default_of_its_method(method):
    from clipag.cli import compare as compare_cli
    from clipag.cli.main import build_parser
    parser = build_parser()
    own = parser.parse_args([method, *METHOD_ARGS[method]])
    extra = ["--content", "content.png"] if method == "style" else []
    args = [a for a in METHOD_ARGS[method] if a != "content.png"]
    compared = parser.parse_args(["compare", method, *args, *extra, "--model", "a", "--model", "b", "--evaluator", "e"])
    command = compare_cli.METHOD_COMMANDS[method]
    assert command.config_from_args(compared) == command.config_from_args(own)  # the same defaults
    unshared = {"model", "out", "prompts", "image", "run"}  # what compare sets itself, per guide
    assert set(vars(own)) - unshared <= set(vars(compared))  # every option of the method is forwarded
    assert compared.precision == own.precision


def test_compare_old_spellings_still_work_with_a_warning(capsys):
    from clipag.cli.main import build_parser
    from clipag.cli.compare import rewrite_argv
    with pytest.warns(UserWarning, match="--method draw is now `clipag compare draw`"):
        argv = rewrite_argv(["compare", "x", "--method", "draw", "--guide", "a", "--guide", "b", "--evaluator", "e"])
    assert argv[:2] == ["compare", "draw"]
    with pytest.warns(UserWarning, match="--guide is now --model"):
        args = build_parser().parse_args(argv)
    assert args.model == ["a", "b"] and args.method == "draw"
    assert rewrite_argv(["compare", "x", "--model", "a"])[:3] == ["compare", "generate", "x"]  # the default method
