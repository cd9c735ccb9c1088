"""The aesthetic predictor's loader, its pairing with an embedder, and pairwise preference."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from clipag.measure.aesthetic import AestheticMLP, AestheticScorer, pairwise_preference
from clipag.errors import ClipagError

REAL = Path(__file__).resolve().parents[2] / "shared" / "reference" / "sac+logos+ava1-l14-linearMSE.pth"


def by_hand(state: dict, x: torch.Tensor) -> torch.Tensor:
    """The MLP written out: five affine maps in a row (dropout is off at evaluation)."""
    for i in (0, 2, 4, 6, 7):
        x = x @ state[f"layers.{i}.weight"].float().T + state[f"layers.{i}.bias"].float()
    return x.squeeze(-1)


@pytest.mark.skipif(not REAL.is_file(), reason="../shared/reference has no aesthetic predictor here")
def test_reads_the_real_predictor():
    model = AestheticMLP.load(REAL)
    state = torch.load(REAL, map_location="cpu", weights_only=True)
    x = F.normalize(torch.randn(4, 768), dim=1)
    assert model.input_size == 768
    assert torch.allclose(model(x), by_hand(state, x), atol=1e-4)


def test_reads_a_random_file_of_the_same_format(tmp_path):
    torch.manual_seed(0)
    state = AestheticMLP(64).state_dict()
    torch.save(state, tmp_path / "p.pth")
    model = AestheticMLP.load(tmp_path / "p.pth")
    x = torch.randn(3, 64)
    assert model.input_size == 64 and torch.allclose(model(x), by_hand(state, x), atol=1e-5)


def test_bad_files_and_mismatched_embedder(tmp_path, tiny_guide):
    torch.save({"weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ClipagError, match="not an aesthetic predictor"):
        AestheticMLP.load(tmp_path / "other.pth")
    with pytest.raises(ClipagError, match="takes 768-d embeddings"):
        AestheticScorer(AestheticMLP(768), tiny_guide)
    scorer = AestheticScorer(AestheticMLP(tiny_guide.embed_dim), tiny_guide)
    assert scorer(torch.rand(5, 3, 32, 32), batch_size=2).shape == (5,)


def test_pairwise_preference_and_interval():
    result = pairwise_preference([2, 2, 2, 1], [1, 1, 1, 1])  # three wins, one tie
    assert result.wins == pytest.approx(0.875) and result.prompts == 4
    assert result.low < 0.875 < result.high <= 1.0
    wide, narrow = pairwise_preference([1, 0] * 5, [0, 1] * 5), pairwise_preference([1, 0] * 500, [0, 1] * 500)
    assert wide.wins == narrow.wins == 0.5 and (wide.high - wide.low) > (narrow.high - narrow.low)
    with pytest.raises(ClipagError, match="same prompts"):
        pairwise_preference([1], [1, 2])
