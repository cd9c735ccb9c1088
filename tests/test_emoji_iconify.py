"""Iconify JSON emoji sets in the emoji builder: matching, rasterising, licences, held-out names."""
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from clipag.cli.main import main
from clipag.data.emoji import IconSet, Package, build_emoji_dataset, find_packages, rasterise
from clipag.errors import ClipagError

from test_emoji import packages, read_rows  # noqa: F401  (the emoji-datasource fixture)

pytest.importorskip("resvg_py")

RED_SQUARE = '<path fill="#f00" d="M0 0h16v16H0z"/>'
BLUE_HALF = '<path fill="#00f" d="M0 0h8v16H0z"/>'


def iconify_tgz(folder, prefix, icons, chars=None, aliases=None, spdx="MIT", version="1.2.3"):
    files = {
        "package.json": {"name": f"@iconify-json/{prefix}", "version": version},
        "icons.json": {"prefix": prefix, "icons": icons, "aliases": aliases or {}, "width": 16, "height": 16},
        "info.json": {"name": f"{prefix} set", "author": {"name": "An Author", "url": "https://example.org"},
                      "license": {"title": spdx, "spdx": spdx, "url": "https://example.org/licence"}},
        "chars.json": chars or {},
    }
    path = folder / f"iconify-json-{prefix}-{version}.tgz"
    with tarfile.open(path, "w:gz") as tgz:
        for name, content in files.items():
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tgz.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def with_icons(packages):  # noqa: F811
    # A set with a chars table (code points as Iconify spells them, FE0F dropped), and one without,
    # whose icons are found by the CLDR names the first gives, or by the compacted Unicode name.
    iconify_tgz(packages, "flat", {"red-apple": {"body": RED_SQUARE}, "waving-hand": {"body": BLUE_HALF},
                                   "waving-hand-dark": {"body": BLUE_HALF}, "thing-zero": {"body": RED_SQUARE}},
                chars={"1f34e": "red-apple", "1f44b": "waving-hand", "1f44b-1f3ff": "waving-hand-dark"})
    iconify_tgz(packages, "flat-v1", {"apple-body": {"body": BLUE_HALF, "width": 32, "height": 16},
                                      "wavinghandsign": {"body": RED_SQUARE},
                                      "thing1": {"body": '<image href="/etc/passwd"/>'},
                                      "spun": {"body": RED_SQUARE}},
                aliases={"red-apple": {"parent": "apple-body"}, "thing2": {"parent": "spun", "hFlip": True}})
    return packages


@pytest.fixture(autouse=True)
def known_sets(monkeypatch):
    from clipag.data.emoji import packages as registry
    iconify = {"flat": "@iconify-json/flat", "flat-v1": "@iconify-json/flat-v1"}
    monkeypatch.setattr(registry, "ICONIFY", iconify)
    monkeypatch.setattr(registry, "PACKAGES", {**registry.DATASOURCE, **iconify})
    from clipag.data.emoji import build
    monkeypatch.setattr(build, "ICONIFY", iconify)


def test_sets_are_found_by_their_exact_package_name(with_icons):
    found = find_packages(with_icons)
    assert {"twitter", "google", "flat", "flat-v1"} == set(found)
    assert found["flat"].path.name == "iconify-json-flat-1.2.3.tgz"  # not flat-v1's archive


def test_icons_are_matched_rasterised_and_the_split_kept(with_icons, tmp_path):
    plain = build_emoji_dataset(with_icons, tmp_path / "plain", holdout=0.2, seed=0)
    out = tmp_path / "emoji"
    manifest = build_emoji_dataset(with_icons, out, holdout=0.2, seed=0, size=32)
    assert (out / "heldout.txt").read_text() == (tmp_path / "plain" / "heldout.txt").read_text()
    # flat: the apple, the hand and its dark tone by chars; "thing-zero" is named by no table
    # flat-v1: the apple by the alias of its CLDR name, the hand by "wavinghandsign"; an external
    # reference and a flipped alias are refused
    assert manifest["icons_matched"] == {"flat": 3, "flat-v1": 2}
    assert manifest["icons_refused"]["flat-v1"] == 1
    assert manifest["images"]["twitter"] == plain["images"]["twitter"] == 12
    rows = read_rows(out / "train.csv") + read_rows(out / "heldout.csv")
    by_style = {(r["style"], r["name"]): r["filepath"] for r in rows}
    apple = Image.open(out / by_style[("flat-v1", "red apple")])
    assert apple.size == (32, 32) and apple.mode == "RGBA"
    pixels = np.asarray(apple)
    assert pixels[16, 4, 2] > 200 and pixels[:8, :, 3].max() == 0  # blue left half, centred: rows above empty
    assert np.asarray(Image.open(out / by_style[("flat", "waving hand sign: dark skin tone")]))[16, 4, 2] > 200
    assert Image.open(out / by_style[("twitter", "red apple")]).size == (32, 32)  # PNGs resized too
    licences = (out / "LICENSES.md").read_text()
    assert "images/flat-v1/: flat-v1 set by An Author" in licences and "@iconify-json/flat@1.2.3" in licences
    assert manifest["pictures_per_name"]["max"] == 4  # twitter, google, flat, flat-v1


def test_a_set_whose_licence_is_not_open_is_refused(packages, tmp_path, capsys):  # noqa: F811
    iconify_tgz(packages, "flat", {"red-apple": {"body": RED_SQUARE}}, spdx="LicenseRef-proprietary")
    assert main(["data", "emoji", "--from", str(packages), "--out", str(tmp_path / "e"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "licence 'LicenseRef-proprietary'" in err and len(err.strip().splitlines()) == 1
    assert not any((tmp_path / "e").iterdir())  # nothing written


def test_a_damaged_icons_json_is_one_line(packages, tmp_path):  # noqa: F811
    path = iconify_tgz(packages, "flat", {})
    with tarfile.open(path, "w:gz") as tgz:
        data = b'{"icons": [1, 2]}'
        info = tarfile.TarInfo("package/icons.json")
        info.size = len(data)
        tgz.addfile(info, io.BytesIO(data))
    with pytest.raises(ClipagError, match="not an Iconify JSON set"):
        IconSet(Package(path, "flat"))


def test_rasterise_renders_and_fails_in_one_line():
    picture = Image.open(io.BytesIO(rasterise(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16" width="8" height="8">{RED_SQUARE}</svg>', 8)))
    assert picture.size == (8, 8) and np.asarray(picture)[4, 4].tolist() == [255, 0, 0, 255]
    with pytest.raises(ClipagError, match="resvg cannot render"):
        rasterise("<svg", 8)


def test_webp_pictures_hold_the_same_pixels(with_icons, tmp_path):
    build_emoji_dataset(with_icons, tmp_path / "png", holdout=0.2)
    manifest = build_emoji_dataset(with_icons, tmp_path / "webp", holdout=0.2, image_format="webp")
    assert manifest["format"] == "webp"
    rows = read_rows(tmp_path / "webp" / "train.csv")
    assert rows and all(r["filepath"].endswith(".webp") for r in rows)
    for row in rows[:6]:
        webp = np.asarray(Image.open(tmp_path / "webp" / row["filepath"]).convert("RGBA"))
        png = np.asarray(Image.open(tmp_path / "png" / row["filepath"].replace(".webp", ".png")).convert("RGBA"))
        assert np.array_equal(webp, png)
