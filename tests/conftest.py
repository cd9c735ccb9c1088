"""Fast CPU fixtures: tiny random OpenCLIP models, seeded; nothing is ever downloaded."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch

from clipag.guide import Guide
from clipag.loading import load_model

TINY = "clipag-tiny"


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="random weights"):
        return load_model(f"{TINY}:random")


@pytest.fixture
def tiny_guide(tiny_model):
    cfg = tiny_model.preprocess_cfg
    return Guide(tiny_model.model, tiny_model.tokenizer, image_size=cfg["size"], mean=cfg["mean"],
                 std=cfg["std"], device="cpu", name=f"{TINY}:random")


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_model):
    """A tiny model's weights saved as a plain state dict, and the model they came from."""
    path = tmp_path / "tiny.pt"
    torch.save(tiny_model.model.state_dict(), path)
    return path, tiny_model.model
