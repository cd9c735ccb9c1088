"""Model folders that OpenCLIP reads without clipag: the shipped models, `clipag export`, and the push."""
import json
import subprocess
import sys

import pytest
import torch

from clipag.cli.main import main
from clipag.errors import ClipagError
from clipag.models.hub import _shipped_card, base_model, export_model, model_card, push_to_hub
from clipag.models.loading import load_model
from clipag.models.registry import list_models, spec_folder
from clipag.training import TrainConfig, train

SHIPPED = [spec.name for spec in list_models() if spec.bundled]
NAMES = ["red apple", "grinning face", "rocket"]

# Runs in a fresh interpreter that never imports clipag: OpenCLIP alone builds the folder's model.
_OPEN_CLIP_ONLY = """
import sys, open_clip, torch
folder, out = sys.argv[1], sys.argv[2]
model, preprocess = open_clip.create_model_from_pretrained("local-dir:" + folder)
model.eval()  # as OpenCLIP's README does: BatchNorm (the ResNet judge) needs it
tokenizer = open_clip.get_tokenizer("local-dir:" + folder)
size = model.visual.image_size
torch.manual_seed(0)
pixels = torch.rand(2, 3, *((size, size) if isinstance(size, int) else size))
with torch.no_grad():
    embeddings = {"image": model.encode_image(pixels), "text": model.encode_text(tokenizer(%r))}
assert "clipag" not in sys.modules
torch.save({**embeddings, "pixels": pixels}, out)
""" % (NAMES,)


def open_clip_embeddings(folder, tmp_path):
    out = tmp_path / "embeddings.pt"
    subprocess.run([sys.executable, "-c", _OPEN_CLIP_ONLY, str(folder), str(out)], check=True,
                   env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, timeout=300)
    return torch.load(out, weights_only=True)


def clipag_embeddings(reference, pixels):
    loaded = load_model(reference)
    with torch.no_grad():
        return loaded.model.encode_image(pixels), loaded.model.encode_text(loaded.tokenizer(NAMES))


def test_every_shipped_model_is_registered_as_a_folder():
    assert set(SHIPPED) >= {"clip-emoji", "clipag-emoji", "emoji-judge"}


@pytest.mark.parametrize("name", SHIPPED)
def test_open_clip_alone_loads_each_shipped_model_with_the_same_embeddings(name, tmp_path):
    """A folder in the package, or, for one stored as its image tower only, what `clipag export` writes."""
    spec = next(s for s in list_models() if s.name == name)
    folder = export_model(name, tmp_path / name) if spec.text_from else spec_folder(spec)
    theirs = open_clip_embeddings(folder, tmp_path)
    image, text = clipag_embeddings(name, theirs["pixels"])
    torch.testing.assert_close(theirs["image"], image)
    torch.testing.assert_close(theirs["text"], text)
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: open_clip" in card and "license: mit" in card
    assert "CC-BY 4.0" in (folder / "LICENSES.md").read_text()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """Two CLIPAG steps on a tiny model, from a data folder that carries a LICENSES.md."""
    from PIL import Image
    root = tmp_path_factory.mktemp("data")
    rows = ["filepath,title"]
    for i, colour in enumerate(["red", "green", "blue", "yellow"] * 2):
        Image.new("RGB", (32, 32), colour).save(root / f"{i}.png")
        rows.append(f"{i}.png,a {colour} square")
    (root / "data.csv").write_text("\n".join(rows) + "\n")
    (root / "LICENSES.md").write_text("Squares: CC0, drawn by the test.\n")
    torch.manual_seed(0)
    start = tmp_path_factory.mktemp("start") / "tiny.pt"
    import open_clip
    torch.save(open_clip.create_model("clipag-tiny").state_dict(), start)
    out = tmp_path_factory.mktemp("runs") / "tiny-run"
    train(TrainConfig(model=f"clipag-tiny:{start}", data=[str(root / "data.csv")], out=str(out),
                      objective="clipag", batch_size=4, steps=2, workers=0, log_every=1, save_every=2),
          progress=False)
    return out


def test_an_exported_run_loads_in_open_clip_alone_and_its_card_tells_the_recipe(trained_run, tmp_path):
    folder = export_model(str(trained_run), tmp_path / "tiny-clipag", metrics={"zero-shot top-1": 0.25})
    theirs = open_clip_embeddings(folder, tmp_path)
    image, text = clipag_embeddings(f"local-dir:{trained_run}", theirs["pixels"])
    torch.testing.assert_close(theirs["image"], image)
    torch.testing.assert_close(theirs["text"], text)
    card = (folder / "README.md").read_text()
    assert "# Model card for tiny-clipag" in card and "objective: clipag" in card
    assert "zero-shot top-1: 0.25" in card and "training loss at step 2" in card
    assert (folder / "LICENSES.md").read_text() == "Squares: CC0, drawn by the test.\n"
    assert json.loads((folder / "training_settings.json").read_text())["steps"] == 2


def test_export_in_half_precision_halves_the_weights(trained_run, tmp_path):
    full = export_model(str(trained_run), tmp_path / "full")
    half = export_model(str(trained_run), tmp_path / "half", half=True)
    ratio = (half / "open_clip_model.safetensors").stat().st_size / (full / "open_clip_model.safetensors").stat().st_size
    assert 0.45 < ratio < 0.55


def test_export_refuses_a_folder_that_holds_files_and_keeps_them(trained_run, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ClipagError, match="already holds files"):
        export_model(str(trained_run), out)
    assert (out / "notes.txt").read_text() == "mine"
    export_model(str(trained_run), out, overwrite=True)
    assert not (out / "notes.txt").exists() and (out / "open_clip_model.safetensors").is_file()


class FakeHub:
    """A local stand-in for huggingface_hub.HfApi: records the calls and keeps a copy of the upload."""

    def __init__(self, root, fail=None):
        self.root, self.fail, self.calls = root, fail, []

    def create_repo(self, repo_id, private=False, exist_ok=False):
        if self.fail:
            raise self.fail
        self.calls.append(("create_repo", repo_id, private, exist_ok))

    def upload_folder(self, repo_id, folder_path, commit_message):
        import shutil
        shutil.copytree(folder_path, self.root / repo_id)
        self.calls.append(("upload_folder", repo_id, commit_message))
        return f"https://huggingface.co/{repo_id}/commit/0"


def test_export_then_push_uploads_a_folder_open_clip_can_load(trained_run, tmp_path, monkeypatch, capsys):
    hub = FakeHub(tmp_path / "hub")
    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: hub)
    code = main(["export", str(trained_run), "--out", str(tmp_path / "tiny"), "--push-to-hub", "me/tiny-clipag"])
    assert code == 0 and "pushed to hf-hub:me/tiny-clipag" in capsys.readouterr().out
    assert [c[0] for c in hub.calls] == ["create_repo", "upload_folder"] and hub.calls[0][3] is True
    uploaded = tmp_path / "hub" / "me" / "tiny-clipag"
    assert "hf-hub:me/tiny-clipag" in (uploaded / "README.md").read_text()  # the card's usage names the repo
    theirs = open_clip_embeddings(uploaded, tmp_path)
    torch.testing.assert_close(theirs["image"], clipag_embeddings(f"local-dir:{trained_run}", theirs["pixels"])[0])


def test_a_failed_push_is_one_line_and_keeps_the_folder(trained_run, tmp_path, monkeypatch, capsys):
    folder = export_model(str(trained_run), tmp_path / "kept")
    with pytest.raises(ClipagError, match="cannot push .* check the network.*the folder is kept"):
        push_to_hub(folder, "me/x", api=FakeHub(tmp_path, fail=ConnectionError("offline\nmore")))
    assert (folder / "open_clip_model.safetensors").is_file()
    with pytest.raises(ClipagError, match="no open_clip_config.json"):
        push_to_hub(tmp_path, "me/x", api=FakeHub(tmp_path))


def test_bad_export_input_is_one_line(tmp_path, capsys):
    assert main(["export", "no-such-model", "--out", str(tmp_path / "x")]) == 2
    assert "unknown model" in capsys.readouterr().err
    (tmp_path / "m.json").write_text("[1, 2]")
    assert main(["export", "clipag-tiny:random", "--out", str(tmp_path / "y"), "--metrics", str(tmp_path / "m.json")]) == 2
    assert "--metrics" in capsys.readouterr().err


def test_base_model_names_the_hub_repo_of_the_start():
    assert base_model("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K") == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
    assert base_model("clip-vit-b-32") == base_model("ViT-B-32:laion2b_s34b_b79k") is not None
    assert base_model("local-dir:runs/x") is None and base_model("emoji-vit-64:/w.pt") is None
    card = model_card("m", {"model_cfg": {"vision_cfg": {}, "text_cfg": {}}, "preprocess_cfg": {"size": 32}},
                      settings={"model": "clip-vit-b-32"})
    assert f"base_model: {base_model('clip-vit-b-32')}\n---" in card


def test_a_finished_run_folder_is_a_hub_folder_with_a_card(trained_run):
    card = (trained_run / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: open_clip" in card
    assert "# Model card for tiny-run" in card and "objective: clipag" in card and "training loss at step 2" in card


def test_export_of_a_shipped_model_applies_name_and_repo_and_refuses_a_new_description(tmp_path, capsys):
    folder = export_model("emoji-judge", tmp_path / "judge", name="my-judge", repo_id="me/judge")
    card = (folder / "README.md").read_text()
    assert "# Model card for my-judge" in card and "hf-hub:me/judge" in card and "PATH/TO/THIS" not in card
    assert main(["export", "emoji-judge", "--out", str(tmp_path / "x"), "--description", "mine"]) == 2
    err = capsys.readouterr().err
    assert "--description cannot be applied" in err and len(err.strip().splitlines()) == 1
    assert not any((tmp_path / "x").iterdir())  # nothing written


def test_a_shipped_card_gets_a_hub_line_where_it_names_no_placeholder_and_refuses_in_one_message():
    card = "---\nlicense: mit\n---\n# Model card for x\n\n## Model Usage\n```bash\nclipag generate p --model x\n```\n"
    made = _shipped_card(card, "x", name=r"my\1 model", repo_id="me/x", description=None, metrics=None, license="mit")
    assert "# Model card for my\\1 model" in made and "## Model Usage\nFrom the Hub:\n" in made
    assert "hf-hub:me/x" in made
    with pytest.raises(ClipagError, match=r"so --metrics and --license cannot be applied"):
        _shipped_card(card, "x", name=None, repo_id=None, description=None, metrics={}, license="apache-2.0")
    with pytest.raises(ClipagError, match="--license cannot be applied"):  # a card with no licence line
        _shipped_card(card.replace("license: mit\n", ""), "x", name=None, repo_id=None, description=None,
                      metrics=None, license="mit")
