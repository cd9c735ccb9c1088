"""VQGAN (taming layout) and VQGAN+CLIP on a tiny random VQGAN and a tiny guide."""
import json

import pytest
import torch

from clipag.cli.main import main
from clipag.errors import ClipagError
from clipag.tools.vqgan import VQGANCLIPConfig, spherical_distance, vqgan_clip
from clipag.tools.vqgan_model import VQGAN, VQGANConfig, load_vqgan
from conftest import TINY_YAML

def test_taming_layout_and_round_trip(tiny_vqgan_files):
    model = load_vqgan(*tiny_vqgan_files)
    keys = set(model.state_dict())
    for key in ("encoder.down.0.block.0.norm1.weight", "encoder.down.0.downsample.conv.weight",
                "encoder.down.1.attn.0.q.weight", "encoder.mid.attn_1.proj_out.weight",
                "decoder.up.1.upsample.conv.weight", "decoder.up.0.block.1.conv2.weight",
                "quantize.embedding.weight", "quant_conv.weight", "post_quant_conv.weight"):
        assert key in keys, key
    latent = model.encode(torch.rand(1, 3, 16, 16) * 2 - 1)
    assert latent.shape == (1, 8, 8, 8) and model.decode(latent).shape == (1, 3, 16, 16)


def test_straight_through_quantisation_passes_gradients(tiny_vqgan_files):
    model = load_vqgan(*tiny_vqgan_files)
    latent = torch.randn(1, 8, 2, 2, requires_grad=True)
    quantised = model.quantize(latent)
    codebook = model.quantize.embedding.weight
    assert all(any(torch.allclose(v, c, atol=1e-6) for c in codebook) for v in quantised.detach().permute(0, 2, 3, 1).reshape(-1, 8))
    quantised.sum().backward()
    assert torch.equal(latent.grad, torch.ones_like(latent))


def test_mismatch_and_bad_config_are_clear(tiny_vqgan_files, tmp_path):
    config, checkpoint = tiny_vqgan_files
    (tmp_path / "big.yaml").write_text(TINY_YAML.replace("ch_mult: [1, 2]", "ch_mult: [1, 2, 2]"))
    with pytest.raises(ClipagError, match="does not match the VQGAN"):
        load_vqgan(tmp_path / "big.yaml", checkpoint)
    (tmp_path / "bad.yaml").write_text("model: {}\n")
    with pytest.raises(ClipagError, match="not a taming-transformers VQGAN config"):
        load_vqgan(tmp_path / "bad.yaml", checkpoint)


def test_spherical_distance():
    a = torch.tensor([[1.0, 0.0]])
    assert spherical_distance(a, a).item() == pytest.approx(0.0, abs=1e-6)
    assert spherical_distance(a, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(2 * (torch.pi / 4) ** 2, rel=1e-4)


def test_vqgan_clip_lowers_its_loss_and_command_writes(tiny_guide, tiny_vqgan_files, tmp_path, capsys):
    model = load_vqgan(*tiny_vqgan_files)
    config = VQGANCLIPConfig(steps=30, size=32, crops=4, save_every=10)
    result = vqgan_clip(tiny_guide, model, ["a red apple"], seed=0, config=config, progress=False)
    assert result.image.shape == (3, 32, 32) and len(result.frames) == 3
    assert sum(result.history[-5:]) < sum(result.history[:5])
    code = main(["vqgan", "a red apple", "blurry:-0.5", "--vqgan-config", str(tiny_vqgan_files[0]),
                 "--vqgan-checkpoint", str(tiny_vqgan_files[1]), "--model", "clipag-tiny:random", "--steps", "2",
                 "--size", "16", "--crops", "2", "--save-every", "1", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    record = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert record["method"] == "vqgan" and len(record["loss_history"]) == 2
    assert next((tmp_path / "out").glob("*.gif")).stat().st_size > 0


def test_clamp_with_grad_passes_gradients_that_lead_back_into_range():
    from clipag.tools.vqgan import clamp_with_grad
    x = torch.tensor([-0.5, 0.5, 1.5], requires_grad=True)
    (clamp_with_grad(x) * torch.tensor([-1.0, 1.0, 1.0])).sum().backward()
    # below range, a gradient of -1 (descent raises x, back into range) passes; above, +1 (descent lowers x) passes
    assert x.grad.tolist() == [-1.0, 1.0, 1.0]
    y = torch.tensor([-0.5, 1.5], requires_grad=True)
    (clamp_with_grad(y) * torch.tensor([1.0, -1.0])).sum().backward()
    assert y.grad.tolist() == [0.0, 0.0]  # descent would push further out: blocked, as a plain clamp


def test_latest_cutouts_are_pooled_whole_image_copies_with_the_reference_augments():
    from clipag.tools.vqgan import DEFAULT_AUGMENTS, Cutouts, pool_to
    image = torch.rand(1, 3, 48, 48)
    plain = Cutouts(16, 8, augments=())
    torch.manual_seed(0)
    batch = plain(image)
    pooled = (torch.nn.functional.adaptive_avg_pool2d(image, 16) + torch.nn.functional.adaptive_max_pool2d(image, 16)) / 2
    torch.testing.assert_close(pool_to(image, 16), pooled)
    noise = batch - pooled
    assert batch.shape == (8, 3, 16, 16) and 0 < noise.std() < 0.1  # U(0, 0.1)-scaled noise, unclamped
    assert plain(torch.ones(1, 3, 48, 48)).max() > 1  # not clamped
    assert DEFAULT_AUGMENTS == ("Af", "Pe", "Ji", "Er")
    names = [type(m).__name__ for m in Cutouts(16, 4).augment]
    assert names == ["RandomAffine", "RandomPerspective", "ColorJitter", "RandomErasing"]
    assert all(m.p == 0.7 for m in Cutouts(16, 4).augment)


def test_default_size_is_the_references_for_a_cpu_and_image_prompts_pull(tiny_guide, tiny_vqgan_files, tmp_path):
    from clipag.io import save_png
    from clipag.tools.vqgan import default_size
    assert default_size(torch.device("cpu")) == 256 and VQGANCLIPConfig().size is None
    save_png(torch.ones(3, 32, 32) * torch.tensor([1.0, 0, 0]).view(3, 1, 1), tmp_path / "red.png")
    model = load_vqgan(*tiny_vqgan_files)
    config = VQGANCLIPConfig(steps=20, size=32, crops=4, image_prompts=(str(tmp_path / "red.png"),))
    result = vqgan_clip(tiny_guide, model, [], seed=0, config=config, progress=False)
    assert sum(result.history[-5:]) < sum(result.history[:5])
    with pytest.raises(ClipagError, match="image prompt"):
        vqgan_clip(tiny_guide, model, [], seed=0, config=VQGANCLIPConfig(steps=1, size=32), progress=False)
    with pytest.raises(ClipagError, match="unknown augment 'Zz'"):
        VQGANCLIPConfig(augments=("Af", "Zz")).validate()
