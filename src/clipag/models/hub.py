"""OpenCLIP / Hugging Face Hub model folders: what clipag ships, exports and publishes.

A model folder is what OpenCLIP's `local-dir:` and `hf-hub:` references read, and nothing of clipag's:
  open_clip_config.json        model_cfg (the architecture) and preprocess_cfg (size, mean, std, ...)
  open_clip_model.safetensors  the weights, keys as in model.state_dict()
  README.md                    the model card; its YAML front matter is the Hub's metadata
  LICENSES.md                  the training data's attribution, when the data asks for it
  training_settings.json       the full settings of the clipag run that made it, when there was one
OpenCLIP's CLIP tokenizer is rebuilt from text_cfg (context_length, vocab_size), so a folder needs no
tokenizer files; a Hugging Face tokenizer is named by text_cfg.hf_tokenizer_name, as OpenCLIP does.

The card's front matter and layout come from OpenCLIP's own `generate_readme`; clipag adds the base
model, the recipe and the measured numbers it knows. OpenCLIP's `save_for_hf` is not used because it
writes a tokenizer only for Hugging Face tokenizers and keeps no training settings; `push_to_hf_hub`
is not used because it re-serialises the model instead of uploading the folder a user checked.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path
from typing import Any, Optional

from ..errors import ClipagError
from ..files import atomic_path, path_kind, save_json

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
CARD_NAME = "README.md"
LICENSES_NAME = "LICENSES.md"
SETTINGS_NAME = "training_settings.json"
PLACEHOLDER = "local-dir:PATH/TO/THIS/FOLDER"  # the usage snippet's reference until the model is pushed
TAGS = ("clip", "open_clip", "clipag", "adversarial-training", "perceptually-aligned-gradients")
CITATION = """@inproceedings{ganz2024clipag,
  title={CLIPAG: Towards Generator-Free Text-to-Image Generation},
  author={Ganz, Roy and Elad, Michael},
  booktitle={IEEE/CVF Winter Conference on Applications of Computer Vision (WACV)},
  year={2024}
}"""


def export_model(reference: str, out: str | Path, *, name: Optional[str] = None, half: bool = False,
                 description: Optional[str] = None, metrics: Optional[dict] = None,
                 license: Optional[str] = None, repo_id: Optional[str] = None, overwrite: bool = False) -> Path:
    """Write `reference` (a run folder, or any model reference) as a Hub model folder at `out`.

    The folder is built beside `out` and renamed into place, so an interrupted export leaves nothing
    half-written; an existing non-empty `out` is refused unless `overwrite`. A clipag run folder also
    gives the card its recipe (settings.json), its last logged training numbers (log.csv) and its
    data's attribution (a LICENSES.md beside each training CSV). A model that ships with clipag keeps
    its own card (renamed to `name`, its usage pointed at `repo_id`; a new description, metrics or
    licence are refused), LICENSES.md and training settings, and is written whole even where the
    package stores only its image tower (see clipag.models.towers)."""
    from .loading import load_model
    out = Path(out)
    _check_target(out, overwrite)
    shipped = _shipped_folder(reference)
    if shipped is not None:  # a model of the package: its own card, attribution and settings, as they ship
        card = _shipped_card(_read_text(shipped / CARD_NAME) or "", reference, name=name, repo_id=repo_id,
                             description=description, metrics=metrics, license=license)
        licenses, settings = _read_text(shipped / LICENSES_NAME), _read_json(shipped / SETTINGS_NAME)
    run_dir = _run_folder(reference)
    loaded = load_model(f"local-dir:{run_dir}" if run_dir and not reference.startswith("local-dir:") else reference)
    config = folder_config(loaded)
    if shipped is None:
        settings = _read_json(run_dir / "settings.json") if run_dir else None
        measured = {**logged_metrics(run_dir), **(metrics or {})} if run_dir else dict(metrics or {})
        card = model_card(name or out.name, config, settings=settings, metrics=measured, description=description,
                          license=license or "mit", source=loaded.reference, repo_id=repo_id)
        licenses = _data_licenses(settings)
    staging = out.with_name(f".{out.name}.export-tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        write_model_folder(staging, config, state_dict=cpu_state_dict(loaded.model, half), card=card,
                           licenses=licenses, settings=settings)
        _replace_folder(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def folder_config(loaded) -> dict:
    """open_clip_config.json's content for a loaded model: its architecture and its preprocessing."""
    if not loaded.model_cfg:
        raise ClipagError(f"{loaded.reference}: its architecture config is unknown, so OpenCLIP could not "
                          f"rebuild it from a folder; load it by an OpenCLIP architecture name instead")
    return folder_config_of(loaded.model_cfg, loaded.preprocess_cfg)


def folder_config_of(model_cfg: dict, preprocess_cfg: dict) -> dict:
    preprocess = {k: list(v) if isinstance(v, tuple) else v for k, v in preprocess_cfg.items()}
    return {"model_cfg": model_cfg, "preprocess_cfg": preprocess}


def write_model_folder(folder: str | Path, config: dict, *, state_dict: Optional[dict] = None,
                       card: Optional[str] = None, licenses: Optional[str] = None,
                       settings: Optional[dict] = None) -> Path:
    """Write the files of a model folder (each atomically); `state_dict=None` keeps the weights there."""
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if state_dict is not None:
        with atomic_path(folder / WEIGHTS_NAME) as tmp:
            save_file(state_dict, str(tmp))
    for file_name, text in ((CARD_NAME, card), (LICENSES_NAME, licenses)):
        if text is not None:
            with atomic_path(folder / file_name) as tmp:
                tmp.write_text(text, encoding="utf-8")
    if settings is not None:
        save_json(settings, folder / SETTINGS_NAME)
    return folder


def model_card(name: str, config: dict, *, settings: Optional[dict] = None, metrics: Optional[dict] = None,
               description: Optional[str] = None, license: str = "mit", source: Optional[str] = None,
               repo_id: Optional[str] = None, body: Optional[str] = None) -> str:
    """A Hub model card (README.md): OpenCLIP's front matter and sections, plus base_model, the recipe
    and the measured numbers; `repo_id` fills the usage snippet; `body` (Markdown) is appended."""
    from open_clip.push_to_hf_hub import generate_readme
    base = base_model(settings.get("model")) if settings else None
    details: dict[str, Any] = {"Architecture": _architecture(config["model_cfg"]),
                               "Input": _input(config["preprocess_cfg"], config["model_cfg"])}
    if settings:
        details["Fine-tuned from" if settings.get("model") else "Trained"] = settings.get("model", "from scratch")
        details["Recipe (clipag train)"] = _recipe(settings)
    elif source:
        details["Exported from"] = source
    if metrics:
        details["Measured"] = {k: _number(v) for k, v in metrics.items()}
    text = generate_readme({
        "tags": list(TAGS), "license": license,
        "description": description or _default_description(settings),
        "details": details, "usage": _usage(repo_id), "citation": CITATION,
    }, name)
    if base:
        text = text.replace("\n---\n", f"\nbase_model: {base}\n---\n", 1)
    if body:  # the card's own text goes before the citation, which OpenCLIP writes last
        head, _, citation = text.partition("\n## Citation\n")
        text = f"{head.rstrip()}\n\n{body.strip()}\n\n## Citation\n{citation}"
    return text


def base_model(reference: Optional[str]) -> Optional[str]:
    """The Hub repo a model reference's weights come from, for the card's base_model; None if none."""
    if not reference:
        return None
    if reference.startswith("hf-hub:"):
        return reference[len("hf-hub:"):].strip("/")
    from .registry import get_spec
    spec = get_spec(reference)
    arch, _, tag = (spec.arch, None, spec.pretrained) if spec else reference.partition(":")
    if not tag or tag.startswith(("/", ".", "~")):
        return None
    import open_clip
    hub = (open_clip.get_pretrained_cfg(arch, tag) or {}).get("hf_hub", "")
    return hub.strip("/") or None


def push_to_hub(folder: str | Path, repo_id: str, *, token: Optional[str] = None, private: bool = False,
                commit_message: str = "Upload CLIPAG model", api=None) -> str:
    """Upload a model folder to the Hugging Face Hub (creating the repo); returns the commit's URL.

    `api` is a huggingface_hub.HfApi (or an object with its create_repo and upload_folder); tests pass a
    local fake."""
    folder = Path(folder)
    check_model_folder(folder)
    if api is None:
        from huggingface_hub import HfApi
        api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message)
    except Exception as err:  # offline, refused token, bad name: huggingface_hub raises many kinds
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ClipagError(f"cannot push {folder} to hf-hub:{repo_id} ({first}); check the network, the repo "
                          f"name and your token (huggingface-cli login or HF_TOKEN); the folder is kept") from None
    return str(getattr(commit, "commit_url", commit))


def check_model_folder(folder: Path) -> None:
    """ClipagError unless `folder` holds a config and weights OpenCLIP can read."""
    for file_name in (CONFIG_NAME, WEIGHTS_NAME):
        if path_kind(folder / file_name, "model folder") != "file":
            raise ClipagError(f"{folder} has no {file_name}; make the folder with `clipag export RUN --out {folder}`")


# ---------------------------------------------------------------- helpers

def _check_target(out: Path, overwrite: bool) -> None:
    kind = path_kind(out, "--out")
    if kind == "file":
        raise ClipagError(f"--out {out} is a file; give a folder")
    if kind == "dir" and any(out.iterdir()) and not overwrite:
        raise ClipagError(f"--out {out} already holds files; choose a new folder or pass --overwrite")


def _run_folder(reference: str) -> Optional[Path]:
    """The folder of a folder reference (a path, or local-dir:PATH), else None."""
    path = Path(reference[len("local-dir:"):] if reference.startswith("local-dir:") else reference).expanduser()
    return path if path_kind(path, "model") == "dir" else None


def _shipped_folder(reference: str) -> Optional[Path]:
    from .registry import get_spec, spec_folder
    spec = get_spec(reference)
    return spec_folder(spec) if spec is not None and spec.bundled else None


def _shipped_card(card: str, reference: str, *, name: Optional[str], repo_id: Optional[str],
                  description: Optional[str], metrics: Optional[dict], license: Optional[str]) -> str:
    """A shipped model's own card, renamed to `name` and its usage pointed at `repo_id` where given.

    Its text and numbers are the measured ones of the release, so a new description, new metrics or
    another licence are refused rather than silently dropped."""
    shipped_license = re.search(r"^license: *(\S+)", card, re.MULTILINE)
    other_license = bool(license) and (shipped_license is None or license != shipped_license.group(1))
    refused = [flag for flag, given in (("--description", bool(description)),
                                        ("--metrics", metrics is not None), ("--license", other_license)) if given]
    if refused:
        flags = refused[0] if len(refused) == 1 else f"{', '.join(refused[:-1])} and {refused[-1]}"
        raise ClipagError(f"{reference} ships with its own card, so {flags} cannot be applied; "
                          f"export without {'them' if len(refused) > 1 else 'it'} and edit the folder's {CARD_NAME}")
    if name:
        card, found = re.subn(r"^# Model card for .*$", lambda _: f"# Model card for {name}", card, count=1,
                              flags=re.MULTILINE)
        if not found:
            raise ClipagError(f"{reference}'s card has no '# Model card for' heading to rename; export without --name")
    if repo_id:
        card = _point_usage_at(card, reference, repo_id)
    return card


def _point_usage_at(card: str, reference: str, repo_id: str) -> str:
    if PLACEHOLDER in card:
        return card.replace(PLACEHOLDER, f"hf-hub:{repo_id}")
    if "## Model Usage\n" not in card:
        raise ClipagError(f"{reference}'s card has no '## Model Usage' section to point at hf-hub:{repo_id}; "
                          f"export without --push-to-hub, edit the card, then push the folder")
    return card.replace("## Model Usage\n", f"## Model Usage\nFrom the Hub:\n{_usage(repo_id)}\n", 1)


def _read_text(path: Path) -> Optional[str]:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _read_json(path: Path) -> Optional[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def logged_metrics(run_dir: Path) -> dict:
    """The last row of a run's log.csv: the training numbers at its final logged step."""
    try:
        with open(run_dir / "log.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    if not rows:
        return {}
    last = rows[-1]
    keys = ("loss", "clean_similarity", "adversarial_similarity")
    return {f"training {k.replace('_', ' ')} at step {last['step']}": float(last[k])
            for k in keys if last.get(k) not in (None, "")}


def _data_licenses(settings: Optional[dict]) -> Optional[str]:
    """The LICENSES.md files beside the run's training CSVs (e.g. `clipag data emoji` writes one)."""
    if not settings:
        return None
    found = []
    for entry in settings.get("data") or []:
        path = Path(str(entry)).expanduser().parent / LICENSES_NAME
        text = path.read_text(encoding="utf-8") if path.is_file() else None
        if text is not None and text not in found:
            found.append(text)
    return "\n\n".join(found) if found else None


def cpu_state_dict(model, half: bool = False) -> dict:
    """The model's tensors on the CPU, contiguous (as safetensors needs), fp16 when `half`."""
    import torch
    return {k: (v.half() if half and v.is_floating_point() else v).detach().contiguous().cpu()
            for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}


def _replace_folder(staging: Path, out: Path) -> None:
    """Move the finished folder into place; an old `out` is removed only once the new one is complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    old = out.with_name(f".{out.name}.export-old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _architecture(model_cfg: dict) -> str:
    vision, text = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
    kind = "ResNet" if isinstance(vision.get("layers"), (list, tuple)) else (
        "timm " + vision["timm_model_name"] if vision.get("timm_model_name") else "ViT")
    patch = f", patch {vision['patch_size']}" if vision.get("patch_size") else ""
    return (f"image tower {kind} (width {vision.get('width')}, layers {vision.get('layers')}{patch}); "
            f"text tower transformer (width {text.get('width')}, {text.get('layers')} layers, context "
            f"{text.get('context_length', 77)}); embedding {model_cfg.get('embed_dim')}-d")


def _input(preprocess: dict, model_cfg: dict) -> str:
    size = preprocess.get("size") or model_cfg.get("vision_cfg", {}).get("image_size")
    size = "x".join(str(v) for v in size) if isinstance(size, (list, tuple)) else f"{size}x{size}"
    return (f"{size} px RGB, mean {preprocess.get('mean')}, std {preprocess.get('std')}, "
            f"{preprocess.get('interpolation', 'bicubic')} resize")


_RECIPE_KEYS = ("objective", "attack", "steps", "batch_size", "accum_steps", "lr", "weight_decay",
                "warmup_steps", "negatives", "train_text", "augment", "seed", "data", "world_size")


def _recipe(settings: dict) -> dict:
    recipe = {k: settings[k] for k in _RECIPE_KEYS if k in settings and settings[k] not in (None, [], "")}
    if isinstance(recipe.get("attack"), dict):  # one line: "l2 eps 1.0, 5 steps"
        a = recipe["attack"]
        recipe["attack"] = f"{a.get('norm')} eps {a.get('eps')}, {a.get('steps')} PGD steps"
    if isinstance(recipe.get("augment"), dict):
        recipe["augment"] = ", ".join(f"{k} {v}" for k, v in recipe["augment"].items())
    return recipe


def _number(value):
    return f"{value:.4g}" if isinstance(value, float) else value


def _default_description(settings: Optional[dict]) -> str:
    attack = (settings or {}).get("attack") or {}
    if settings and settings.get("objective") in ("clipag", "tecoa", "fare"):
        return (f"A CLIP model adversarially fine-tuned with clipag ({settings['objective']} objective, "
                f"{attack.get('norm', 'l2')} eps {attack.get('eps')}) for perceptually aligned "
                f"gradients, after CLIPAG (Ganz & Elad, WACV 2024).")
    return "A CLIP model trained with clipag, the toolkit for CLIP models with perceptually aligned gradients."


def _usage(repo_id: Optional[str]) -> str:
    ref = f"hf-hub:{repo_id}" if repo_id else PLACEHOLDER
    return (f"```python\nimport open_clip\nmodel, preprocess = open_clip.create_model_from_pretrained('{ref}')\nmodel.eval()\n"
            f"tokenizer = open_clip.get_tokenizer('{ref}')\n```\n"
            f"With clipag: `clipag generate \"a red apple\" --model {ref}`.\n")
