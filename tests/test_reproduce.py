"""`clipag reproduce` end to end on tiny random models: every figure's page, resume, bad input."""
import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from clipag.cli.main import main
from clipag.models.registry import ASSETS
from clipag.reproduce import TARGETS
from clipag.reproduce.figures import paper

GMM = str(ASSETS / "gmm" / "emoji-subcategories-16px.safetensors")
TINY = ["--model", "clipag-tiny:random"]
FAST = ["--quick", "--steps", "1", "--gmm", GMM, "--quiet"]
PICTURES_PER_MODEL = {"fig3": 3, "fig4": 6, "fig6": 4, "fig7": 16, "fig8": 8, "fig9": 12}


def _page(out: Path, target: str) -> tuple[str, str]:
    page = (out / target / "index.html").read_text()
    ElementTree.fromstring(page.replace("<!doctype html>", ""))  # well-formed markup
    return page, (out / target / "index.md").read_text()


def _image_sources(page: str, folder: Path) -> list[Path]:
    root = ElementTree.fromstring(page.replace("<!doctype html>", ""))
    return [folder / img.get("src") for img in root.iter("img")]


@pytest.mark.parametrize("target", sorted(PICTURES_PER_MODEL))
def test_each_generation_figure_is_a_page_of_its_pictures(tmp_path, capsys, tiny_checkpoint, target):
    out, second = tmp_path / "rep", f"clipag-tiny:{tiny_checkpoint[0]}"
    assert main(["reproduce", target, *TINY, "--model", second, *FAST, "--out", str(out)]) == 0
    page, markdown = _page(out, target)
    sources = _image_sources(page, out / target)
    assert len(sources) == 2 * PICTURES_PER_MODEL[target] and all(s.is_file() for s in sources)
    assert markdown.count("![") == len(sources)
    settings = json.loads((out / target / "settings.json").read_text())
    assert settings["target"] == target and settings["models"] == ["clipag-tiny:random", second]
    assert settings["generation"]["steps"] == 1 and settings["reproduce"]["quick"] is True


def test_figure7_holds_the_papers_sixteen_captions_in_four_rows(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "fig7", *TINY, *FAST, "--out", str(out)]) == 0
    _, markdown = _page(out, "fig7")
    captions = paper()["fig7"]["captions"]
    assert len(captions) == 16 and all(caption in markdown for caption in captions)
    rows = [line for line in markdown.splitlines() if line.startswith("| row ")]
    assert len(rows) == 4 and captions[0] in rows[0] and captions[15] in rows[3]


def test_figure8_puts_each_prefix_before_the_caption(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "fig8", *TINY, *FAST, "--out", str(out)]) == 0
    prompts = {json.loads(p.read_text())["prompt"] for p in (out / "fig8").rglob("*-seed0.json")}
    assert "a graffiti of A majestic waterfall cascading down a rocky cliff." in prompts and len(prompts) == 8


def test_a_rerun_keeps_its_pictures_and_refuses_other_settings(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "fig9", *TINY, *FAST, "--out", str(out)]) == 0
    picture = next((out / "fig9").rglob("*-seed3.png"))
    before = picture.stat().st_mtime_ns
    assert main(["reproduce", "fig9", *TINY, *FAST, "--out", str(out)]) == 0
    assert picture.stat().st_mtime_ns == before
    capsys.readouterr()
    assert main(["reproduce", "fig9", *TINY, *FAST[:2], "2", *FAST[3:], "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "--overwrite" in err and err.count("\n") == 1


def _pictures(folder: Path) -> list[str]:
    from PIL import Image
    paths = []
    for i, colour in enumerate(["red", "blue"]):
        path = folder / f"picture{i}.png"
        Image.new("RGB", (40, 30), colour).save(path)
        paths.append(str(path))
    return paths


def test_figure5_explains_each_picture_clean_and_attacked(tmp_path, capsys, tiny_checkpoint):
    out, pictures = tmp_path / "rep", _pictures(tmp_path)
    args = ["reproduce", "fig5", *TINY, "--model", f"clipag-tiny:{tiny_checkpoint[0]}", "--image", pictures[0],
            "--image", f"{pictures[1]}=a blue square", "--out", str(out), "--quiet"]
    assert main(args) == 0
    page, markdown = _page(out, "fig5")
    sources = _image_sources(page, out / "fig5")
    assert len(sources) == 2 * (1 + 2 * 2) and all(s.is_file() for s in sources)  # picture + 2 models x 2
    assert "| picture0.png | ![dog]" in markdown and "a blue square" in markdown  # the paper's first target
    row = next((out / "fig5" / "pictures").glob("picture0*.json"))
    tiles = json.loads(row.read_text())["tiles"]
    assert [t["attacked"] for t in tiles] == [False, True, False, True]
    before = row.stat().st_mtime_ns
    assert main(args) == 0 and row.stat().st_mtime_ns == before  # kept on a re-run


def test_figure5_without_pictures_says_what_to_give(tmp_path, capsys):
    assert main(["reproduce", "fig5", *TINY, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--image PATH" in err and err.count("\n") == 1
    assert main(["reproduce", "fig5", *TINY, "--image", str(tmp_path / "missing.png"), "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


def test_unknown_target_is_a_one_line_error(tmp_path, capsys):
    assert main(["reproduce", "fig99", *TINY, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown target 'fig99'" in err and "fig7" in err


def test_all_makes_every_target_it_can_and_an_index(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "all", *TINY, *FAST, "--out", str(out)]) == 0
    index = (out / "index.md").read_text()
    page = (out / "index.html").read_text()
    ElementTree.fromstring(page.replace("<!doctype html>", ""))
    not_run = {"fig1": "a VQGAN", "fig2": "content pictures", "fig5": "pictures with targets",
               "table-clipdraw": "two or more --model", "table-vqgan": "two or more --model"}
    for target in TARGETS:
        row = next(line for line in index.splitlines() if line.startswith(f"| {target} |"))
        if target in not_run:
            assert f"not run: needs {not_run[target]}" in row and not (out / target).exists()
        else:
            assert (out / target / "index.html").is_file() and f'href="{target}/index.html"' in page


def test_the_shipped_captions_are_the_papers(tmp_path):
    reference = Path(__file__).resolve().parents[2] / "shared" / "reference" / "supplementary-prompts.json"
    if not reference.is_file():
        pytest.skip("../shared/reference is not beside this checkout")
    source = json.loads(reference.read_text())
    assert paper()["fig7"]["captions"] == source["figure7_generator_free"]["captions"]
    assert paper()["fig8"]["prefixes"] == source["figure8_prefixes"]["prefixes"]
    assert paper()["fig9"]["captions"] == source["figure9_stochasticity"]["captions"]
    assert paper()["fig5"]["targets"] == source["figure5_explainability_targets"]["targets"]


def test_figure1_and_table_vqgan_run_vqgan_clip_with_each_guide(tmp_path, capsys, tiny_checkpoint, tiny_vqgan_files):
    out, second = tmp_path / "rep", f"clipag-tiny:{tiny_checkpoint[0]}"
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"annotations": [{"id": i, "image_id": i, "caption": f"caption {i}"}
                                                    for i in range(12)]}))
    vqgan = ["--vqgan-config", str(tiny_vqgan_files[0]), "--vqgan-checkpoint", str(tiny_vqgan_files[1])]
    for target in ("fig1", "table-vqgan"):
        assert main(["reproduce", target, *TINY, "--model", second, *vqgan, "--captions", str(captions),
                     "--evaluator", "clipag-tiny:random", "--quick", "--steps", "1", "--out", str(out), "--quiet"]) == 0
    page, _ = _page(out, "fig1")
    assert len(_image_sources(page, out / "fig1")) == 4 * 2
    _, markdown = _page(out, "table-vqgan")
    assert "| clipag-tiny:random |" in markdown and f"| {second} |" in markdown
    assert "clipag-tiny:random is also a guide" in markdown  # the table says when an evaluator guided
    report = json.loads((out / "table-vqgan" / "runs" / "report.json").read_text())
    assert len(report["prompts"]) == 8 and report["method"] == "vqgan"


def test_figure2_restyles_each_content_picture(tmp_path, capsys, tiny_checkpoint):
    out, pictures = tmp_path / "rep", _pictures(tmp_path)
    assert main(["reproduce", "fig2", *TINY, "--content", pictures[0], "--quick", "--steps", "1",
                 "--out", str(out), "--quiet"]) == 0
    page, markdown = _page(out, "fig2")
    sources = _image_sources(page, out / "fig2")
    assert len(sources) == 4 * 2 and all(s.is_file() for s in sources)  # 4 prompts x (content + 1 model)
    assert "picture0.png: fire" in markdown


def test_table_clipdraw_scores_each_guide_with_and_without_augmentation(tmp_path, capsys, tiny_checkpoint):
    out, second = tmp_path / "rep", f"clipag-tiny:{tiny_checkpoint[0]}"
    assert main(["reproduce", "table-clipdraw", *TINY, "--model", second, "--evaluator", second, "--quick",
                 "--steps", "1", "--out", str(out), "--quiet"]) == 0
    _, markdown = _page(out, "table-clipdraw")
    rows = [line for line in markdown.splitlines() if line.startswith("| clipag-tiny")]
    assert len(rows) == 4 and sum("| no-augment |" in r for r in rows) == 2
    report = json.loads((out / "table-clipdraw" / "no-augment" / "report.json").read_text())
    assert report["settings"]["augment"] is False and len(report["prompts"]) == 8
    summary = report["runs"][second]["summary"][second]
    assert f"{100 * summary['r_precision@1']:.1f}%" in next(r for r in rows if second in r and "no-augment" in r)


def test_tables_need_two_guides_and_an_evaluator(tmp_path, capsys):
    assert main(["reproduce", "table-clipdraw", *TINY, "--out", str(tmp_path)]) == 2
    assert "two or more --model" in capsys.readouterr().err
