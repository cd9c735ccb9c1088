"""Checkpoints: atomic, resumable, and loadable by plain OpenCLIP.

A checkpoint is `{"state_dict": the whole CLIP model, "optimizer": ..., "step": ..., "settings": ...}`,
the layout OpenCLIP's own training writes, so `open_clip.create_model(arch, pretrained=FILE)` reads it
(the official CLIPAG file has the same layout). Only tensors and plain Python values are stored, so
`torch.load(weights_only=True)` reads it back. The final model is also written as safetensors beside an
`open_clip_config.json` and a model card, which makes the run folder a `local-dir:` reference and a
Hub model folder (clipag.models.hub).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import open_clip
import torch
from safetensors.torch import save_file

from ..errors import ClipagError
from ..io import atomic_path
from ..models.loading import torch_load_weights, weight_mismatch

EXPORT_NAME = "open_clip_model.safetensors"
_STEP_FILE = re.compile(r"step_(\d+)\.pt$")


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, optimizer, settings: dict,
                    keep: int = 2, scaler=None) -> Path:
    path = checkpoint_dir(run_dir) / f"step_{step:08d}.pt"
    state = {"step": step, "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
             "settings": settings}
    if scaler is not None and scaler.is_enabled():
        state["scaler"] = scaler.state_dict()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary files of a killed write are ignored)."""
    folder = checkpoint_dir(run_dir)
    found = [p for p in folder.glob("step_*.pt") if _STEP_FILE.search(p.name)] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(_STEP_FILE.search(p.name).group(1)))


def resolve_resume(run_dir: Path, resume: Optional[str]) -> Optional[Path]:
    """`latest` -> the newest checkpoint of the run (None if there is none yet); a path -> that file."""
    if not resume:
        return None
    if resume == "latest":
        found = list_checkpoints(run_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not path.is_file():
        raise ClipagError(f"checkpoint to resume from not found: {path}; use --resume latest or a step_*.pt file")
    return path


def load_checkpoint(path: Path) -> dict:
    """A training checkpoint's contents, read without unpickling Python objects (see loading)."""
    return torch_load_weights(path)


def read_resumable(path: Path) -> dict:
    """A training checkpoint's contents; a ClipagError for a file that is not one (a plain state dict)."""
    state = load_checkpoint(path)
    keys = state.keys() if isinstance(state, dict) else ()
    missing = [key for key in ("step", "state_dict", "optimizer") if key not in keys]
    if missing or not isinstance(state["step"], int):
        raise ClipagError(f"{path} is not a training checkpoint (it has no {', '.join(missing) or 'step number'}); "
                          f"to start from its weights, give it as --model ARCH:{path} without --resume")
    return state


def restore(state: dict, path: Path, model: torch.nn.Module, optimizer, scaler) -> None:
    """Load a checkpoint read by `read_resumable` into the model, optimiser and scaler.

    Weights that do not fit the model (another architecture) and an optimiser state that does not fit
    the trained parameters are refused with a ClipagError.
    """
    mismatch = _mismatch(model.state_dict(), state["state_dict"])
    if mismatch:
        raise ClipagError(f"checkpoint {path} does not fit the model ({mismatch}); resume with the --model "
                          f"(architecture) the run was started with")
    model.load_state_dict(state["state_dict"])
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise ClipagError(f"the optimiser state in {path} does not fit this run's trained parameters ({err}); "
                          f"resume with the run's --objective and text-tower setting") from None
    if "scaler" in state:
        scaler.load_state_dict(state["scaler"])


def _mismatch(own: dict, given) -> str:
    """What keeps `given` weights from loading into a model with state dict `own` ('' when nothing)."""
    if not isinstance(given, dict):
        return "it holds no weights"
    missing, unexpected, shaped = weight_mismatch(own, given)
    parts = [f"{len(keys)} {what}" for keys, what in
             ((missing, "missing"), (unexpected, "unexpected"), (shaped, "differently shaped")) if keys]
    return f"{', '.join(parts)} tensors, e.g. {(missing + unexpected + shaped)[0]}" if parts else ""


def write_final_model(run_dir: Path, model: torch.nn.Module, model_cfg: Optional[dict],
                      settings: dict) -> Path:
    """Make the run folder a model folder (clipag.models.hub): the weights as safetensors and, when the
    architecture's config is known, open_clip_config.json and a model card (README.md)."""
    from ..models.hub import cpu_state_dict, folder_config_of, logged_metrics, model_card, write_model_folder
    run_dir = Path(run_dir)
    state_dict = cpu_state_dict(model)
    if model_cfg is None:
        with atomic_path(run_dir / EXPORT_NAME) as tmp:
            save_file(state_dict, str(tmp))
        return run_dir / EXPORT_NAME
    config = folder_config_of(model_cfg, open_clip.get_model_preprocess_cfg(model))
    card = model_card(run_dir.name, config, settings=settings, metrics=logged_metrics(run_dir))
    write_model_folder(run_dir, config, state_dict=state_dict, card=card)
    return run_dir / EXPORT_NAME
