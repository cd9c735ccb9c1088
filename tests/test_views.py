"""The guidance views against the official notebook's DiffAugment arithmetic (royg27/CLIPAG CLIPAG_T2I.ipynb)."""
import pytest
import torch

from clipag.generation.views import (GuidanceViews, ViewConfig, crop_batch, cutout, diffaugment, resize_keep_size,
                            sample_diffaugment, translate)
from clipag.errors import ClipagError
from clipag.generation.generate import GenerateConfig


def test_translation_shifts_by_whole_pixels_with_zero_padding():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6) + 1
    out = translate(x, torch.tensor([[2, -1], [0, 0]]))
    expected = torch.zeros_like(x[0])
    expected[:, :4, 1:] = x[0, :, 2:, :5]  # out[i, j] = x[i + 2, j - 1]
    torch.testing.assert_close(out[0], expected)
    torch.testing.assert_close(out[1], x[1])


def test_resize_zero_pads_a_zoom_out_and_centre_crops_a_zoom_in():
    x = torch.ones(1, 3, 10, 10)
    small = resize_keep_size(x, 0.8)  # int(8.0) = 8 px, padded by 1 on every side
    assert small.shape == x.shape
    assert small[0, 0, 1:9, 1:9].eq(1).all() and small[0, 0, 0].eq(0).all() and small[0, 0, :, 9].eq(0).all()
    ramp = torch.linspace(0, 1, 10).view(1, 1, 1, 10).expand(1, 3, 10, 10)
    big = resize_keep_size(ramp, 1.2)  # 12 px, 1 px cropped from each side
    assert big.shape == x.shape
    assert big[0, 0, 0, 0] > ramp[0, 0, 0, 0] and big[0, 0, 0, -1] < ramp[0, 0, 0, -1]


def test_cutout_zeroes_a_square_clamped_at_the_border():
    x = torch.ones(2, 3, 8, 8)
    out = cutout(x, torch.tensor([[4, 4], [0, 7]]), (4, 4))
    assert out[0, :, 2:6, 2:6].eq(0).all() and out[0].eq(0).sum() == 3 * 16
    # rows -2..1 clamp to 0..1, columns 5..8 to 5..7: a 2 x 3 corner
    assert out[1, :, :2, 5:].eq(0).all() and out[1].eq(0).sum() == 3 * 6


def test_colour_operations_are_the_notebooks_affine_maps_without_clamping():
    x = torch.rand(1, 3, 5, 5)
    params = {"brightness": torch.tensor(0.4).view(1, 1, 1, 1), "saturation": torch.tensor(2.0).view(1, 1, 1, 1),
              "contrast": torch.tensor(1.5).view(1, 1, 1, 1)}
    out = diffaugment(x, params, ("color",))
    y = x + 0.4
    y = (y - y.mean(1, keepdim=True)) * 2 + y.mean(1, keepdim=True)  # around each pixel's grey value
    y = (y - y.mean()) * 1.5 + y.mean()  # around the image's mean
    torch.testing.assert_close(out, y)
    assert out.max() > 1  # no clamping


def test_draws_have_the_notebooks_ranges_at_224_px():
    torch.manual_seed(0)
    draws = sample_diffaugment(4000, (224, 224), ViewConfig(), "cpu")
    assert -0.5 <= draws["brightness"].min() < -0.49 and 0.49 < draws["brightness"].max() <= 0.5
    assert 0 <= draws["saturation"].min() < 0.01 and 1.99 < draws["saturation"].max() <= 2
    assert 0.5 <= draws["contrast"].min() < 0.51 and 1.49 < draws["contrast"].max() <= 1.5
    assert draws["shift"].min() == -28 and draws["shift"].max() == 28  # int(224 * 0.125 + 0.5)
    assert draws["cutout_size"] == (112, 112)
    assert draws["cutout_centre"].min() == 0 and draws["cutout_centre"].max() == 224
    assert 0.8 <= draws["ratio"] <= 1.2


def test_a_views_cutout_zeroes_about_a_fifth_of_it():
    torch.manual_seed(0)
    draws = sample_diffaugment(2000, (32, 32), ViewConfig(), "cpu")
    zeroed = 1 - cutout(torch.ones(2000, 1, 32, 32), draws["cutout_centre"], draws["cutout_size"]).mean()
    # a half-side square (a quarter of the area) whose centre falls anywhere: about 0.19 stays inside
    assert 0.17 < float(zeroed) < 0.21


def test_crops_are_fixed_size_shares_resized_clamped_then_augmented():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 224, 224) * 1.4 - 0.2  # out of range, so the clamp shows
    plain = GuidanceViews((64, 64), ViewConfig(views=0, crops=6, policy="", noise_std=0.0))
    crops = plain(image)
    assert crops.shape == (6, 3, 64, 64) and crops.min() >= 0 and crops.max() <= 1
    draws = plain._draw_crops(image)
    assert draws["side"] == (128, 128)
    augmented = GuidanceViews((64, 64), ViewConfig(views=0, crops=6))(image)
    assert augmented.min() < 0 or augmented.max() > 1  # DiffAugment runs after the clamp


def test_crop_batch_takes_the_pixels_at_each_corner():
    image = torch.arange(3 * 5 * 5, dtype=torch.float32).view(1, 3, 5, 5)
    crops = crop_batch(image, torch.tensor([[0, 0], [2, 1]]), (3, 3))
    torch.testing.assert_close(crops[1], image[0, :, 2:5, 1:4])


def test_views_get_their_own_noise_and_crops_share_one_map():
    torch.manual_seed(0)
    views = GuidanceViews((16, 16), ViewConfig(views=3, crops=3, policy=""))
    image = torch.full((1, 3, 16, 16), 0.5)
    draws = views._draw_views(image), views._draw_crops(image)
    assert draws[0]["noise"].shape == (3, 3, 16, 16) and draws[1]["crop_noise"].shape == (1, 3, 16, 16)
    assert 0.008 < float(draws[0]["noise"].std()) < 0.012  # N(0, 0.01)


@pytest.mark.parametrize("augment", ["diffaugment", "kornia"])
def test_every_augment_gives_a_differentiable_batch_at_the_model_size(augment):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 48, 48, requires_grad=True)
    batch = GuidanceViews((32, 32), ViewConfig(views=5, crops=3, augment=augment))(image)
    assert batch.shape == (8, 3, 32, 32)
    batch.sum().backward()
    assert image.grad.abs().sum() > 0


@pytest.mark.parametrize("views, message", [
    (ViewConfig(augment="diff"), "unknown augment"),
    (ViewConfig(policy="color,flip"), "unknown DiffAugment operation 'flip'"),
    (ViewConfig(resize=(1.5, 1.0)), "resize range"),
    (ViewConfig(crop_share=0), "crop_share"),
])
def test_bad_view_settings_are_one_line_errors(views, message):
    with pytest.raises(ClipagError, match=message):
        GenerateConfig(views=views).validate()
