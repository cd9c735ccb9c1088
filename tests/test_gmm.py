import numpy as np
import pytest
import torch
from PIL import Image

from clipag.errors import ClipagError
from clipag.generation.generate import best_of_gmm
from clipag.generation.gmm import ClassGMM, fit_gmm

SIZE = 4  # D = 48
CLASSES = ["a", "b", "c"]


@pytest.fixture
def synthetic():
    rng = np.random.default_rng(0)
    data, labels = [], []
    for c in range(len(CLASSES)):
        n = 60 + 10 * c
        data.append(rng.uniform(0.1 * c, 0.5 + 0.1 * c, size=(n, 3 * SIZE * SIZE)))
        labels += [c] * n
    return torch.tensor(np.concatenate(data), dtype=torch.float32), torch.tensor(labels)


def test_fit_equals_empirical_means_and_covariances(synthetic):
    data, labels = synthetic
    gmm = ClassGMM.fit(data, labels, CLASSES, SIZE)
    assert gmm.covariance == "full"
    for c in range(len(CLASSES)):
        x = data[labels == c].double().numpy()
        np.testing.assert_allclose(gmm.means[c].numpy(), x.mean(0), rtol=1e-5, atol=1e-6)
        expected = np.cov(x, rowvar=False, bias=True) + 2.5e-5 * np.eye(48)  # the notebook's fit, in [0, 1]
        np.testing.assert_allclose(gmm.cov[c].numpy(), expected, rtol=1e-4, atol=1e-6)
    assert gmm.counts.tolist() == [60, 70, 80]


def test_low_rank_keeps_the_diagonal_and_is_exact_at_full_rank(synthetic):
    data, labels = synthetic
    full = ClassGMM.fit(data, labels, CLASSES, SIZE)
    low = ClassGMM.fit(data, labels, CLASSES, SIZE, rank=5)
    assert low.covariance == "lowrank" and low.factors.shape == (3, 48, 5)
    rebuilt = low.factors @ low.factors.transpose(1, 2)
    torch.testing.assert_close((rebuilt.diagonal(dim1=1, dim2=2) + low.diag), full.cov.diagonal(dim1=1, dim2=2),
                               rtol=1e-4, atol=1e-6)
    exact = ClassGMM.fit(data, labels, CLASSES, SIZE, rank=48)
    torch.testing.assert_close(exact.factors @ exact.factors.transpose(1, 2) + torch.diag_embed(exact.diag),
                               full.cov, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("rank", [None, 8])
def test_sampling_covers_every_class_with_the_fitted_moments(synthetic, rank):
    data, labels = synthetic
    gmm = ClassGMM.fit(data, labels, CLASSES, SIZE, rank=rank)
    images, ids = gmm.sample(2000, torch.Generator().manual_seed(0))
    assert images.shape == (6000, 3, SIZE, SIZE) and images.min() >= 0 and images.max() <= 1
    assert ids.bincount().tolist() == [2000, 2000, 2000]
    for c in range(3):
        sample_mean = images[ids == c].flatten(1).mean(0)
        torch.testing.assert_close(sample_mean, gmm.means[c], atol=0.02, rtol=0)


def test_sampling_is_seeded(synthetic):
    gmm = ClassGMM.fit(*synthetic, CLASSES, SIZE)
    a, _ = gmm.sample(3, torch.Generator().manual_seed(5))
    b, _ = gmm.sample(3, torch.Generator().manual_seed(5))
    c, _ = gmm.sample(3, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("rank", [None, 4])
def test_file_round_trip_says_its_covariance(tmp_path, synthetic, rank):
    gmm = ClassGMM.fit(*synthetic, CLASSES, SIZE, rank=rank)
    gmm.save(tmp_path / "g.safetensors")
    back = ClassGMM.load(tmp_path / "g.safetensors")
    assert back.classes == CLASSES and back.size == SIZE and back.covariance == gmm.covariance
    torch.testing.assert_close(back.means, gmm.means)


def test_loading_a_file_that_is_not_a_gmm_fails_clearly(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ClipagError, match="cannot read GMM"):
        ClassGMM.load(tmp_path / "x.safetensors")
    with pytest.raises(ClipagError, match="gmm fit"):
        ClassGMM.load(tmp_path / "missing.safetensors")


def test_best_candidate_is_the_argmax_of_similarity(tiny_guide, synthetic):
    gmm = ClassGMM.fit(*synthetic, CLASSES, SIZE)
    text = tiny_guide.encode_text(["a red apple"])[0]
    image, index, scores = best_of_gmm(tiny_guide, text, gmm, 5, 32, torch.Generator().manual_seed(0))
    assert scores.shape == (15,) and index == int(scores.argmax())
    torch.testing.assert_close(tiny_guide.score(image, text)[0].cpu(), scores.max())
    samples, _ = gmm.sample(5, torch.Generator().manual_seed(0))
    upsampled = torch.nn.functional.interpolate(samples, size=(32, 32), mode="bilinear")
    recomputed = (tiny_guide.encode_image(upsampled.clamp(0, 1)) @ text).detach()
    torch.testing.assert_close(recomputed, scores, rtol=1e-4, atol=1e-5)


def make_image_folder(root, colours, per_class=4):
    for name, colour in colours.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((20, 20, 4), (*colour, 255), dtype=np.uint8)
            pixels[: i + 1, : i + 1, 3] = 0  # transparent corner -> white
            Image.fromarray(pixels, "RGBA").save(root / name / f"{i}.png")
    return root


def test_fit_from_an_image_folder_skips_unreadable_files(tmp_path):
    root = make_image_folder(tmp_path / "data", {"red": (255, 0, 0), "blue": (0, 0, 255)})
    (root / "red" / "broken.png").write_bytes(b"not an image")
    gmm, read = fit_gmm(root, tmp_path / "g.safetensors", size=4, progress=False)
    assert gmm.classes == ["blue", "red"] and read.unreadable == 1 and gmm.counts.tolist() == [4, 4]
    red = gmm.means[1].view(3, 4, 4)
    assert red[0].min() > 0.99 and red[1].mean() < 0.2  # red channel full, green mostly empty
    assert ClassGMM.load(tmp_path / "g.safetensors").classes == ["blue", "red"]


def test_fit_rejects_bad_input(tmp_path):
    with pytest.raises(ClipagError, match="not found"):
        fit_gmm(tmp_path / "nothing", tmp_path / "g.safetensors", progress=False)
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(ClipagError, match="no images"):
        fit_gmm(tmp_path / "empty", tmp_path / "g.safetensors", progress=False)
    with pytest.raises(ClipagError, match="rank"):
        fit_gmm(tmp_path / "empty", tmp_path / "g.safetensors", size=4, rank=1000, progress=False)


def test_fit_from_a_csv_with_a_class_column(tmp_path):
    root = make_image_folder(tmp_path / "data", {"red": (255, 0, 0), "blue": (0, 0, 255)})
    rows = ["filepath,title,kind"]
    for colour in ("red", "blue"):
        for i in range(4):
            rows += [f"data/{colour}/{i}.png,a {colour} thing,{colour}-kind"] * 2  # two captions, one image
    (tmp_path / "set.csv").write_text("\n".join(rows) + "\n")
    gmm, read = fit_gmm(tmp_path / "set.csv", tmp_path / "g.safetensors", size=4, progress=False,
                        class_key="kind")
    assert gmm.classes == ["blue-kind", "red-kind"] and gmm.counts.tolist() == [4, 4] and read.unreadable == 0
    assert gmm.means[1].view(3, 4, 4)[0].min() > 0.99
    with pytest.raises(ClipagError, match="--class-column"):
        fit_gmm(tmp_path / "set.csv", tmp_path / "g.safetensors", size=4, progress=False)
    with pytest.raises(ClipagError, match="lacks the column"):
        fit_gmm(tmp_path / "set.csv", tmp_path / "g.safetensors", size=4, progress=False, class_key="nope")


def test_half_precision_file_is_smaller_and_close(tmp_path, synthetic):
    gmm = ClassGMM.fit(*synthetic, CLASSES, SIZE, rank=4)
    gmm.save(tmp_path / "full.safetensors")
    gmm.save(tmp_path / "half.safetensors", half=True)
    assert (tmp_path / "half.safetensors").stat().st_size < 0.7 * (tmp_path / "full.safetensors").stat().st_size
    back = ClassGMM.load(tmp_path / "half.safetensors")
    assert back.means.dtype == torch.float32 and back.counts.tolist() == gmm.counts.tolist()
    torch.testing.assert_close(back.factors, gmm.factors, atol=1e-3, rtol=1e-3)
