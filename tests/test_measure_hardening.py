"""evaluate and robustness on hostile inputs: Latin-1 and malformed CSVs, wrong-type records, bomb images."""
import json

import pytest
from PIL import Image

from clipag.cli.main import main
from clipag.errors import ClipagError
from clipag.measure.evaluate import collect_items
from clipag.measure.robustness import load_labelled_images, templates_for


def one_line_error(capsys, argv, *fragments):
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture
def picture(tmp_path):
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "a.png")
    return tmp_path / "a.png"


def test_latin1_csvs_are_one_line_errors(tmp_path, capsys, picture):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("image,prompt,name\na.png,caf\xe9 cr\xe8me,red\n".encode("latin-1"))
    one_line_error(capsys, ["evaluate", str(latin), "--evaluator", "clipag-tiny:random", "--out", str(tmp_path / "e")],
                   str(latin), "not UTF-8")
    latin.write_bytes("filepath,name\na.png,caf\xe9\n".encode("latin-1"))
    one_line_error(capsys, ["robustness", str(latin), "--class-column", "name", "--model", "clipag-tiny:random",
                            "--out", str(tmp_path / "r")], "not UTF-8")


def test_short_rows_and_missing_columns_name_the_file_and_line(tmp_path, picture):
    short = tmp_path / "short.csv"
    short.write_text("image,prompt\na.png,a red square\na.png\n")
    with pytest.raises(ClipagError, match=r"short.csv, line 3"):
        collect_items([str(short)])
    short.write_text("picture,prompt\na.png,x\n")
    with pytest.raises(ClipagError, match="no column 'image'"):
        collect_items([str(short)])
    short.write_text("filepath,name\na.png\n")
    with pytest.raises(ClipagError, match="line 2"):
        load_labelled_images(short, 16, class_column="name")


@pytest.mark.parametrize("record, fragment", [
    ({"image": 5, "prompt": "a cat"}, "image must be text"),
    ({"image": "a.png", "prompt": ["a", "cat"]}, "prompt must be text"),
    ({"image": "a.png", "prompt": "a cat", "seed": "zero"}, "seed must be an integer"),
    ({"image": "a.png", "prompt": "a cat", "model": {"x": 1}}, "model must be text"),
])
def test_wrong_type_records_are_skipped_with_a_reason(tmp_path, picture, record, fragment):
    (tmp_path / "bad.json").write_text(json.dumps(record))
    (tmp_path / "good.json").write_text(json.dumps({"image": "a.png", "prompt": "a red square", "seed": 1}))
    items, problems = collect_items([str(tmp_path)])
    assert [item.prompt for item in items] == ["a red square"]
    assert len(problems) == 1 and fragment in problems[0] and "bad.json" in problems[0]


def test_binary_json_is_a_problem_not_a_traceback(tmp_path, picture):
    (tmp_path / "binary.json").write_bytes(bytes(range(128, 256)))
    (tmp_path / "good.json").write_text(json.dumps({"image": "a.png", "prompt": "a red square"}))
    items, problems = collect_items([str(tmp_path)])
    assert len(items) == 1 and problems == [f"{tmp_path / 'binary.json'}: not readable JSON"]


def test_a_bomb_image_is_skipped_in_evaluate_and_one_line_in_robustness(tmp_path, capsys, monkeypatch):
    (tmp_path / "red").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "red" / "big.png")
    (tmp_path / "run").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "run" / "big.png")
    (tmp_path / "run" / "big.json").write_text(json.dumps({"image": "big.png", "prompt": "a cat"}))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ClipagError, match="nothing to evaluate.*DecompressionBomb"):
        collect_items([str(tmp_path / "run")])
    one_line_error(capsys, ["robustness", str(tmp_path), "--model", "clipag-tiny:random", "--out", str(tmp_path / "r")],
                   "cannot read image", "DecompressionBomb")


def test_binary_template_file_and_out_of_range_seed(tmp_path, capsys):
    binary = tmp_path / "templates.txt"
    binary.write_bytes(bytes(range(128, 256)))
    with pytest.raises(ClipagError, match="not UTF-8"):
        templates_for(str(binary))
    one_line_error(capsys, ["robustness", str(tmp_path), "--model", "x", "--seed", "-1"], "out of range")


def test_damaged_gmm_files_are_one_line_errors(tmp_path):
    import torch
    from safetensors.torch import save_file

    from clipag.generation.gmm import FORMAT, ClassGMM
    path = tmp_path / "gmm.safetensors"
    cases = [({"format": FORMAT, "size": "4"}, {"means": torch.zeros(2, 48)}, "KeyError"),
             ({"format": FORMAT, "size": "4", "classes": "[not json"}, {"means": torch.zeros(2, 48)}, "damaged"),
             ({"format": FORMAT, "size": "4", "classes": '["a", "b"]'}, {"means": torch.zeros(2, 47),
                                                                          "cov": torch.zeros(2, 47, 47)}, "means are"),
             ({"format": FORMAT, "size": "4", "classes": '["a", "b"]'}, {"means": torch.zeros(2, 48)}, "neither cov")]
    for metadata, tensors, fragment in cases:
        save_file(tensors, str(path), metadata=metadata)
        with pytest.raises(ClipagError, match=fragment):
            ClassGMM.load(path)


def test_emoji_manifests_that_are_not_objects_are_ignored(tmp_path):
    from clipag.data.emoji.packages import _package_name
    (tmp_path / "package.json").write_text("[1, 2]")
    assert _package_name(tmp_path / "package.json") is None
    (tmp_path / "package.json").write_bytes(bytes(range(128, 256)))
    assert _package_name(tmp_path / "package.json") is None
