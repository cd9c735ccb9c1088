"""Model references -> OpenCLIP models, offline-first.

A reference (`--model`) is one of:
  NAME                   a registered name (`clipag models` lists them)
  ARCH:TAG               an OpenCLIP architecture and pretrained tag (`ViT-B-32:laion2b_s34b_b79k`)
  ARCH:/path/to/file     an architecture and a local checkpoint (.pt/.pth/.bin/.safetensors)
  ARCH:random            an architecture with random weights (tests, benchmarks, smoke runs)
  hf-hub:ORG/REPO        OpenCLIP's Hugging Face Hub reference
  local-dir:/path        OpenCLIP's local folder reference (open_clip_config.json + weights)

Weights are looked for on disk first. When they are missing and the hub cannot be reached, a
ClipagError names the file and how to get it, within seconds; OpenCLIP's own retry loop never runs.
Checkpoints load through safetensors or `torch.load(weights_only=True)`, never a full unpickle.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import pickle
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import open_clip
import torch

from ..errors import ClipagError
from ..io import path_kind
from .registry import IMAGE_TOWER_NAME, ModelSpec, get_spec, spec_file, spec_folder

_CONFIG_DIR = Path(__file__).parent.parent / "model_configs"
open_clip.add_model_config(_CONFIG_DIR)

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
_HF_WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                    "open_clip_pytorch_model.bin")


@dataclass
class LoadedModel:
    """An OpenCLIP model on the CPU in fp32, with what a guide needs to use it."""
    model: torch.nn.Module
    tokenizer: Any
    reference: str
    arch: str
    source: str  # the file or tag the weights came from, or "random"
    preprocess_cfg: dict = field(default_factory=dict)
    model_cfg: Optional[dict] = None  # the architecture as OpenCLIP's model config (for export)


# ---------------------------------------------------------------- public entry point

def load_model(reference: str) -> LoadedModel:
    """Resolve a model reference and build the OpenCLIP model (eval mode, CPU, fp32)."""
    reference = reference.strip()
    if not reference:
        raise ClipagError("empty model reference; pass --model NAME or ARCH:TAG or ARCH:/path/to/file")
    spec = get_spec(reference)
    if spec is not None:
        loaded = _load_spec(spec)
    elif reference.startswith("hf-hub:"):
        loaded = _load_hf_hub(reference[len("hf-hub:"):])
    elif reference.startswith("local-dir:"):
        loaded = _load_local_dir(Path(reference[len("local-dir:"):]).expanduser())
    else:
        arch, _, source = reference.partition(":")
        loaded = _load_arch(arch, source)
    loaded.reference = reference
    loaded.model.eval()
    return loaded


def describe_availability(spec: ModelSpec) -> tuple[bool, str]:
    """(available on this machine?, where the weights are or how to get them)."""
    if spec.filename or spec.folder:
        path = spec_folder(spec) or spec_file(spec)
        if spec_file(spec).is_file():
            return True, str(path)
        if spec.folder:
            return False, f"{path} is missing from this installation; reinstall clipag"
        return False, f"`clipag models download {spec.name}` (or download {spec.url} to {path})"
    path = cached_pretrained_file(spec.arch, spec.pretrained)
    if path:
        return True, str(path)
    return False, f"downloaded by OpenCLIP on first use ({spec.arch}:{spec.pretrained})"


# ---------------------------------------------------------------- by kind of reference

def _load_spec(spec: ModelSpec) -> LoadedModel:
    if spec.pretrained:
        return _load_tag(spec.arch, spec.pretrained)
    path = spec_file(spec)
    if spec.folder and path.is_file():
        loaded = _load_local_dir(spec_folder(spec), state_dict=_shared_tower_weights(spec, path))
        loaded.arch, loaded.source = spec.arch, str(spec_folder(spec))
        return loaded
    if spec.folder:
        raise ClipagError(f"weights of {spec.name} not found: {path} should ship with clipag; reinstall it")
    if not path.is_file():
        raise ClipagError(
            f"weights of {spec.name} not found: {path} is missing; run `clipag models download {spec.name}` "
            f"(or download {spec.url} there), or pass --model {spec.arch}:/path/to/{spec.filename}")
    return _load_file(spec.arch, path)


def _shared_tower_weights(spec: ModelSpec, path: Path) -> Optional[dict]:
    """For a model stored as its image tower only: the whole state dict, text tower from spec.text_from."""
    if not spec.text_from:
        return None
    from .towers import merge_image_tower
    text_spec = get_spec(spec.text_from)
    text_file = spec_file(text_spec) if text_spec is not None else None
    if text_file is None or not text_file.is_file():
        raise ClipagError(f"{spec.name} takes its text tower from {spec.text_from}, whose weights are missing; "
                          f"reinstall clipag")
    return merge_image_tower(path, spec.text_from, read_state_dict(text_file))


def _load_arch(arch: str, source: str) -> LoadedModel:
    if arch not in open_clip.list_models():
        raise ClipagError(
            f"unknown model {arch!r}; use a name from `clipag models`, or an OpenCLIP architecture "
            f"such as ViT-B-32 followed by :TAG, :/path/to/checkpoint or :random")
    if not source:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)[:5]) or "none"
        raise ClipagError(
            f"{arch!r} needs weights: use {arch}:TAG (tags: {tags}), {arch}:/path/to/checkpoint "
            f"or {arch}:random")
    if source == "random":
        warnings.warn(f"{arch}:random has random weights: its outputs show an untrained model, "
                      f"not a result", stacklevel=3)
        return _build(arch, source="random")
    if open_clip.get_pretrained_cfg(arch, source):
        return _load_tag(arch, source)
    path = Path(source).expanduser()
    if path.suffix.lower() in CHECKPOINT_SUFFIXES or path_kind(path, "checkpoint") != "missing":
        return _load_file(arch, path)
    tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
    raise ClipagError(f"{source!r} is neither a pretrained tag of {arch} ({tags}) nor a checkpoint file")


def _load_tag(arch: str, tag: str) -> LoadedModel:
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    cached = cached_pretrained_file(arch, tag)
    if cached is None:
        _require_hub(f"weights for {arch}:{tag} ({cfg.get('hf_hub') or cfg.get('url')})", arch)
        model = open_clip.create_model(arch, pretrained=tag)
        model_cfg = open_clip.get_model_config(arch)
        if model_cfg is not None and cfg.get("quick_gelu"):
            model_cfg["quick_gelu"] = True
        return LoadedModel(model, open_clip.get_tokenizer(arch), "", arch, f"{arch}:{tag}",
                           _preprocess_cfg(model), model_cfg)
    preprocess = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    loaded = _load_file(arch, Path(cached), quick_gelu=cfg.get("quick_gelu", False))
    open_clip.set_model_preprocess_cfg(loaded.model, {**loaded.preprocess_cfg, **preprocess})
    loaded.preprocess_cfg = _preprocess_cfg(loaded.model)
    return loaded


def _load_file(arch: str, path: Path, quick_gelu: bool = False) -> LoadedModel:
    state_dict = read_state_dict(path)
    loaded = _build(arch, source=str(path), quick_gelu=quick_gelu)
    load_weights(loaded.model, state_dict, path, arch)
    return loaded


def _load_hf_hub(repo_id: str) -> LoadedModel:
    """Through the Hub's cache: the repo's open_clip_config.json and weights, then as a local folder."""
    _check_repo_id(repo_id)
    snapshot = _cached_hf_snapshot(repo_id) or _download_hf_snapshot(repo_id)
    loaded = _load_local_dir(snapshot, hub_repo=repo_id)
    loaded.arch, loaded.source = repo_id, f"hf-hub:{repo_id}"
    return loaded


def _load_local_dir(path: Path, hub_repo: Optional[str] = None, state_dict: Optional[dict] = None) -> LoadedModel:
    """OpenCLIP builds the model from the folder's config; the weights are read here (see read_state_dict),
    unless given as `state_dict`.

    A Hugging Face tokenizer's files are not in a Hub snapshot of the model, so for `hub_repo` OpenCLIP
    fetches them by the repo's name; every other tokenizer is built from the folder's config."""
    config = _read_open_clip_config(path)
    if state_dict is None:
        weights = _weights_in(path)
        state_dict = read_state_dict(weights)
    else:
        weights = path
    ref = f"local-dir:{path}"
    try:
        with _quiet_logging():
            model = open_clip.create_model(ref, load_weights=False, pretrained_text=False)
    except Exception as err:  # a config OpenCLIP cannot build fails in any of its layers' constructors
        raise ClipagError(f"{path / 'open_clip_config.json'} does not describe a model OpenCLIP can build "
                          f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}); "
                          f"save the folder again with clipag or OpenCLIP") from None
    load_weights(model, state_dict, weights, path.name)
    hf_tokenizer = "hf_tokenizer_name" in config["model_cfg"]["text_cfg"]
    tokenizer = open_clip.get_tokenizer(f"hf-hub:{hub_repo}" if hub_repo and hf_tokenizer else ref)
    return LoadedModel(model, tokenizer, "", path.name, str(path), _preprocess_cfg(model), config["model_cfg"])


def _read_open_clip_config(path: Path) -> dict:
    """The folder's open_clip_config.json, checked for the shape OpenCLIP reads."""
    config_path = path / "open_clip_config.json"
    if path_kind(config_path, "local-dir folder") != "file":
        raise ClipagError(f"{path} has no open_clip_config.json; local-dir: needs a folder saved by OpenCLIP")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ClipagError(f"cannot read {config_path} as JSON ({err}); save the folder again") from None
    model_cfg = config.get("model_cfg") if isinstance(config, dict) else None
    problem = _config_problem(model_cfg, config.get("preprocess_cfg", {}) if isinstance(config, dict) else {})
    if problem:
        raise ClipagError(f"{config_path} is not an OpenCLIP config: {problem}; save the folder again")
    return config


def _config_problem(model_cfg, preprocess_cfg) -> str:
    if not isinstance(model_cfg, dict):
        return "it needs a model_cfg object"
    if not isinstance(model_cfg.get("embed_dim"), int) or isinstance(model_cfg.get("embed_dim"), bool):
        return f"model_cfg.embed_dim must be an integer, got {model_cfg.get('embed_dim')!r}"
    for tower in ("vision_cfg", "text_cfg"):
        if not isinstance(model_cfg.get(tower), dict):
            return f"model_cfg.{tower} must be an object, got {model_cfg.get(tower)!r}"
    if not isinstance(preprocess_cfg, dict):
        return f"preprocess_cfg must be an object, got {preprocess_cfg!r}"
    for key in ("mean", "std"):
        value = preprocess_cfg.get(key, [0.0, 0.0, 0.0] if key == "mean" else [1.0, 1.0, 1.0])
        if not (isinstance(value, list) and len(value) == 3 and all(_is_number(v) for v in value)):
            return f"preprocess_cfg.{key} must be three numbers, got {value!r}"
    if any(v <= 0 for v in preprocess_cfg.get("std", [1.0])):
        return f"preprocess_cfg.std must be positive, got {preprocess_cfg['std']!r}"
    return ""


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _weights_in(path: Path) -> Path:
    for name in _HF_WEIGHT_NAMES:
        if (path / name).is_file():
            return path / name
    if (path / IMAGE_TOWER_NAME).is_file():
        raise ClipagError(f"{path} holds only an image tower that shares another model's text tower; load it "
                          f"by its name (clipag models), or write it whole with `clipag export NAME --out DIR`")
    raise ClipagError(f"{path} has an open_clip_config.json but no weights; put "
                      f"{' or '.join(_HF_WEIGHT_NAMES)} beside it")


def _build(arch: str, source: str, quick_gelu: bool = False) -> LoadedModel:
    with _quiet_logging():  # OpenCLIP warns of random init even when weights follow
        model = open_clip.create_model(arch, pretrained=None, force_quick_gelu=quick_gelu)
    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is not None and quick_gelu:
        model_cfg["quick_gelu"] = True
    return LoadedModel(model, open_clip.get_tokenizer(arch), "", arch, source, _preprocess_cfg(model), model_cfg)


@contextlib.contextmanager
def _quiet_logging():
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _preprocess_cfg(model) -> dict:
    return dict(open_clip.get_model_preprocess_cfg(model))


# ---------------------------------------------------------------- checkpoints

def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read weights safely; unwrap a `state_dict` entry and strip DDP/compile key prefixes."""
    path = Path(path)
    if path_kind(path, "checkpoint") != "file":
        raise ClipagError(f"checkpoint not found: {path}")
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            checkpoint = load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ClipagError(f"cannot read {path} as safetensors ({err}); is the file complete?") from None
    else:
        checkpoint = torch_load_weights(path)
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ClipagError(f"{path} holds no state dict of tensors; save model.state_dict() to it")
    return {_strip_prefixes(k): v for k, v in checkpoint.items()}


def torch_load_weights(path: Path):
    """`torch.load(weights_only=True)` on the CPU, every failure a one-line ClipagError.

    Torch's weights-only unpickler refuses any global it does not know (a class, a function) before
    calling it, so a file that would run code when unpickled raises here and runs nothing; the message
    says so rather than repeating torch's advice to retry with weights_only=False.

    Numpy scalars and dtypes (training scripts store an epoch or a loss as one; the official CLIPAG
    checkpoint does) are allowed: rebuilding a number runs no code."""
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(_NUMPY_SCALARS):
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # torch's, before our refusal
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ClipagError(_refusal(path, str(err))) from None
    except Exception as err:  # weights-only loading runs no code: anything else is a damaged or foreign file
        raise ClipagError(_unreadable(path, err)) from None


def _numpy_scalar_globals() -> list:
    """numpy's scalar and dtype rebuilders under the names numpy 1 (numpy.core) and numpy 2 (numpy._core)
    pickle them with, and the dtype classes numpy 2 pickles dtypes through."""
    import numpy
    scalar = numpy._core.multiarray.scalar if hasattr(numpy, "_core") else numpy.core.multiarray.scalar
    dtypes = [getattr(numpy.dtypes, n) for n in dir(getattr(numpy, "dtypes", object)) if n.endswith("DType")]
    return [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), numpy.dtype,
            *dtypes]


_NUMPY_SCALARS = _numpy_scalar_globals()


def _refusal(path: Path, message: str) -> str:
    lines = [line.strip() for line in message.splitlines()]
    named = [line for line in lines if "unsupported global" in line.lower()]
    with open(path, "rb") as f:
        pickled = f.read(1) == b"\x80"  # a pickle's first opcode is PROTO; text and other formats are not pickles
    if not named and not pickled:
        return _unreadable(path, None)
    what = named[0].rstrip(".") if named else "a pickle that torch's weights-only reader cannot read"
    return (f"{path} holds Python objects ({what}); clipag will not unpickle it, since unpickling can run "
            f"code. Re-save only its weights (torch.save(model.state_dict(), ...)) or convert them to .safetensors")


def _unreadable(path: Path, err: Optional[Exception]) -> str:
    detail = f" ({type(err).__name__}: {str(err).splitlines()[0][:200]})" if err is not None and str(err).strip() else ""
    empty = " it is empty;" if path.stat().st_size == 0 else ""
    return (f"cannot read checkpoint {path}: not a PyTorch or safetensors file, or one cut short{detail};{empty} "
            f"copy it again, or give a .safetensors file")


def _strip_prefixes(key: str) -> str:
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


def load_weights(model: torch.nn.Module, state_dict: dict, path: Path, arch: str) -> None:
    """Load a state dict strictly, with an error that says what does not fit."""
    scale = state_dict.get("logit_scale")
    if scale is not None and scale.ndim != model.logit_scale.ndim:
        state_dict["logit_scale"] = scale.reshape(model.logit_scale.shape)
    missing, unexpected, misshaped = weight_mismatch(model.state_dict(), state_dict)
    if missing or unexpected or misshaped:
        example = (misshaped or missing or unexpected)[0]
        raise ClipagError(
            f"checkpoint {path} does not fit architecture {arch}: {len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(misshaped)} misshaped tensors (e.g. {example}); "
            f"check the architecture before the colon")
    model.load_state_dict(state_dict, strict=True)


def weight_mismatch(own: dict, given: dict) -> tuple[list[str], list[str], list[str]]:
    """The keys of `own` missing from `given`, the keys of `given` not in `own`, and the shared keys
    whose shapes differ."""
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    misshaped = [k for k in own if k in given and tuple(getattr(given[k], "shape", ())) != tuple(own[k].shape)]
    return missing, unexpected, misshaped


# ---------------------------------------------------------------- caches and the hub

def cached_pretrained_file(arch: str, tag: Optional[str]) -> Optional[str]:
    """The local file of an OpenCLIP pretrained tag if it is already downloaded, else None."""
    cfg = open_clip.get_pretrained_cfg(arch, tag) if tag else {}
    if cfg.get("file"):
        return cfg["file"] if os.path.isfile(cfg["file"]) else None
    if cfg.get("hf_hub"):
        repo_id, filename = os.path.split(cfg["hf_hub"])
        names = (filename,) if filename else _HF_WEIGHT_NAMES
        if filename.endswith((".bin", ".pth")):
            names = (filename[:-4] + ".safetensors", filename)
        for name in names:
            hit = _hf_cached(repo_id, name)
            if hit:
                return hit
    if cfg.get("url"):
        path = Path.home() / ".cache" / "clip" / os.path.basename(cfg["url"])
        if path.is_file():
            return str(path)
    return None


def _hf_cached(repo_id: str, filename: str) -> Optional[str]:
    from huggingface_hub import try_to_load_from_cache
    hit = try_to_load_from_cache(repo_id, filename)
    return hit if isinstance(hit, str) else None


def _cached_hf_snapshot(repo_id: str) -> Optional[Path]:
    config = _hf_cached(repo_id, "open_clip_config.json")
    if config is None:
        return None
    folder = Path(config).parent
    return folder if any((folder / name).is_file() for name in _HF_WEIGHT_NAMES) else None


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ClipagError(f"hf-hub:{repo_id} does not name a Hub repository ({str(err).splitlines()[0]}); "
                          f"give hf-hub:ORG/NAME, such as hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K") from None


def _download_hf_snapshot(repo_id: str) -> Path:
    """Download the repo's config and first weights file found (safetensors first) into the Hub cache."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError
    _require_hub(f"hf-hub:{repo_id}", arch=None)
    try:
        folder = Path(hf_hub_download(repo_id, "open_clip_config.json")).parent
        for name in _HF_WEIGHT_NAMES:
            try:
                hf_hub_download(repo_id, name)
                return folder
            except EntryNotFoundError:
                continue
    except RepositoryNotFoundError:
        raise ClipagError(f"hf-hub:{repo_id} is not on the Hub (or is private); check the name") from None
    except EntryNotFoundError:
        raise ClipagError(f"hf-hub:{repo_id} has no open_clip_config.json: it is not an OpenCLIP model") from None
    except (HfHubHTTPError, OSError) as err:
        raise ClipagError(f"cannot download hf-hub:{repo_id} ({str(err).splitlines()[0]}); try again") from None
    raise ClipagError(f"hf-hub:{repo_id} has no OpenCLIP weights ({', '.join(_HF_WEIGHT_NAMES)})")


def hub_reachable(timeout: float = 3.0) -> bool:
    """False at once under HF_HUB_OFFLINE=1, else whether huggingface.co answers within `timeout`."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _require_hub(what: str, arch: Optional[str]) -> None:
    if hub_reachable():
        return
    alternative = f"--model {arch}:/path/to/checkpoint" if arch else "--model local-dir:/path/to/folder"
    raise ClipagError(
        f"{what} are not on this machine and the model hub cannot be reached; download them once "
        f"with internet access, or pass {alternative}")
