"""Loading hostile or damaged files: one-line errors on every path, and no pickle ever runs code."""
import json
import os
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from clipag.measure.aesthetic import AestheticMLP
from clipag.cli.main import main
from clipag.errors import ClipagError
from clipag.models.loading import load_model, read_state_dict
from clipag.training.checkpoint import read_resumable
from clipag.tools.vqgan_model import load_vqgan

TINY = "clipag-tiny"


class _RunsCode:
    """Unpickling this creates the marker file: the proof that a loader ran a pickle's code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def malicious(tmp_path):
    """A torch.save file whose unpickling would create `marker`, and that marker's path."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "malicious.pt"
    torch.save({"weights": torch.zeros(2), "payload": _RunsCode(marker)}, path)
    return path, marker


def one_line(err: ClipagError) -> str:
    message = str(err)
    assert "\n" not in message and "Traceback" not in message, message
    return message


def local_dir(root: Path, model, config=None, weights="open_clip_model.safetensors") -> Path:
    folder = root / "saved"
    folder.mkdir(exist_ok=True)
    config = config or {"model_cfg": open_clip.get_model_config(TINY), "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    if weights:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / weights))
    return folder


# ---------------------------------------------------------------- damaged weight files

@pytest.mark.parametrize("name, content, fragment", [
    ("zero.pt", b"", "it is empty"),
    ("text.pt", b"hello, these are not weights\n" * 4, "not a PyTorch or safetensors file"),
    ("garbage.pt", b"garbage", "not a PyTorch or safetensors file"),
    ("zero.safetensors", b"", "as safetensors"),
    ("text.safetensors", b"not a safetensors header at all" * 3, "as safetensors"),
])
def test_damaged_files_are_one_line_errors(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ClipagError) as caught:
        load_model(f"{TINY}:{path}")
    assert fragment in one_line(caught.value) and str(path) in str(caught.value)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_files_are_one_line_errors(tmp_path, tiny_checkpoint, suffix):
    _, model = tiny_checkpoint
    whole = tmp_path / f"whole{suffix}"
    if suffix == ".pt":
        torch.save(model.state_dict(), whole)
    else:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(whole))
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ClipagError, match="cannot read") as caught:
        read_state_dict(cut)
    one_line(caught.value)


# ---------------------------------------------------------------- pickles that would run code

def test_a_code_carrying_pickle_is_refused_as_python_objects_on_every_path(tmp_path, malicious, tiny_checkpoint,
                                                                          tiny_vqgan_files):
    path, marker = malicious
    _, model = tiny_checkpoint
    folder = local_dir(tmp_path, model, weights=None)
    (folder / "open_clip_pytorch_model.bin").write_bytes(path.read_bytes())
    yaml_path, _ = tiny_vqgan_files
    loaders = {
        "ARCH:file": lambda: load_model(f"{TINY}:{path}"),
        "local-dir": lambda: load_model(f"local-dir:{folder}"),
        "resume": lambda: read_resumable(path),
        "aesthetic": lambda: AestheticMLP.load(path),
        "vqgan": lambda: load_vqgan(yaml_path, path),
    }
    for where, load in loaders.items():
        with pytest.raises(ClipagError) as caught:
            load()
        message = one_line(caught.value)
        assert "holds Python objects" in message and "will not unpickle" in message, (where, message)
        assert "posix.system" in message or "os.system" in message, (where, message)
    assert not marker.exists()


def test_a_plain_pickle_is_refused_without_running_it(tmp_path):
    import pickle
    marker = tmp_path / "PWNED"
    path = tmp_path / "plain.pkl.pt"
    path.write_bytes(pickle.dumps({"x": _RunsCode(marker)}))
    with pytest.raises(ClipagError, match="will not unpickle") as caught:
        read_state_dict(path)
    one_line(caught.value)
    assert not marker.exists()


def test_the_cli_refuses_a_malicious_checkpoint_in_one_line(capsys, tmp_path, malicious):
    path, marker = malicious
    code = main(["generate", "a cat", "--model", f"{TINY}:{path}", "--out", str(tmp_path / "out"), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "holds Python objects" in err, err
    assert not marker.exists()


# ---------------------------------------------------------------- hf-hub and local-dir

@pytest.mark.parametrize("reference", ["hf-hub:", "hf-hub:../../etc", "hf-hub:a/b/c", "hf-hub:org/na me"])
def test_bad_hub_names_are_one_line_errors(reference):
    with pytest.raises(ClipagError, match="does not name a Hub repository") as caught:
        load_model(reference)
    one_line(caught.value)


def test_hub_download_goes_through_the_safe_local_loader(tmp_path, monkeypatch, tiny_checkpoint):
    """A repo not yet cached is downloaded file by file (safetensors first), then read like a local folder."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError
    import clipag.models.loading as loading
    _, model = tiny_checkpoint
    remote = local_dir(tmp_path, model, weights="open_clip_pytorch_model.bin")
    torch.save(model.state_dict(), remote / "open_clip_pytorch_model.bin")
    asked = []

    def fake_download(repo_id, filename, **kwargs):
        asked.append(filename)
        if not (remote / filename).is_file():
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        return str(remote / filename)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: True)
    loaded = load_model("hf-hub:someone/tiny-remote")
    assert loaded.source == "hf-hub:someone/tiny-remote"
    assert asked == ["open_clip_config.json", "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                     "open_clip_pytorch_model.bin"]
    torch.testing.assert_close(loaded.model.state_dict()["logit_scale"], model.state_dict()["logit_scale"])


@pytest.mark.parametrize("config, fragment", [
    ({"model_cfg": "ViT-B-32"}, "needs a model_cfg object"),
    ({"model_cfg": {"embed_dim": "64", "vision_cfg": {}, "text_cfg": {}}}, "embed_dim must be an integer"),
    ({"model_cfg": {"embed_dim": 64, "vision_cfg": [], "text_cfg": {}}}, "vision_cfg must be an object"),
    ({"model_cfg": {"embed_dim": 64, "vision_cfg": {"width": "wide"}, "text_cfg": {}}}, "OpenCLIP can build"),
    ({"model_cfg": None, "preprocess_cfg": {}}, "needs a model_cfg object"),
    ("tiny", "needs a model_cfg object"),
    ({"model_cfg": "fill", "preprocess_cfg": {"mean": "grey"}}, "mean must be three numbers"),
    ({"model_cfg": "fill", "preprocess_cfg": {"std": [0, 1, 1]}}, "std must be positive"),
])
def test_local_dir_configs_of_the_wrong_shape_are_one_line_errors(tmp_path, tiny_checkpoint, config, fragment):
    _, model = tiny_checkpoint
    if isinstance(config, dict) and config.get("model_cfg") == "fill":
        config = {**config, "model_cfg": open_clip.get_model_config(TINY)}
    folder = local_dir(tmp_path, model, config=config if isinstance(config, dict) else {"x": 1})
    if not isinstance(config, dict):
        (folder / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(ClipagError) as caught:
        load_model(f"local-dir:{folder}")
    assert fragment in one_line(caught.value)


def test_local_dir_binary_config_missing_and_cut_weights_and_another_model(tmp_path, tiny_checkpoint):
    _, model = tiny_checkpoint
    folder = local_dir(tmp_path, model)
    weights = folder / "open_clip_model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(ClipagError, match="cannot read .* as safetensors"):
        load_model(f"local-dir:{folder}")
    weights.unlink()
    with pytest.raises(ClipagError, match="no weights"):
        load_model(f"local-dir:{folder}")
    save_file({"visual.proj": torch.zeros(3, 3)}, str(weights))
    with pytest.raises(ClipagError, match="does not fit"):
        load_model(f"local-dir:{folder}")
    (folder / "open_clip_config.json").write_bytes(bytes(range(128, 256)))
    with pytest.raises(ClipagError, match="as JSON"):
        load_model(f"local-dir:{folder}")


def test_a_checkpoint_of_another_size_is_a_one_line_error(tmp_path, tiny_checkpoint):
    _, model = tiny_checkpoint
    state = {k: (v[..., :1].clone() if v.ndim and k.startswith("visual.") else v) for k, v in model.state_dict().items()}
    path = tmp_path / "narrow.pt"
    torch.save(state, path)
    with pytest.raises(ClipagError, match="misshaped") as caught:
        load_model(f"{TINY}:{path}")
    one_line(caught.value)


# ---------------------------------------------------------------- VQGAN configs and checkpoints

@pytest.mark.parametrize("edit, fragment", [
    (lambda y: y.replace("ch: 32", "ch: thirty-two"), "setting ch must be an integer"),
    (lambda y: y.replace("ch_mult: [1, 2]", "ch_mult: 4"), "not a taming-transformers VQGAN config"),
    (lambda y: y.replace("ch_mult: [1, 2]", "ch_mult: [1, -2]"), "positive sizes"),
    (lambda y: y.replace("ch: 32", "ch: 20"), "multiples of 32"),
    (lambda y: y.replace("n_embed: 16", "n_embed: 100000000"), "far larger"),
    (lambda y: y.replace("  params:", "  params: 5\n  other:"), "not a taming-transformers VQGAN config"),
    (lambda y: "[unclosed", "not a taming-transformers VQGAN config"),
])
def test_vqgan_yaml_of_wrong_types_and_sizes_is_a_one_line_error(tmp_path, tiny_vqgan_files, edit, fragment):
    yaml_path, ckpt = tiny_vqgan_files
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit(yaml_path.read_text()))
    with pytest.raises(ClipagError) as caught:
        load_vqgan(bad, ckpt)
    assert fragment in one_line(caught.value)


def test_vqgan_binary_config_and_mismatched_checkpoint(tmp_path, tiny_vqgan_files):
    yaml_path, ckpt = tiny_vqgan_files
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(128, 256)))
    with pytest.raises(ClipagError, match="not a taming-transformers VQGAN config"):
        load_vqgan(binary, ckpt)
    wider = tmp_path / "wider.yaml"
    wider.write_text(yaml_path.read_text().replace("ch: 32", "ch: 64"))
    with pytest.raises(ClipagError, match="does not match the VQGAN") as caught:
        load_vqgan(wider, ckpt)
    one_line(caught.value)


@pytest.mark.parametrize("numpy_module", [b"numpy._core.multiarray", b"numpy.core.multiarray"])
def test_a_checkpoint_with_numpy_scalars_loads_as_the_official_clipag_file_needs(tmp_path, tiny_model, numpy_module):
    """Training scripts store an epoch or a loss as a numpy scalar, pickled under numpy 2's or numpy 1's name;
    torch's weights-only reader refuses them by default, and rebuilding a number runs no code."""
    import zipfile
    import numpy as np
    saved = tmp_path / "saved.pt"
    torch.save({"epoch": np.int64(10), "loss": np.float32(0.25), "state_dict": tiny_model.model.state_dict()}, saved)
    renamed = tmp_path / "official-like.pt"
    with zipfile.ZipFile(saved) as zin, zipfile.ZipFile(renamed, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item, data.replace(b"numpy._core.multiarray", numpy_module) if item.filename.endswith("data.pkl") else data)
    loaded = load_model(f"clipag-tiny:{renamed}")
    for key, value in tiny_model.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
