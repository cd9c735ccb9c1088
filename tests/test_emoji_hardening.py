"""Crafted emoji packages: no path taken from a package's content may write or read outside its folder."""
import io
import json
import tarfile

import pytest

from clipag.cli.main import main
from test_emoji import ENTRIES, files, png


def crafted_tgz(root, image_name, member_name=None, link=False):
    """A google .tgz whose emoji.json names `image_name` and whose archive holds `member_name`."""
    entries = [dict(ENTRIES[0], image=image_name)]
    contents = {**files("google"), "emoji.json": json.dumps(entries).encode()}
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / "emoji-datasource-google-16.0.0.tgz", "w:gz") as tgz:
        for relative, data in contents.items():
            info = tarfile.TarInfo(f"package/{relative}")
            info.size = len(data)
            tgz.addfile(info, io.BytesIO(data))
        member = tarfile.TarInfo(member_name or f"package/img/google/64/{image_name}")
        if link:
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tgz.addfile(member)
        else:
            data = png((1, 2, 3))
            member.size = len(data)
            tgz.addfile(member, io.BytesIO(data))


@pytest.mark.parametrize("image_name", ["../../../../../../tmp/clipag-escape.txt", "../x.png", "/tmp/abs.png",
                                        "a/../../b.png", "sub\\..\\..\\c.png"])
def test_an_image_name_that_climbs_out_is_refused(tmp_path, capsys, image_name):
    crafted_tgz(tmp_path / "npm", image_name, member_name=f"package/img/google/64/{image_name}")
    out = tmp_path / "work" / "out"
    code = main(["data", "emoji", "--from", str(tmp_path / "npm"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "refusing image name" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "npm" not in p.parts]
    assert written == [], written  # nothing at all was written, inside --out or beside it


def test_an_unpacked_package_is_not_read_outside_its_folder(tmp_path, capsys):
    root = tmp_path / "npm" / "twitter" / "package"
    for relative, data in files("twitter").items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    (root / "emoji.json").write_text(json.dumps([dict(ENTRIES[0], image="../../../../secret.png")]))
    (tmp_path / "secret.png").write_bytes(png((9, 9, 9)))
    code = main(["data", "emoji", "--from", str(tmp_path / "npm"), "--out", str(tmp_path / "out")])
    assert code == 2 and "refusing" in capsys.readouterr().err
    assert not list((tmp_path / "out").rglob("*.png"))


def test_a_linked_member_is_never_followed(tmp_path, capsys):
    crafted_tgz(tmp_path / "npm", "1f34e.png", link=True)
    code = main(["data", "emoji", "--from", str(tmp_path / "npm"), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert not list((tmp_path / "out").rglob("*.png"))  # the link's target was not copied
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["missing_images"] == 1


@pytest.mark.parametrize("content", ['{"not": "a list"}', '[{"name": "x"}]', '[5]', 'not json'])
def test_a_malformed_emoji_json_is_one_line(tmp_path, capsys, content):
    root = tmp_path / "npm" / "twitter" / "package"
    for relative, data in files("twitter").items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    (root / "emoji.json").write_text(content)
    code = main(["data", "emoji", "--from", str(tmp_path / "npm"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "emoji.json" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
