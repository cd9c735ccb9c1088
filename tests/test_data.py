"""The training data layer on tiny synthetic sources: CSV/TSV, caption folders, webdataset shards, mixtures."""
import io
import tarfile

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from clipag.data.pairs import _shard_name, build_dataset, collate, count_samples, is_streaming, parse_source
from clipag.errors import ClipagError

S = 8
COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255, 255, 255)}


def image_bytes(colour, fmt="PNG", size=(12, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, COLOURS[colour]).save(buffer, format=fmt)
    return buffer.getvalue()


def write_image(path, colour, fmt="PNG", size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(colour, fmt, size))
    return path


def write_tar(path, samples):
    """img2dataset layout: KEY.EXT image, KEY.txt caption, KEY.json metadata; None leaves a file out."""
    with tarfile.open(path, "w") as tar:
        for key, ext, data, caption in samples:
            files = {f"{key}.{ext}": data, f"{key}.txt": None if caption is None else caption.encode(),
                     f"{key}.json": b"{}"}
            for name, content in files.items():
                if content is not None:
                    info = tarfile.TarInfo(name)
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
    return path


def shard_samples(prefix, n, colour="blue"):
    return [(f"{prefix}{i:04d}", "jpg", image_bytes(colour, "JPEG"), f"{prefix} caption {i}") for i in range(n)]


def assert_colour(image, colour, tol=0.05, shape=(3, S, S)):
    assert image.shape == shape and image.dtype == torch.float32
    assert image.min() >= 0 and image.max() <= 1
    expected = torch.tensor(COLOURS[colour], dtype=torch.float32) / 255
    assert torch.allclose(image.mean((1, 2)), expected, atol=tol), image.mean((1, 2))


def captions_of(dataset, **loader):
    batches = list(DataLoader(dataset, batch_size=4, collate_fn=collate, **loader))
    return [c for b in batches for c in b["captions"]], sum(b["skipped"] for b in batches)


@pytest.fixture
def csv_source(tmp_path):
    """A CSV with a relative and an absolute image path, beside an 'images' folder."""
    write_image(tmp_path / "images" / "a.png", "red")
    absolute = write_image(tmp_path / "elsewhere" / "b.jpg", "green", "JPEG")
    path = tmp_path / "train.csv"
    path.write_text(f'filepath,title\nimages/a.png,a red square\n{absolute},"a green, square"\n')
    return path


@pytest.fixture
def shards(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for i in range(3):
        write_tar(folder / f"{i:05d}.tar", shard_samples(f"s{i}-", 4))
    return folder


# ---------------------------------------------------------------- sources

def test_parse_source():
    assert parse_source("/data/x.csv") == ("/data/x.csv", 1.0)
    assert parse_source("/data/laion/{00000..00099}.tar@0.04") == ("/data/laion/{00000..00099}.tar", 0.04)
    for bad in ("x.csv@0", "x.csv@1.5", "x.csv@-0.1", "x.csv@half", "x.csv@nan"):
        with pytest.raises(ClipagError, match="bad fraction"):
            parse_source(bad)


def test_csv_images_and_captions(csv_source):
    dataset = build_dataset([str(csv_source)], S)
    assert not is_streaming(dataset) and len(dataset) == 2 and count_samples(dataset) == 2
    (red, red_caption), (green, green_caption) = dataset[0], dataset[1]
    assert_colour(red, "red", tol=1e-6)
    assert_colour(green, "green")
    assert (red_caption, green_caption) == ("a red square", "a green, square")


def test_tsv_with_custom_columns(tmp_path):
    write_image(tmp_path / "a.png", "blue")
    path = tmp_path / "data.tsv"
    path.write_text("url\ttext\tother\na.png\tblue, with a comma\tx\n", encoding="utf-8-sig")  # with a BOM
    image, caption = build_dataset([str(path)], S, csv_img_key="url", csv_caption_key="text")[0]
    assert_colour(image, "blue", tol=1e-6)
    assert caption == "blue, with a comma"


def test_resize_shortest_side_then_centre_crop(tmp_path):
    """A 30x10 red|green|blue strip: the centre square is the green block."""
    strip = Image.new("RGB", (30, 10))
    for i, colour in enumerate(("red", "green", "blue")):
        strip.paste(COLOURS[colour], (10 * i, 0, 10 * i + 10, 10))
    strip.save(tmp_path / "strip.png")
    (tmp_path / "strip.txt").write_text("strip")
    image, _ = build_dataset([str(tmp_path)], S)[0]
    assert image.shape == (3, S, S)
    assert_colour(image[:, :, 2:-2], "green", tol=0.02, shape=(3, S, S - 4))


def test_transparency_is_composited_on_white(tmp_path):
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    (tmp_path / "clear.txt").write_text("nothing")
    assert_colour(build_dataset([str(tmp_path)], S)[0][0], "white", tol=1e-6)


def test_caption_folder_ignores_images_without_captions(tmp_path):
    write_image(tmp_path / "x" / "one.png", "red")
    (tmp_path / "x" / "one.txt").write_text("  first  \n")
    write_image(tmp_path / "y" / "z" / "two.jpg", "green", "JPEG")
    (tmp_path / "y" / "z" / "two.txt").write_text("second")
    write_image(tmp_path / "y" / "three.png", "blue")  # no caption
    with pytest.warns(UserWarning, match="1 of 3 images .* no caption file"):
        dataset = build_dataset([str(tmp_path)], S)
    assert len(dataset) == 2
    assert dataset[0][1] == "first" and dataset[1][1] == "second"
    assert_colour(dataset[0][0], "red", tol=1e-6)
    assert_colour(dataset[1][0], "green")


@pytest.mark.parametrize("form", ["file", "braces", "folder"])
def test_webdataset_forms(shards, form):
    spec = {"file": f"{shards}/00001.tar", "braces": f"{shards}/{{00000..00002}}.tar", "folder": str(shards)}[form]
    dataset = build_dataset([spec], S)
    assert is_streaming(dataset)
    items = list(dataset)
    shard_ids = [1] if form == "file" else [0, 1, 2]
    expected = sorted(f"s{s}- caption {i}" for s in shard_ids for i in range(4))
    assert sorted(caption for _, caption in items) == expected
    for image, _ in items:
        assert_colour(image, "blue")


def test_webdataset_png_and_other_extensions(tmp_path):
    path = write_tar(tmp_path / "x.tar", [("a", "png", image_bytes("red"), "red one"),
                                          ("b", "webp", image_bytes("green", "WEBP"), "green one"),
                                          ("c", "jpeg", image_bytes("blue", "JPEG"), "blue one")])
    items = {caption: image for image, caption in build_dataset([str(path)], S)}
    assert set(items) == {"red one", "green one", "blue one"}
    assert_colour(items["red one"], "red", tol=1e-6)
    assert_colour(items["green one"], "green")
    assert_colour(items["blue one"], "blue")


# ---------------------------------------------------------------- fractions and mixtures

def big_csv(tmp_path, name, n):
    write_image(tmp_path / "img.png", "red")
    path = tmp_path / name
    path.write_text("filepath,title\n" + "".join(f"img.png,{name} {i}\n" for i in range(n)))
    return str(path)


def test_map_fraction_is_a_seeded_fixed_subset(tmp_path):
    path = big_csv(tmp_path, "d.csv", 50)
    assert len(build_dataset([f"{path}@0.1"], S)) == 5
    assert len(build_dataset([f"{path}@0.001"], S)) == 1  # at least one
    assert len(build_dataset([f"{path}@1"], S)) == 50

    def captions(spec, seed):
        dataset = build_dataset([spec], S, seed=seed)
        return [dataset[i][1] for i in range(len(dataset))]

    assert captions(f"{path}@0.2", 0) == captions(f"{path}@0.2", 0)
    assert captions(f"{path}@0.2", 0) != captions(f"{path}@0.2", 1)
    assert set(captions(f"{path}@0.1", 3)) <= set(captions(f"{path}@0.4", 3))  # smaller fractions nest


def test_streaming_fraction_keeps_a_seeded_share(tmp_path):
    path = write_tar(tmp_path / "big.tar", [(f"k{i:04d}", "png", image_bytes("red", size=(2, 2)), f"c{i}")
                                            for i in range(400)])

    def captions(fraction, seed=0):
        return [caption for _, caption in build_dataset([f"{path}@{fraction}"], S, seed=seed)]

    quarter = captions(0.25)
    assert 70 <= len(quarter) <= 130
    moved = tmp_path / "moved"
    moved.mkdir()
    path.rename(moved / path.name)  # the same shard elsewhere keeps the same samples
    path = moved / path.name
    assert quarter == captions(0.25)
    assert quarter != captions(0.25, seed=1)
    assert set(quarter) <= set(captions(0.5))


def test_mixture_of_map_style_sources(tmp_path, csv_source):
    other = big_csv(tmp_path, "other.csv", 10)
    dataset = build_dataset([str(csv_source), f"{other}@0.5"], S)
    assert not is_streaming(dataset) and len(dataset) == 7
    captions = [dataset[i][1] for i in range(len(dataset))]
    assert captions[:2] == ["a red square", "a green, square"]
    assert all(c.startswith("other.csv ") for c in captions[2:])


def test_mixture_with_webdataset_streams_everything(tmp_path, csv_source, shards):
    other = big_csv(tmp_path, "other.csv", 10)
    dataset = build_dataset([str(csv_source), f"{shards}/{{00000..00001}}.tar", f"{other}@0.3"], S)
    assert is_streaming(dataset) and count_samples(dataset) is None
    captions, skipped = captions_of(dataset)
    assert skipped == 0 and len(captions) == 2 + 8 + 3
    assert set(captions[:2]) == {"a red square", "a green, square"}
    assert sorted(captions[2:10]) == sorted(f"s{s}- caption {i}" for s in (0, 1) for i in range(4))
    assert all(c.startswith("other.csv ") for c in captions[10:])
    assert captions == captions_of(dataset)[0]  # seeded order


@pytest.mark.parametrize("shard_count", [1, 4])  # fewer shards than slots: split by sample
def test_ranks_see_disjoint_samples_covering_all(tmp_path, shard_count):
    tars = [write_tar(tmp_path / f"{i}.tar", shard_samples(f"t{i}-", 5)) for i in range(shard_count)]
    csv_path = big_csv(tmp_path, "m.csv", 7)
    specs = [str(tars[0]) if shard_count == 1 else f"{tmp_path}/{{0..{shard_count - 1}}}.tar", csv_path]
    everything = sorted(captions_of(build_dataset(specs, S))[0])
    seen = [captions_of(build_dataset(specs, S, rank=r, world_size=2))[0] for r in range(2)]
    assert seen[0] and seen[1] and not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == everything and len(everything) == 5 * shard_count + 7


def test_dataloader_workers_split_the_stream(shards):
    captions, skipped = captions_of(build_dataset([str(shards)], S), num_workers=2)
    assert skipped == 0 and sorted(captions) == sorted(f"s{s}- caption {i}" for s in range(3) for i in range(4))


# ---------------------------------------------------------------- unreadable samples

def test_corrupt_map_samples_are_skipped_and_counted(tmp_path):
    write_image(tmp_path / "good.png", "red")
    (tmp_path / "truncated.png").write_bytes(image_bytes("red", size=(64, 64))[:60])
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "data.csv").write_text("filepath,title\ngood.png,good\ntruncated.png,t\ntext.jpg,x\n"
                                       "missing.png,m\ngood.png,again\n")
    dataset = build_dataset([str(tmp_path / "data.csv")], S)
    assert [dataset[i] is None for i in range(5)] == [False, True, True, True, False]
    batches = list(DataLoader(dataset, batch_size=3, collate_fn=collate, num_workers=0))
    assert [b["skipped"] for b in batches] == [2, 1]
    assert [b["captions"] for b in batches] == [["good"], ["again"]]
    assert batches[0]["images"].shape == (1, 3, S, S)


def test_corrupt_caption_in_folder_is_skipped(tmp_path):
    write_image(tmp_path / "a.png", "red")
    (tmp_path / "a.txt").write_bytes(b"\xff\xfe\xfa bad utf-8")
    write_image(tmp_path / "b.png", "red")
    (tmp_path / "b.txt").write_text("fine")
    assert captions_of(build_dataset([str(tmp_path)], S)) == (["fine"], 1)


def test_corrupt_shard_samples_are_skipped_and_counted(tmp_path):
    path = write_tar(tmp_path / "x.tar", [
        ("a", "png", image_bytes("red"), "good"),
        ("b", "png", image_bytes("red", size=(64, 64))[:60], "truncated"),
        ("c", "jpg", b"not an image", "text"),
        ("d", "jpg", image_bytes("red", "JPEG"), None),  # no caption
        ("e", "jpg", image_bytes("red", "JPEG"), "good too"),
    ])
    for workers in (0, 1):
        assert captions_of(build_dataset([str(path)], S), num_workers=workers) == (["good", "good too"], 3)


def test_collate_of_only_unreadable_samples():
    batch = collate([None, None])
    assert batch["images"].shape[0] == 0 and batch["captions"] == [] and batch["skipped"] == 2


# ---------------------------------------------------------------- errors

def test_missing_paths(tmp_path):
    for spec in (tmp_path / "nope.csv", tmp_path / "nope", tmp_path / "nope.tar"):
        with pytest.raises(ClipagError, match="not found"):
            build_dataset([str(spec)], S)
    write_tar(tmp_path / "0.tar", shard_samples("a", 1))
    with pytest.raises(ClipagError, match=r"not found: .*1\.tar \(2 of 3 shards"):
        build_dataset([f"{tmp_path}/{{0..2}}.tar"], S)


def test_unknown_kind_names_the_supported_ones(tmp_path):
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(ClipagError, match=r"unknown kind .*supported: a \.csv/\.tsv file"):
        build_dataset([str(tmp_path / "data.json")], S)


def test_csv_missing_columns_names_the_columns_it_has(tmp_path):
    (tmp_path / "d.csv").write_text("image,caption\na.png,x\n")
    with pytest.raises(ClipagError, match=r"no column 'filepath', 'title' \(its columns: image, caption\)"):
        build_dataset([str(tmp_path / "d.csv")], S)


def test_empty_sources(tmp_path):
    (tmp_path / "d.csv").write_text("filepath,title\n")
    (tmp_path / "empty").mkdir()
    for spec in (tmp_path / "d.csv", tmp_path / "empty"):
        with pytest.raises(ClipagError, match="no samples found"):
            build_dataset([str(spec)], S)
    with pytest.raises(ClipagError, match="no training data"):
        build_dataset([], S)
    with pytest.raises(ClipagError, match="empty data source"):
        build_dataset(["@0.5"], S)


def test_bad_fraction_in_build_dataset(csv_source):
    with pytest.raises(ClipagError, match="bad fraction"):
        build_dataset([f"{csv_source}@2"], S)


def test_image_cache_decodes_once_and_returns_the_same_items(tmp_path, monkeypatch):
    from PIL import Image

    from clipag.data import pairs
    from clipag.data.pairs import ImageCache, build_dataset
    Image.new("RGB", (8, 8), (10, 200, 30)).save(tmp_path / "a.png")
    (tmp_path / "d.csv").write_text("filepath,title\na.png,green\na.png,a green square\n")
    dataset = build_dataset(str(tmp_path / "d.csv"), 8)
    cached = ImageCache(dataset)
    calls = []
    original = pairs._image
    monkeypatch.setattr(pairs, "_image", lambda *a: calls.append(a) or original(*a))
    first = [cached[i] for i in range(2)]
    again = [cached[i] for i in range(2)]
    assert len(calls) == 2  # one decode per row, none on the second pass
    for (image, caption), (plain, plain_caption), (second, _) in zip(first, [dataset[0], dataset[1]], again):
        assert caption == plain_caption
        assert torch.allclose(image, plain, atol=1 / 510) and torch.equal(image, second)


@pytest.mark.parametrize("url", ["/data/big.tar", "/other/place/big.tar", "https://host/a/big.tar?token=1",
                                 "pipe:curl -s 'https://host/a/big.tar'", "pipe:aws s3 cp s3://b/big.tar -"])
def test_a_shard_is_named_by_its_file_wherever_it_is_served_from(url):
    assert _shard_name(url) == "big.tar"
