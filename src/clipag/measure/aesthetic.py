"""Aesthetic score: the LAION "improved aesthetic predictor" on a CLIP image embedding.

The public predictor (`sac+logos+ava1-l14-linearMSE.pth`, christophschuhmann/improved-aesthetic-
predictor) is an MLP 768 -> 1024 -> 128 -> 64 -> 16 -> 1 with dropout between the first layers and no
activations, applied to the L2-normalised image embedding of OpenAI CLIP ViT-L/14. It is rebuilt here
(a few lines; no maintained package ships it) so that its state dict loads with weights_only=True, and
any other predictor of the same layout pairs with any embedder of matching width.

    scorer = AestheticScorer.from_files("sac+logos+ava1-l14-linearMSE.pth", embedder="ViT-L-14:openai")
    scores = scorer(images)                        # images (B, 3, H, W) in [0,1] -> (B,) scores
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from ..configs import AESTHETIC_EMBEDDER
from ..configs import AESTHETIC_EMBEDDER as DEFAULT_EMBEDDER  # noqa: F401 (its earlier name, still importable)
from ..errors import ClipagError
from ..models.guide import Guide
from ..models.loading import read_state_dict



class AestheticMLP(nn.Module):
    """The predictor's layout; module indices match the released state dict's `layers.N` keys."""

    def __init__(self, input_size: int = 768):
        super().__init__()
        self.input_size = input_size
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024), nn.Dropout(0.2),  # layers.0, layers.1
            nn.Linear(1024, 128), nn.Dropout(0.2),         # layers.2, layers.3
            nn.Linear(128, 64), nn.Dropout(0.1),           # layers.4, layers.5
            nn.Linear(64, 16),                             # layers.6
            nn.Linear(16, 1),                              # layers.7
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(embeddings).squeeze(-1)  # (B, D) -> (B,)

    @classmethod
    def load(cls, path: str | Path) -> "AestheticMLP":
        state = read_state_dict(Path(path))
        first = state.get("layers.0.weight")
        if first is None or first.ndim != 2:
            raise ClipagError(f"{path} is not an aesthetic predictor (no layers.0.weight); give "
                              f"sac+logos+ava1-l14-linearMSE.pth or a file of the same layout")
        model = cls(first.shape[1])
        try:
            model.load_state_dict({k: v.float() for k, v in state.items()})
        except RuntimeError as err:
            raise ClipagError(f"{path} does not have the predictor's layout ({str(err).splitlines()[0]})") from None
        return model.eval()


class AestheticScorer:
    """Images in [0,1] -> aesthetic scores, through an embedder guide and a predictor."""

    def __init__(self, predictor: AestheticMLP, embedder: Guide):
        if embedder.embed_dim != predictor.input_size:
            raise ClipagError(f"the aesthetic predictor takes {predictor.input_size}-d embeddings but "
                              f"{embedder.name} gives {embedder.embed_dim}-d; pair it with its own embedder "
                              f"(the LAION predictor: --aesthetic-embedder {AESTHETIC_EMBEDDER})")
        self.predictor, self.embedder = predictor.to(embedder.device), embedder

    @classmethod
    def from_files(cls, predictor: str | Path, embedder: str = AESTHETIC_EMBEDDER, device: str = "auto") -> "AestheticScorer":
        return cls(AestheticMLP.load(predictor), Guide.from_pretrained(embedder, device=device))

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        scores = [self.predictor(self.embedder.encode_image(images[i:i + batch_size].to(self.embedder.device)).float())
                  for i in range(0, len(images), batch_size)]
        return torch.cat(scores).cpu()


@dataclass
class Preference:
    """A pairwise aesthetic preference of A over B: the share of wins and its Wilson 95% interval."""
    wins: float  # A's share of prompts where its score is higher (ties count half)
    low: float  # 95% Wilson interval
    high: float
    prompts: int
    mean_a: float
    mean_b: float


def pairwise_preference(scores_a: Sequence[float], scores_b: Sequence[float], z: float = 1.96) -> Preference:
    """How often run A's image outscores run B's on the same prompt, with a Wilson score interval."""
    if len(scores_a) != len(scores_b) or not scores_a:
        raise ClipagError(f"pairwise preference needs the same prompts in both runs ({len(scores_a)} vs {len(scores_b)})")
    n = len(scores_a)
    p = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(scores_a, scores_b)) / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Preference(p, max(0.0, centre - half), min(1.0, centre + half), n,
                      sum(scores_a) / n, sum(scores_b) / n)


def optional_scorer(predictor: Optional[str], embedder: str, device: str) -> Optional[AestheticScorer]:
    return AestheticScorer.from_files(predictor, embedder, device) if predictor else None
