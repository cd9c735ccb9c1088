"""Fast CPU fixtures: tiny random OpenCLIP models, seeded; nothing is ever downloaded."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch

from clipag.models.guide import Guide
from clipag.models.loading import load_model

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


TINY_YAML = """model:
  target: taming.models.vqgan.VQModel
  params:
    embed_dim: 8
    n_embed: 16
    ddconfig:
      double_z: false
      z_channels: 8
      resolution: 16
      in_channels: 3
      out_ch: 3
      ch: 32
      ch_mult: [1, 2]
      num_res_blocks: 1
      attn_resolutions: [8]
      dropout: 0.0
"""


@pytest.fixture
def tiny_vqgan_files(tmp_path):
    """A random taming-layout VQGAN (16 codes, f4) saved as a .yaml and a Lightning-style .ckpt."""
    (tmp_path / "vq.yaml").write_text(TINY_YAML)
    from clipag.tools.vqgan_model import VQGAN, VQGANConfig
    torch.manual_seed(0)
    model = VQGAN(VQGANConfig.from_yaml(tmp_path / "vq.yaml"))
    state = {**model.state_dict(), "loss.discriminator.main.0.weight": torch.zeros(1)}  # training-only keys
    torch.save({"state_dict": state}, tmp_path / "vq.ckpt")
    return tmp_path / "vq.yaml", tmp_path / "vq.ckpt"
