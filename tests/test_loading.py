import json
import time

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from clipag.models import registry
from clipag.errors import ClipagError
from clipag.models.loading import describe_availability, load_model, read_state_dict

TINY = "clipag-tiny"


def embeddings(model):
    torch.manual_seed(1)
    images = torch.rand(2, 3, 32, 32)
    tokens = open_clip.get_tokenizer(TINY)(["a red apple", "a dog"])
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokens)


def assert_same_model(a, b):
    for x, y in zip(embeddings(a), embeddings(b)):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_random_reference_builds_the_architecture(tiny_model):
    assert tiny_model.source == "random"
    assert tiny_model.preprocess_cfg["size"] == (32, 32) or tiny_model.preprocess_cfg["size"] == 32


def test_plain_checkpoint_round_trips_identically(tiny_checkpoint):
    path, original = tiny_checkpoint
    loaded = load_model(f"{TINY}:{path}")
    assert loaded.source == str(path)
    assert_same_model(original, loaded.model)


def test_safetensors_checkpoint_round_trips(tmp_path, tiny_checkpoint):
    _, original = tiny_checkpoint
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in original.state_dict().items()}, str(path))
    assert_same_model(original, load_model(f"{TINY}:{path}").model)


def test_training_checkpoint_with_wrapper_and_ddp_prefix(tmp_path, tiny_checkpoint):
    _, original = tiny_checkpoint
    path = tmp_path / "epoch_1.pt"
    wrapped = {"module." + k: v for k, v in original.state_dict().items()}
    torch.save({"epoch": 1, "name": "run", "state_dict": wrapped}, path)
    assert_same_model(original, load_model(f"{TINY}:{path}").model)


def test_local_dir_reference(tmp_path, tiny_checkpoint):
    _, original = tiny_checkpoint
    folder = tmp_path / "saved"
    folder.mkdir()
    config = {"model_cfg": open_clip.get_model_config(TINY),
              "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in original.state_dict().items()},
              str(folder / "open_clip_model.safetensors"))
    loaded = load_model(f"local-dir:{folder}")
    assert_same_model(original, loaded.model)
    assert tuple(loaded.preprocess_cfg["mean"]) == (0.5, 0.5, 0.5)


def _fake_hf_cache(root, repo_id, files):
    """Lay out files as huggingface_hub's cache does: models--org--name/{refs/main,snapshots/REV/}."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    for name, write in files.items():
        write(snapshot / name)
    return snapshot


def _write_weights(model):
    return lambda path: save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def test_hf_hub_reference_from_cache(tmp_path, monkeypatch, tiny_checkpoint):
    import huggingface_hub.constants as hf_constants
    _, original = tiny_checkpoint
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    config = json.dumps({"model_cfg": open_clip.get_model_config(TINY), "preprocess_cfg": {}})
    _fake_hf_cache(tmp_path, "someone/tiny-clip", {
        "open_clip_config.json": lambda p: p.write_text(config),
        "open_clip_model.safetensors": _write_weights(original)})
    assert_same_model(original, load_model("hf-hub:someone/tiny-clip").model)


def test_pretrained_tag_from_cache(tmp_path, monkeypatch, tiny_checkpoint):
    import huggingface_hub.constants as hf_constants
    _, original = tiny_checkpoint
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    tag = {"hf_hub": "someone/tiny-tag/", "mean": (0.1, 0.2, 0.3), "std": (0.4, 0.5, 0.6)}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY, {"testtag": tag})
    _fake_hf_cache(tmp_path, "someone/tiny-tag", {"open_clip_pytorch_model.bin":
                                                  lambda p: torch.save(original.state_dict(), p)})
    loaded = load_model(f"{TINY}:testtag")
    assert_same_model(original, loaded.model)
    assert tuple(loaded.preprocess_cfg["mean"]) == (0.1, 0.2, 0.3)


def test_registered_name_with_file(tmp_path, monkeypatch, tiny_checkpoint):
    path, original = tiny_checkpoint
    monkeypatch.setenv("CLIPAG_HOME", str(tmp_path / "home"))
    spec = registry.ModelSpec(name="tiny-test", arch=TINY, description="test", filename="tiny.pt",
                              url="https://example.org/tiny.pt")
    monkeypatch.setitem(registry._REGISTRY, spec.name, spec)
    available, where = describe_availability(spec)
    assert not available and "https://example.org/tiny.pt" in where
    with pytest.raises(ClipagError, match="tiny.pt"):
        load_model("tiny-test")
    (tmp_path / "home" / "models").mkdir(parents=True)
    (tmp_path / "home" / "models" / "tiny.pt").write_bytes(path.read_bytes())
    assert describe_availability(spec)[0]
    assert_same_model(original, load_model("tiny-test").model)


def test_registry_lists_the_paper_models():
    names = [spec.name for spec in registry.list_models()]
    assert {"clipag-vit-b-32", "clip-vit-b-32"} <= set(names)
    official = registry.get_spec("clipag-vit-b-32")
    assert official.filename == "CLIPAG_ViTB32.pt" and official.size_bytes == 1_310_567_621


@pytest.mark.parametrize("reference, message", [
    ("no-such-model", "unknown model"),
    ("clipag-tiny", "needs weights"),
    (f"{TINY}:/nonexistent/weights.pt", "checkpoint not found"),
    (f"{TINY}:not-a-tag", "neither a pretrained tag"),
    ("clip-vit-b-32", "cannot be reached"),
    ("ViT-B-32:laion2b_s34b_b79k", "cannot be reached"),
    ("clipag-vit-b-32", "zenodo.org"),
    ("hf-hub:nobody/nothing", "cannot be reached"),
    ("local-dir:/nonexistent", "open_clip_config.json"),
])
def test_bad_references_fail_fast_with_a_clear_error(reference, message, tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPAG_HOME", str(tmp_path))
    started = time.perf_counter()
    with pytest.raises(ClipagError, match=message):
        load_model(reference)
    assert time.perf_counter() - started < 5


def test_checkpoint_of_another_architecture_is_named(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"visual.proj": torch.zeros(3, 3)}, path)
    with pytest.raises(ClipagError, match="does not fit architecture"):
        load_model(f"{TINY}:{path}")


class NotATensor:
    pass


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "extra": NotATensor()}, path)
    with pytest.raises(ClipagError, match="will not unpickle"):
        read_state_dict(path)


def test_truncated_file_is_reported(tmp_path, tiny_checkpoint):
    path, _ = tiny_checkpoint
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ClipagError, match="cannot read checkpoint"):
        read_state_dict(broken)
