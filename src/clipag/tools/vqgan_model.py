"""The taming-transformers VQGAN (Esser et al., 2021), rebuilt with the same state-dict keys.

No maintained package ships it for current torch (taming-transformers on PyPI pins an old
pytorch-lightning), so the encoder, decoder and quantiser are written here from the model's published
layout: checkpoints such as vqgan_imagenet_f16_16384 (`*.ckpt` + `*.yaml`) load unchanged, with the
training-only `loss.*` weights ignored. Only what VQGAN+CLIP needs is here: encode, quantise (straight
through), decode.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ClipagError, check_types


@dataclass
class VQGANConfig:
    """`model.params` of a taming config: ddconfig fields plus n_embed and embed_dim."""
    n_embed: int = 16384
    embed_dim: int = 256
    z_channels: int = 256
    resolution: int = 256
    in_channels: int = 3
    out_ch: int = 3
    ch: int = 128
    ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    num_res_blocks: int = 2
    attn_resolutions: list[int] = field(default_factory=lambda: [16])

    @classmethod
    def from_yaml(cls, path: str | Path) -> "VQGANConfig":
        import yaml
        try:
            params = yaml.safe_load(Path(path).read_text(encoding="utf-8"))["model"]["params"]
            dd = params["ddconfig"]
            config = cls(n_embed=params["n_embed"], embed_dim=params["embed_dim"], z_channels=dd["z_channels"],
                         resolution=dd["resolution"], in_channels=dd["in_channels"], out_ch=dd["out_ch"],
                         ch=dd["ch"], ch_mult=list(dd["ch_mult"]), num_res_blocks=dd["num_res_blocks"],
                         attn_resolutions=list(dd["attn_resolutions"]))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, IndexError) as err:
            raise ClipagError(f"{path} is not a taming-transformers VQGAN config ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200] if str(err) else ''}); give the .yaml that comes "
                              f"with the checkpoint") from None
        config.validate(f"fix {path} or give the .yaml that comes with the checkpoint")
        return config

    def validate(self, fix: str) -> None:
        """Types, signs and sizes a VQGAN can be built with; MAX_WIDTH and MAX_CODEBOOK bound the memory."""
        check_types(self, fix)
        counts = {"n_embed": self.n_embed, "embed_dim": self.embed_dim, "z_channels": self.z_channels,
                  "resolution": self.resolution, "in_channels": self.in_channels, "out_ch": self.out_ch,
                  "ch": self.ch, "num_res_blocks": self.num_res_blocks}
        bad = [f"{k} {v}" for k, v in counts.items() if v <= 0] + [f"ch_mult {m}" for m in self.ch_mult if m <= 0]
        if bad or not self.ch_mult:
            raise ClipagError(f"VQGAN config needs positive sizes and a non-empty ch_mult, got {', '.join(bad) or 'ch_mult []'}; {fix}")
        if self.ch % 32:  # then every ch x ch_mult is a multiple of 32 too
            raise ClipagError(f"VQGAN config's ch {self.ch} x ch_mult must be multiples of 32 (its group norms); {fix}")
        if self.ch * max(self.ch_mult) > MAX_WIDTH or self.n_embed * self.embed_dim > MAX_CODEBOOK:
            raise ClipagError(f"VQGAN config is far larger than any published VQGAN (width {self.ch * max(self.ch_mult)}, "
                              f"codebook {self.n_embed} x {self.embed_dim}); {fix}")


MAX_WIDTH = 8192  # taming's f16 models are 512 wide at most
MAX_CODEBOOK = 2**26  # 16384 codes x 256 is 2**22


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(0.0)
        if c_in != c_out:
            self.nin_shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(channels, channels, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x)
        q, k, v = (layer(h).flatten(2).transpose(1, 2) for layer in (self.q, self.k, self.v))  # (B, HW, C)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.proj_out(out.transpose(1, 2).reshape(B, C, H, W))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # taming pads right/bottom, then a stride-2 conv


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One resolution: `block` and `attn` module lists, plus `downsample` / `upsample` (taming's names)."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for j, block in enumerate(self.block):
            h = block(h)
            if len(self.attn):
                h = self.attn[j](h)
        return h


def _mid(channels: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1, mid.attn_1, mid.block_2 = ResnetBlock(channels, channels), AttnBlock(channels), ResnetBlock(channels, channels)
    return mid


class Encoder(nn.Module):
    def __init__(self, c: VQGANConfig):
        super().__init__()
        self.conv_in = nn.Conv2d(c.in_channels, c.ch, 3, padding=1)
        multipliers, resolution = [1, *c.ch_mult], c.resolution
        self.down = nn.ModuleList()
        for i in range(len(c.ch_mult)):
            level, c_in, c_out = _Level(), c.ch * multipliers[i], c.ch * c.ch_mult[i]
            level.block = nn.ModuleList([ResnetBlock(c_in if j == 0 else c_out, c_out) for j in range(c.num_res_blocks)])
            level.attn = nn.ModuleList([AttnBlock(c_out) for _ in range(c.num_res_blocks)
                                        if resolution in c.attn_resolutions])
            if i != len(c.ch_mult) - 1:
                level.downsample = Downsample(c_out)
                resolution //= 2
            self.down.append(level)
        self.mid = _mid(c_out)
        self.norm_out, self.conv_out = _norm(c_out), nn.Conv2d(c_out, c.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, c: VQGANConfig):
        super().__init__()
        channels = c.ch * c.ch_mult[-1]
        resolution = c.resolution // 2 ** (len(c.ch_mult) - 1)
        self.conv_in = nn.Conv2d(c.z_channels, channels, 3, padding=1)
        self.mid = _mid(channels)
        levels = []
        for i in reversed(range(len(c.ch_mult))):
            level, c_out = _Level(), c.ch * c.ch_mult[i]
            level.block = nn.ModuleList([ResnetBlock(channels if j == 0 else c_out, c_out)
                                         for j in range(c.num_res_blocks + 1)])
            level.attn = nn.ModuleList([AttnBlock(c_out) for _ in range(c.num_res_blocks + 1)
                                        if resolution in c.attn_resolutions])
            channels = c_out
            if i != 0:
                level.upsample = Upsample(c_out)
                resolution *= 2
            levels.insert(0, level)  # taming indexes `up` from the finest resolution
        self.up = nn.ModuleList(levels)
        self.norm_out, self.conv_out = _norm(channels), nn.Conv2d(channels, c.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for level in reversed(self.up):
            h = level(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    def __init__(self, n_embed: int, embed_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> the nearest codebook vectors, with a straight-through gradient to z."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B*h*w, D)
        codebook = self.embedding.weight  # (K, D)
        distance = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.T + codebook.pow(2).sum(1)  # (B*h*w, K)
        quantised = codebook[distance.argmin(dim=1)].view(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
        return z + (quantised - z).detach()


class VQGAN(nn.Module):
    """Images in [-1, 1] (taming's range) <-> latents; `decode` takes unquantised latents and quantises them."""

    def __init__(self, config: VQGANConfig):
        super().__init__()
        self.config = config
        self.encoder, self.decoder = Encoder(config), Decoder(config)
        self.quantize = VectorQuantizer(config.n_embed, config.embed_dim)
        self.quant_conv = nn.Conv2d(config.z_channels, config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.config.ch_mult) - 1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(images))  # (B, embed_dim, h, w), before quantisation

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(self.quantize(latents)))


def load_vqgan(config_path: str | Path, checkpoint_path: str | Path) -> VQGAN:
    """A taming config (.yaml) and checkpoint (.ckpt / .pt / .safetensors; `state_dict` unwrapped)."""
    from ..models.loading import read_state_dict
    model = VQGAN(VQGANConfig.from_yaml(config_path))
    state = {k: v for k, v in read_state_dict(Path(checkpoint_path)).items() if not k.startswith("loss.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # tensors of other shapes: another model size than the config's
        raise ClipagError(f"{checkpoint_path} does not match the VQGAN described by {config_path} "
                          f"({str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else err}); "
                          f"give the config that came with this checkpoint") from None
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise ClipagError(f"{checkpoint_path} does not match the VQGAN described by {config_path} ({detail}, "
                          f"{len(missing)} missing and {len(unexpected)} unexpected keys); give the config that "
                          f"came with this checkpoint")
    return model.eval().requires_grad_(False)
