import csv
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from clipag.cli.main import main
from clipag.data.emoji import build_emoji_dataset, captions, find_packages
from clipag.errors import ClipagError

ENTRIES = [
    {"name": "RED APPLE", "short_name": "apple", "image": "1f34e.png", "category": "Food & Drink",
     "subcategory": "food-fruit"},
    {"name": "WAVING HAND SIGN", "short_name": "wave", "image": "1f44b.png", "category": "People & Body",
     "subcategory": "hand-fingers-open",
     "skin_variations": {"1F3FB": {"image": "1f44b-1f3fb.png"}, "1F3FF": {"image": "1f44b-1f3ff.png"}}},
] + [{"name": f"THING {i}", "short_name": f"thing_{i}", "image": f"t{i}.png", "category": "Objects",
      "subcategory": "tool", "has_img_google": i % 2 == 0} for i in range(8)]


def png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 4), (*colour, 255), dtype=np.uint8), "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def files(style):
    images = [e["image"] for e in ENTRIES] + [v["image"] for e in ENTRIES for v in e.get("skin_variations", {}).values()]
    contents = {f"img/{style}/64/{name}": png((200, 10, 10)) for name in images}
    contents["emoji.json"] = json.dumps(ENTRIES).encode()
    contents["package.json"] = json.dumps({"name": f"emoji-datasource-{style}", "version": "16.0.0"}).encode()
    return contents


@pytest.fixture
def packages(tmp_path):
    """The twitter package unpacked, the google one as the .tgz `npm pack` writes."""
    root = tmp_path / "npm"
    for relative, data in files("twitter").items():
        (root / "twitter" / "package" / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / "twitter" / "package" / relative).write_bytes(data)
    with tarfile.open(root / "emoji-datasource-google-16.0.0.tgz", "w:gz") as tgz:
        for relative, data in files("google").items():
            info = tarfile.TarInfo(f"package/{relative}")
            info.size = len(data)
            tgz.addfile(info, io.BytesIO(data))
    return root


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_both_package_forms_are_found(packages):
    found = find_packages(packages)
    assert set(found) == {"twitter", "google"} and found["google"].version() == "16.0.0"


def test_dataset_rows_images_holdout_and_licences(packages, tmp_path):
    out = tmp_path / "emoji"
    manifest = build_emoji_dataset(packages, out, holdout=0.2, seed=0)
    assert manifest["images"] == {"twitter": 12, "google": 8}  # google lacks the odd things
    train, held = read_rows(out / "train.csv"), read_rows(out / "heldout.csv")
    held_names = set((out / "heldout.txt").read_text().split("\n")) - {""}
    assert len(held_names) == 2
    assert {r["name"].split(":")[0] for r in held} == held_names
    assert not {r["name"].split(":")[0] for r in train} & held_names  # skin tones follow their emoji
    assert all((out / r["filepath"]).is_file() for r in train + held)
    titles = {r["title"] for r in train + held}
    waving = "waving hand sign: dark skin tone"
    assert "red apple" in titles or "red apple" in held_names
    assert waving in titles or "waving hand sign" in held_names
    assert "CC-BY 4.0" in (out / "LICENSES.md").read_text() and "Apache" in (out / "LICENSES.md").read_text()
    again = build_emoji_dataset(packages, tmp_path / "again", holdout=0.2, seed=0)
    assert (tmp_path / "again" / "heldout.txt").read_text() == (out / "heldout.txt").read_text()
    assert again["rows"] == manifest["rows"]


def test_captions_use_name_category_and_short_name():
    from clipag.data.emoji import Emoji
    apple = Emoji("red apple", "red apple", "apple", "Food & Drink", "food-fruit", "1f34e.png")
    assert captions(apple) == ["red apple", "a red apple, food & drink"]
    thing = Emoji("object 1", "object 1", "thing_1", "Objects", "tool", "t1.png")
    assert captions(thing) == ["object 1", "an object 1, objects", "thing 1"]


def test_dataset_trains(packages, tmp_path):
    from clipag.data.pairs import build_dataset
    build_emoji_dataset(packages, tmp_path / "emoji", holdout=0.2)
    dataset = build_dataset([str(tmp_path / "emoji" / "train.csv")], 32)
    image, caption = dataset[0]
    assert image.shape == (3, 32, 32) and isinstance(caption, str)


def test_command_and_its_errors(packages, tmp_path, capsys):
    assert main(["data", "emoji", "--from", str(packages), "--out", str(tmp_path / "e")]) == 0
    assert "10 emoji" in capsys.readouterr().out
    assert main(["data", "emoji", "--from", str(tmp_path / "nothing")]) == 2
    assert "npm pack" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClipagError, match="no emoji-datasource packages"):
        find_packages(tmp_path / "empty")
