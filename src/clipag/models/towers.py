"""One text tower stored once: an image-tower file that completes itself from another model's weights.

CLIPAG fine-tunes the image tower and freezes the text tower (and the logit scale), so a CLIPAG model
and the clean model it started from share every non-visual tensor byte for byte. A shipped CLIPAG model
can then store only its `visual.*` tensors, plus the name of the model that holds the rest and a SHA-256
of that rest; loading merges the two and refuses a text tower whose digest differs. This keeps the
package's weights under PyPI's size limit. OpenCLIP has no such format, so it is written here (about
forty lines); `clipag export NAME --out DIR` writes the merged model as an ordinary OpenCLIP folder.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..errors import ClipagError
from ..files import atomic_path
from .registry import IMAGE_TOWER_NAME  # noqa: F401  (re-exported; defined in the torch-free registry)
VISUAL_PREFIX = "visual."


def split_towers(state_dict: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """(the image tower's tensors, every other tensor: text tower, logit scale and bias)."""
    visual = {k: v for k, v in state_dict.items() if k.startswith(VISUAL_PREFIX)}
    rest = {k: v for k, v in state_dict.items() if not k.startswith(VISUAL_PREFIX)}
    return visual, rest


def text_tower_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the non-visual tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for key, tensor in sorted(split_towers(state_dict)[1].items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_image_tower(state_dict: dict[str, torch.Tensor], out: str | Path, *, text_from: str,
                     text_state_dict: dict[str, torch.Tensor]) -> Path:
    """Write the `visual.*` tensors of `state_dict` to `out`, recording that its other tensors are
    `text_from`'s; refused unless they are identical to `text_state_dict`'s."""
    from safetensors.torch import save_file
    visual, _ = split_towers(state_dict)
    digest = text_tower_digest(state_dict)
    if not visual or digest != text_tower_digest(text_state_dict):
        raise ClipagError(f"the model's text tower differs from {text_from}'s (or it has no image tower); "
                          f"only a model fine-tuned with a frozen text tower can share it")
    out = Path(out)
    with atomic_path(out) as tmp:
        save_file({k: v.contiguous() for k, v in visual.items()}, str(tmp),
                  metadata={"format": "pt", "text_from": text_from, "text_sha256": digest})
    return out


def merge_image_tower(path: Path, text_from: str, text_state_dict: dict[str, torch.Tensor]) -> dict:
    """The full state dict: `path`'s image tower with `text_from`'s other tensors, checked by digest."""
    from safetensors import safe_open
    from .loading import read_state_dict
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("text_from") != text_from:
        raise ClipagError(f"{path} names its text tower's source as {metadata.get('text_from')!r}, not "
                          f"{text_from!r}; reinstall clipag")
    if metadata.get("text_sha256") != text_tower_digest(text_state_dict):
        raise ClipagError(f"{text_from}'s text tower is not the one {path} was trained with (SHA-256 "
                          f"differs); reinstall clipag")
    visual = read_state_dict(path)
    return {**split_towers(text_state_dict)[1], **visual}
