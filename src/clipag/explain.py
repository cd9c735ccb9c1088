"""Grad-CAM heatmaps of image-text similarity, clean and under the negation attack, and their alignment.

    result = explain(guide, image, "a dog")                     # heatmap (H, W) in [0,1], similarities
    attacked = explain(guide, image, "a dog", attack=True)      # after the supplementary's Eq. 1 attack

Heatmaps come from pytorch-grad-cam (PyPI grad-cam) on a wrapper that maps [0,1] images to the guide's
unit image embedding, with a target that takes the embedding's cosine to the text. Target layers: the
last transformer block's first norm (ViT), the last stage (timm ConvNeXt `trunk.stages`), and for
OpenCLIP's ResNet the deepest stage whose map is at least 4x4 (`layer4` at 224 px, as usual; a 32 px
emoji ResNet's `layer4` is 1x1, where Grad-CAM cannot point anywhere, so there it is `layer2`).
For ViTs the token layout is read from a forward pass (batch-first or sequence-first), the class token
dropped and the patches reshaped to their grid. The negation attack (supplementary Eq. 1) is L-inf PGD,
eps 8/255, 20 steps of 1/255, from the clean image, maximising sim(x, "not T") - sim(x, T); it reuses
clipag.attack. `pointing_game` and `energy_in_box` measure how well a heatmap falls on a known box.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .attack import AttackConfig, pgd
from .errors import ClipagError
from .models.guide import Guide

NEGATION_ATTACK = AttackConfig(norm="linf", eps=8, steps=20, step_size=1, random_start=False)


@dataclass
class Explanation:
    """One Grad-CAM explanation: the heat map, the picture explained (attacked, if it was) and its
    similarity to the target and to the negated target."""
    heatmap: np.ndarray  # (H, W) in [0,1]
    image: torch.Tensor  # (3, H, W): the image explained (attacked, if it was)
    similarity: float  # to the target text
    negation_similarity: float  # to "not <target>"


class _Embedder(nn.Module):
    def __init__(self, guide: Guide):
        super().__init__()
        self.guide = guide
        self.visual = guide.model.visual  # registered, so grad-cam finds the layers and the device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.guide.encode_image(images)  # (B, D) unit


class _Cosine:
    """A grad-cam target: the cosine of one sample's embedding with a text embedding."""

    def __init__(self, text: torch.Tensor):
        self.text = text

    def __call__(self, embedding: torch.Tensor) -> torch.Tensor:
        return (embedding * self.text.to(embedding)).sum()


def target_layer(model: nn.Module) -> nn.Module:
    visual = model.visual
    if hasattr(visual, "transformer"):
        return visual.transformer.resblocks[-1].ln_1
    if hasattr(visual, "layer4"):
        return _resnet_stage(visual)[-1]
    trunk = getattr(visual, "trunk", None)
    if trunk is not None and hasattr(trunk, "stages"):
        return trunk.stages[-1]
    raise ClipagError(f"no default Grad-CAM layer for {type(visual).__name__}; use a ViT, ResNet or ConvNeXt CLIP")


MIN_GRID = 4  # the smallest map side worth explaining


def _resnet_stage(visual: nn.Module) -> nn.Module:
    """OpenCLIP ModifiedResNet: the deepest stage whose output side (input / 4, 8, 16, 32) is >= MIN_GRID."""
    side = visual.image_size if isinstance(visual.image_size, int) else min(visual.image_size)
    for depth in (4, 3, 2, 1):
        if side // 2 ** (depth + 1) >= MIN_GRID:
            return getattr(visual, f"layer{depth}")
    return visual.layer1


def token_reshape(guide: Guide):
    """For ViTs: a reshape_transform from the target layer's tokens to (B, C, gh, gw); None otherwise."""
    visual = guide.model.visual
    if not hasattr(visual, "transformer"):
        return None
    grid = tuple(visual.grid_size)
    tokens = grid[0] * grid[1]

    declared = getattr(visual.transformer, "batch_first", True)

    def reshape(x: torch.Tensor) -> torch.Tensor:
        # the token axis holds grid^2 patches plus a class (and maybe register) token; when the batch
        # size makes both axes look like tokens, the transformer's own batch_first flag decides
        first, second = (tokens <= n <= tokens + 8 for n in x.shape[:2])
        batch_first = second if first != second else declared
        x = x if batch_first else x.transpose(0, 1)  # (B, L, C)
        patches = x[:, -tokens:]  # the prefix tokens come first in OpenCLIP
        return patches.transpose(1, 2).reshape(x.shape[0], -1, *grid)  # (B, C, gh, gw)
    return reshape


def gradcam(guide: Guide, images: torch.Tensor, text: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0,1] and a unit text embedding (D,) -> heatmaps (B, H, W) in [0,1]."""
    try:
        from pytorch_grad_cam import GradCAM
    except ImportError:
        raise ClipagError("explain needs pytorch-grad-cam: pip install 'clipag[explain]' (or grad-cam)") from None
    embedder = _Embedder(guide)
    with GradCAM(model=embedder, target_layers=[target_layer(guide.model)],
                 reshape_transform=token_reshape(guide)) as cam:
        # the guide is frozen, so the graph needs a leaf that requires grad: the input
        maps = cam(input_tensor=images.to(guide.device).clone().requires_grad_(True), targets=[_Cosine(text) for _ in range(len(images))])
    maps = np.nan_to_num(maps)
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, maps / np.maximum(peak, 1e-12), 0.0)


def negation_attack(guide: Guide, images: torch.Tensor, target: str,
                    config: AttackConfig = NEGATION_ATTACK) -> torch.Tensor:
    """Supplementary Eq. 1: move the images towards "not <target>" and away from <target>."""
    text = guide.encode_text([target, negation(target)])  # (2, D)

    def objective(x):
        cosine = guide.encode_image(x) @ text.T  # (B, 2)
        return (cosine[:, 1] - cosine[:, 0]).sum()
    return pgd(objective, images.to(guide.device), config, model=guide.model)


def zero_shot_target(guide: Guide, image: torch.Tensor, template: str = "a photo of a {}.") -> str:
    """The image's top ImageNet class (OpenCLIP's class names) as a target text, as the paper picks them."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
    from .measure.metrics import zero_shot_logits
    # one template, so the class embeddings are the text embeddings; the guide's text cache keeps them
    # between calls instead of re-encoding 1,000 prompts per image
    classifier = guide.encode_text([template.format(name) for name in IMAGENET_CLASSNAMES]).float().T  # (D, 1000)
    images = image.unsqueeze(0) if image.dim() == 3 else image
    with torch.no_grad():
        top = int(zero_shot_logits(guide, images.to(guide.device), classifier)[0].argmax())
    return template.format(IMAGENET_CLASSNAMES[top])


def negation(target: str) -> str:
    """"a cat" -> "not a cat"."""
    return f"not {target.strip()}"


def explain(guide: Guide, image: torch.Tensor, target: str, attack: bool = False,
            attack_config: AttackConfig = NEGATION_ATTACK) -> Explanation:
    """One image (3, H, W) or (1, 3, H, W) in [0,1]: its heatmap for `target`, clean or attacked."""
    images = image.unsqueeze(0) if image.dim() == 3 else image
    if attack:
        images = negation_attack(guide, images, target, attack_config)
    text = guide.encode_text([target, negation(target)])  # (2, D)
    heatmap = gradcam(guide, images, text[0])[0]
    with torch.no_grad():
        cosine = (guide.encode_image(images.to(guide.device)) @ text.T)[0]
    heatmap = _resize(heatmap, images.shape[-2:])
    return Explanation(heatmap, images[0].detach().cpu(), float(cosine[0]), float(cosine[1]))


def _resize(heatmap: np.ndarray, size) -> np.ndarray:
    if heatmap.shape == tuple(size):
        return heatmap
    tensor = torch.from_numpy(heatmap)[None, None].float()
    return F.interpolate(tensor, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].clamp(0, 1).numpy()


def overlay(image: torch.Tensor, heatmap: np.ndarray, alpha: float = 0.5) -> torch.Tensor:
    """The heatmap in a jet colour map over the image: (3, H, W) in [0,1]."""
    from matplotlib import colormaps
    colours = torch.from_numpy(colormaps["jet"](heatmap)[..., :3]).permute(2, 0, 1).float()  # (3, H, W)
    return (1 - alpha) * image.float().cpu() + alpha * colours


# ---------------------------------------------------------------- back to the picture's own size

MAX_MAP_SIDE = 2048  # larger pictures are scaled down to this longest side for the written map


def centre_crop_box(height: int, width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the centred square a model sees of an image (io.square_tensor's crop)."""
    side = min(height, width)
    x0, y0 = round((width - side) / 2), round((height - side) / 2)
    return x0, y0, x0 + side, y0 + side


def at_image_size(result: Explanation, clean: torch.Tensor, picture: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """An explanation made at the model's size -> (heatmap (H, W), overlay (3, H, W)) on `picture` (3, H, W).

    `clean` is the model-size crop that was explained, or attacked into `result.image`. The map covers the
    centre crop the model saw and is 0 outside it, where the overlay is dimmed; an attacked picture is
    `picture` plus the attack's perturbation, upsampled (the attack ran at the model's size, as in the paper).
    """
    height, width = picture.shape[-2:]
    x0, y0, x1, y1 = centre_crop_box(height, width)
    side = x1 - x0
    heatmap = np.zeros((height, width), dtype=np.float32)
    heatmap[y0:y1, x0:x1] = _resize(result.heatmap, (side, side))
    perturbation = F.interpolate((result.image - clean.cpu())[None].float(), size=(side, side), mode="bilinear",
                                 align_corners=False)[0]  # (3, side, side); zero when not attacked
    shown = picture.float().clone()
    shown[:, y0:y1, x0:x1] = (shown[:, y0:y1, x0:x1] + perturbation).clamp(0, 1)
    picture_overlay = 0.5 * shown  # outside the crop: dimmed, the model did not see it
    picture_overlay[:, y0:y1, x0:x1] = overlay(shown[:, y0:y1, x0:x1], heatmap[y0:y1, x0:x1])
    return heatmap, picture_overlay


@dataclass
class PictureExplanation:
    """One model's explanation of one picture, ready to write."""
    model: str
    target: str
    attacked: bool
    result: Explanation  # at the model's size
    heatmap: np.ndarray  # (H, W): the picture's size, or the model's with map_size="model"
    overlay: torch.Tensor  # (3, H, W), same size
    tile: torch.Tensor  # (3, S, S): the model-size overlay, for figures


def explain_picture(guides: dict[str, Guide], picture, target: Optional[str] = None, attack: bool = False,
                    map_size: str = "image") -> list[PictureExplanation]:
    """Explain a PIL picture under each guide, clean (and attacked): the figure-5 row of one image.

    The picture is centre-cropped and resized to the largest guide's input, as the models see it; with
    map_size="image" maps and overlays are written back at the picture's size (at most MAX_MAP_SIDE)."""
    if map_size not in ("image", "model"):
        raise ClipagError(f"unknown map size {map_size!r}; use image or model")
    from torchvision.transforms import functional as TF
    from .io import square_tensor
    size = max(g.image_size[0] for g in guides.values())
    clean = square_tensor(picture, size)  # (3, S, S)
    scale = min(1.0, MAX_MAP_SIDE / max(picture.size))
    full = TF.to_tensor(picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))))
                        if scale < 1 else picture)  # (3, H, W)
    target = target or zero_shot_target(next(iter(guides.values())), clean)
    rows = []
    for name, guide in guides.items():
        for attacked in ([False, True] if attack else [False]):
            result = explain(guide, clean, target, attack=attacked)
            tile = overlay(result.image, result.heatmap)
            heatmap, shown = at_image_size(result, clean, full) if map_size == "image" else (result.heatmap, tile)
            rows.append(PictureExplanation(name, target, attacked, result, heatmap, shown, tile))
    return rows


# ---------------------------------------------------------------- alignment with a known box

def pointing_game(heatmap: np.ndarray, box: tuple[int, int, int, int], tolerance: int = 0) -> bool:
    """Whether the heatmap's maximum falls in box (x0, y0, x1, y1), exclusive ends, grown by `tolerance`."""
    y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    x0, y0, x1, y1 = box
    return x0 - tolerance <= x < x1 + tolerance and y0 - tolerance <= y < y1 + tolerance


def energy_in_box(heatmap: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Share of the heatmap's mass inside the box (a uniform map gives the box's area share)."""
    x0, y0, x1, y1 = box
    total = float(heatmap.sum())
    return float(heatmap[y0:y1, x0:x1].sum()) / total if total > 0 else 0.0
