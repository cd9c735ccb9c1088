"""`clipag evaluate` on tiny models: items from run folders and CSVs, metrics, warnings, reports."""
import json

import pytest
import torch
from PIL import Image

from clipag.cli.main import main
from clipag.errors import ClipagError
from clipag.measure.evaluate import collect_items, evaluate_items


@pytest.fixture
def run_folder(tmp_path):
    """A generate-style run folder: three images with their JSON, one JSON whose image is missing."""
    folder = tmp_path / "run"
    folder.mkdir()
    for i, (prompt, colour) in enumerate([("red", (230, 0, 0)), ("green", (0, 230, 0)), ("blue", (0, 0, 230))]):
        Image.new("RGB", (32, 32), colour).save(folder / f"{prompt}.png")
        (folder / f"{prompt}.json").write_text(json.dumps({"image": str(folder / f"{prompt}.png"),
                                                           "prompt": prompt, "model": "clipag-tiny:random",
                                                           "seed": i}))
    (folder / "gone.json").write_text(json.dumps({"image": str(folder / "gone.png"), "prompt": "gone"}))
    (folder / "results.json").write_text(json.dumps({"summary": {}}))  # not an image record: ignored
    return folder


def test_items_and_problems(run_folder, tmp_path):
    items, problems = collect_items([str(run_folder)])
    assert sorted(i.prompt for i in items) == ["blue", "green", "red"]
    assert len(problems) == 1 and "gone.png" in problems[0]
    (tmp_path / "list.csv").write_text("image,prompt\nrun/red.png,a red square\n")
    items, _ = collect_items([str(tmp_path / "list.csv")])
    assert items[0].prompt == "a red square"
    with pytest.raises(ClipagError, match="neither a run folder"):
        collect_items([str(tmp_path / "nothing")])


def test_metrics_and_bias_warning(run_folder, tiny_guide):
    items, _ = collect_items([str(run_folder)])
    report = evaluate_items(items, {"clipag-tiny:random": tiny_guide}, top_k=(1, 3))
    summary = report["summary"]["clipag-tiny:random"]
    assert summary["r_precision@3"] == 1.0  # three prompts: the own prompt is always in the top 3
    assert 0.0 <= summary["r_precision@1"] <= 1.0
    ranks = [row["clipag-tiny:random rank"] for row in report["items"]]
    assert summary["r_precision@1"] == pytest.approx(sum(r == 1 for r in ranks) / 3)
    assert report["warnings"] and "biased" in report["warnings"][0]


def test_command_end_to_end(run_folder, tmp_path, capsys):
    code = main(["evaluate", str(run_folder), "--evaluator", "clipag-tiny:random", "--top-k", "1", "2",
                 "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0 and "r_precision@2" in captured.out and "skipped" in captured.err
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["images"] == 3 and len(result["skipped"]) == 1
    header = (tmp_path / "out" / "results.csv").read_text().splitlines()[0]
    assert "clipag-tiny:random similarity" in header


def test_an_images_rank_never_counts_its_own_prompt(tmp_path, tiny_guide):
    """The rank of an image's own prompt is 1..P: its own score is not 'above' itself by rounding."""
    from PIL import Image
    from clipag.measure.evaluate import Item, evaluate_items
    items = []
    for i, prompt in enumerate(["a red apple", "fire", "a boat", "snow"] * 3):
        Image.fromarray((torch.rand(24, 24, 3) * 255).byte().numpy()).save(tmp_path / f"{i}.png")
        items.append(Item(str(tmp_path / f"{i}.png"), prompt))
    rows = evaluate_items(items, {"e": tiny_guide})["items"]
    assert all(1 <= row["e rank"] <= 4 for row in rows)
