"""The guide: one wrapper of a CLIP model that every part of clipag uses.

Images in [0,1], shaped (B, 3, H, W), go in. The guide resizes them to the model's input size, applies
the model's own mean/std, and returns L2-normalised embeddings, so callers never normalise twice or
forget to. Text goes through the model's tokenizer once per prompt and is cached.
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Iterable, Sequence

import open_clip
import torch
import torch.nn.functional as F

from ..errors import ClipagError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an unavailable device is a ClipagError."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ClipagError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ClipagError(f"device {device!r} asked for, but this machine has no CUDA GPU; use --device cpu")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ClipagError(f"device {device!r} asked for, but MPS is not available; use --device cpu")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" is fp16 autocast on CUDA, as the official CLIPAG notebooks run, and fp32 elsewhere."""
    if precision != "auto":
        return precision
    return "fp16" if device.type == "cuda" else "fp32"


class ContiguousSelfAttention(torch.nn.MultiheadAttention):
    """Batch-first self-attention whose input projection runs as one matrix multiply.

    nn.MultiheadAttention transposes a batch-first input to (L, N, E) and projects that non-contiguous
    view. With weights that do not require grad (a frozen guide), torch then expands the weight into a
    batched matmul on every call, which under bf16 autocast on CPU made ViT-B-32 2.7x slower
    (benchmarks/generate.py --compare-bf16-paths). Handing it a view whose transpose is contiguous
    avoids that; parameters, state_dict keys and results are unchanged.
    """

    def forward(self, query, key, value, **kwargs):
        if self.batch_first and query is key and key is value and query.dim() == 3:
            query = key = value = query.transpose(0, 1).contiguous().transpose(0, 1)
        return super().forward(query, key, value, **kwargs)


def use_contiguous_attention(model: torch.nn.Module) -> torch.nn.Module:
    """Swap every batch-first nn.MultiheadAttention of `model` for ContiguousSelfAttention, in place."""
    for module in model.modules():
        if type(module) is torch.nn.MultiheadAttention and module.batch_first:
            module.__class__ = ContiguousSelfAttention
    return model


class Guide:
    """A CLIP model as a differentiable map from [0,1] images (and prompts) to unit embeddings."""

    def __init__(self, model: torch.nn.Module, tokenizer, *, image_size, mean: Sequence[float],
                 std: Sequence[float], device: str = "cpu", precision: str = "fp32", name: str = ""):
        if precision not in (*PRECISIONS, "auto"):
            raise ClipagError(f"unknown precision {precision!r}; use auto or one of {', '.join(PRECISIONS)}")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.name = name
        self.model = use_contiguous_attention(model.to(self.device).eval().requires_grad_(False))
        self.tokenizer = tokenizer
        size = image_size if isinstance(image_size, (tuple, list)) else (image_size, image_size)
        self.image_size: tuple[int, int] = (int(size[0]), int(size[1]))
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._text_cache: dict[str, torch.Tensor] = {}

    @classmethod
    def from_pretrained(cls, reference: str, device: str = "auto", precision: str = "fp32") -> "Guide":
        """Load any model reference that `clipag.models.loading.load_model` accepts."""
        from .loading import load_model
        loaded = load_model(reference)
        return cls.from_model(loaded.model, loaded.tokenizer, device=device, precision=precision, name=reference)

    @classmethod
    def from_model(cls, model: torch.nn.Module, tokenizer, device: str = "auto", precision: str = "fp32",
                   name: str = "") -> "Guide":
        """A guide from an OpenCLIP model already in memory (e.g. `open_clip.create_model_and_transforms`):
        size, mean and std come from the model's own preprocess config."""
        import open_clip
        cfg = open_clip.get_model_preprocess_cfg(model)
        if not {"size", "mean", "std"} <= set(cfg):
            raise ClipagError("the model has no OpenCLIP preprocess config (size, mean, std); build it with "
                              "open_clip, or call Guide(model, tokenizer, image_size=..., mean=..., std=...)")
        return cls(model, tokenizer, image_size=cfg["size"], mean=cfg["mean"], std=cfg["std"], device=device,
                   precision=precision, name=name or type(model).__name__)

    # ------------------------------------------------------------ images

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[0,1] images of any size -> the model's normalised input (differentiable)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images shaped (B, 3, H, W), got {tuple(images.shape)}")
        x = images.to(self.device, torch.float32)
        if tuple(x.shape[-2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std  # (B, 3, h, w)

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """(B, 3, H, W) in [0,1] -> (B, D) embeddings in fp32, unit length unless normalize=False."""
        x = self.preprocess(images)
        with self.autocast():
            features = self.model.encode_image(x).float()
        return F.normalize(features, dim=-1) if normalize else features

    def without_input_normalisation(self) -> "Guide":
        """This guide fed [0,1] pixels as they are (mean 0, std 1), sharing the model and text cache.

        The CLIPDraw notebooks (kvfrans/clipdraw, royg27/CLIPAG) feed CLIP this way by default.
        """
        other = copy.copy(self)
        other.mean, other.std = torch.zeros_like(self.mean), torch.ones_like(self.std)
        return other

    # ------------------------------------------------------------ text

    def encode_text(self, prompts: Iterable[str], cache: bool = True) -> torch.Tensor:
        """Prompts -> (N, D) unit embeddings.

        With cache=True (generation, evaluation) each prompt is encoded once, without gradients, and
        kept; with cache=False (training on millions of captions) nothing is kept and gradients flow
        when enabled.
        """
        prompts = list(prompts)
        if not cache:
            return self._encode_text_now(prompts)
        new = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        if new:
            for prompt in new:
                self._warn_if_truncated(prompt)
            with torch.no_grad():
                self._text_cache.update(zip(new, self._encode_text_now(new)))
        return torch.stack([self._text_cache[p] for p in prompts])

    def _encode_text_now(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(prompts).to(self.device)  # (N, context_length)
        with self.autocast():
            return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def _warn_if_truncated(self, prompt: str) -> None:
        length = getattr(self.tokenizer, "context_length", None)
        if isinstance(self.tokenizer, open_clip.SimpleTokenizer) and length:
            n_tokens = len(self.tokenizer.encode(prompt)) + 2  # start and end tokens
            if n_tokens > length:
                warnings.warn(f"prompt has {n_tokens} tokens, more than the model's {length}; "
                              f"it is truncated: {prompt[:60]!r}...", stacklevel=3)

    # ------------------------------------------------------------ both

    def similarity(self, images: torch.Tensor, prompts: Iterable[str]) -> torch.Tensor:
        """(B, 3, H, W) images x N prompts -> (B, N) cosine similarities."""
        return self.encode_image(images) @ self.encode_text(prompts).T

    @torch.no_grad()
    def score(self, images: torch.Tensor, text_features: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Cosine similarity of many images to one text embedding (D,), in batches, without gradients."""
        scores = [self.encode_image(chunk) @ text_features for chunk in images.split(batch_size)]
        return torch.cat(scores)  # (B,)

    def autocast(self):
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    @property
    def embed_dim(self) -> int:
        return int(self.encode_text([""]).shape[-1])

    def __repr__(self) -> str:
        return (f"Guide({self.name or type(self.model).__name__}, size={self.image_size}, "
                f"device={self.device}, precision={self.precision})")
