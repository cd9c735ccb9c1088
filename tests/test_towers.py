"""A shipped CLIPAG model stored as its image tower, its frozen text tower taken from the clean model."""
import pytest
import torch

from clipag.errors import ClipagError
from clipag.models import registry
from clipag.models.hub import cpu_state_dict, folder_config, write_model_folder
from clipag.models.loading import load_model
from clipag.models.registry import ModelSpec, get_spec, list_models, spec_file
from clipag.models.towers import (IMAGE_TOWER_NAME, merge_image_tower, save_image_tower, split_towers,
                                  text_tower_digest)

SHARING = [spec.name for spec in list_models() if spec.text_from]


def _fine_tuned(state_dict):
    """The image tower moved, everything else untouched: what CLIPAG training with a frozen text tower does."""
    torch.manual_seed(1)
    return {k: v + 0.01 * torch.randn_like(v) if k.startswith("visual.") and v.is_floating_point() else v.clone()
            for k, v in state_dict.items()}


@pytest.fixture
def package(tmp_path, monkeypatch, tiny_model):
    """A fake package with a clean model shipped whole and its fine-tune shipped as an image tower."""
    monkeypatch.setattr(registry, "ASSETS", tmp_path / "assets")
    config = folder_config(tiny_model)
    clean = cpu_state_dict(tiny_model.model)
    robust = _fine_tuned(clean)
    write_model_folder(tmp_path / "assets" / "models" / "clean", config, state_dict=clean)
    robust_folder = write_model_folder(tmp_path / "assets" / "models" / "robust", config)
    save_image_tower(robust, robust_folder / IMAGE_TOWER_NAME, text_from="clean", text_state_dict=clean)
    specs = {s.name: s for s in (ModelSpec("clean", "clipag-tiny", "test", folder="clean"),
                                 ModelSpec("robust", "clipag-tiny", "test", folder="robust", text_from="clean"))}
    monkeypatch.setattr(registry, "_REGISTRY", specs)
    return clean, robust


def test_the_image_tower_file_holds_no_text_tower_and_loads_whole(package):
    from safetensors.torch import load_file
    clean, robust = package
    assert set(load_file(str(spec_file(get_spec("robust"))))) == set(split_towers(robust)[0])
    loaded = load_model("robust").model.state_dict()
    assert all(torch.equal(loaded[k], robust[k].reshape(loaded[k].shape)) for k in robust)
    assert any(not torch.equal(robust[k], clean[k]) for k in split_towers(clean)[0])


def test_a_changed_text_tower_is_refused_at_load(package, tiny_model):
    clean, _ = package
    changed = {**clean, "logit_scale": clean["logit_scale"] + 1}
    write_model_folder(registry.ASSETS / "models" / "clean", folder_config(tiny_model), state_dict=changed)
    with pytest.raises(ClipagError, match="not the one .* was trained with"):
        load_model("robust")


def test_only_a_model_with_the_same_text_tower_can_be_stored_as_its_image_tower(tmp_path, tiny_model):
    clean = cpu_state_dict(tiny_model.model)
    retrained_text = {k: v if k.startswith("visual.") else v + 1 for k, v in _fine_tuned(clean).items()
                      if v.is_floating_point()}
    with pytest.raises(ClipagError, match="text tower differs"):
        save_image_tower(retrained_text, tmp_path / IMAGE_TOWER_NAME, text_from="clean", text_state_dict=clean)
    assert not (tmp_path / IMAGE_TOWER_NAME).exists()


def test_the_file_must_name_its_text_source(tmp_path, tiny_model):
    clean = cpu_state_dict(tiny_model.model)
    path = save_image_tower(_fine_tuned(clean), tmp_path / IMAGE_TOWER_NAME, text_from="clean", text_state_dict=clean)
    with pytest.raises(ClipagError, match="names its text tower's source as 'clean', not 'other'"):
        merge_image_tower(path, "other", clean)


def test_the_digest_sees_every_byte_and_ignores_the_image_tower(tiny_model):
    clean = cpu_state_dict(tiny_model.model)
    assert text_tower_digest(clean) == text_tower_digest(_fine_tuned(clean))
    key = next(k for k in clean if not k.startswith("visual.") and clean[k].ndim == 2)
    nudged = {**clean, key: clean[key].clone()}
    nudged[key][0, 0] = torch.nextafter(nudged[key][0, 0], torch.tensor(1.0))
    assert text_tower_digest(nudged) != text_tower_digest(clean)


def test_an_image_tower_folder_named_as_local_dir_says_how_to_load_it(package):
    with pytest.raises(ClipagError, match="holds only an image tower .* `clipag export"):
        load_model(f"local-dir:{registry.ASSETS / 'models' / 'robust'}")


@pytest.mark.parametrize("name", SHARING)
def test_each_shipped_image_tower_matches_its_text_source(name):
    spec = get_spec(name)
    source = get_spec(spec.text_from)
    assert source.bundled and not source.text_from, "the text source must ship whole"
    loaded = load_model(name).model.state_dict()
    text = load_model(spec.text_from).model.state_dict()
    assert all(torch.equal(loaded[k], text[k]) for k in split_towers(text)[1])
