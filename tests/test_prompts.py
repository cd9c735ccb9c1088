import json

import pytest

from clipag.errors import ClipagError
from clipag.generation.prompts import PROMPT_SETS, load_prompts, sample_coco_captions


def test_shipped_prompt_sets():
    drawing = load_prompts("drawing")
    assert len(drawing) == 100 and len(set(drawing)) == 100 and not any(p.startswith("#") for p in drawing)
    assert load_prompts("prefixes") == ["an oil painting of", "a pencil drawing of", "a graffiti of",
                                        "a childish cartoon of"]
    assert set(PROMPT_SETS) >= {"drawing", "prefixes"}


def test_prompt_file_and_errors(tmp_path):
    (tmp_path / "p.txt").write_text("# mine\na cat\n\n  a dog  \n")
    assert load_prompts(str(tmp_path / "p.txt")) == ["a cat", "a dog"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ClipagError, match="no prompts"):
        load_prompts(str(tmp_path / "empty.txt"))
    with pytest.raises(ClipagError, match="drawing"):
        load_prompts("no-such-set")


def test_coco_sampling_is_seeded_and_one_caption_per_image(tmp_path):
    annotations = [{"id": i, "image_id": i // 5, "caption": f"image {i // 5} caption {i % 5}"} for i in range(50)]
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"annotations": annotations}))
    first = sample_coco_captions(path, 4, seed=1)
    assert first == sample_coco_captions(path, 4, seed=1) and first != sample_coco_captions(path, 4, seed=2)
    assert len({c.split(" caption")[0] for c in first}) == 4 and all(c.endswith("caption 0") for c in first)
    with pytest.raises(ClipagError, match="covers 10 images"):
        sample_coco_captions(path, 11)
    path.write_text("{}")
    with pytest.raises(ClipagError, match="not an MS-COCO"):
        sample_coco_captions(path, 1)


@pytest.mark.parametrize("text, expected", [
    ("a red apple", ("a red apple", 1.0)),
    ("a red apple:2", ("a red apple", 2.0)),
    ("blurry:-0.5", ("blurry", -0.5)),
    ("time: 3 o'clock", ("time: 3 o'clock", 1.0)),
])
def test_weighted_prompts(text, expected):
    from clipag.generation.prompts import parse_weighted_prompt
    assert parse_weighted_prompt(text) == expected


def test_weighted_prompt_errors():
    from clipag.generation.prompts import parse_weighted_prompt
    for bad in (":2", "cat:0"):
        with pytest.raises(ClipagError):
            parse_weighted_prompt(bad)
