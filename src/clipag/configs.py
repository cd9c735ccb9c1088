"""Every method's settings as plain dataclasses, with their defaults and checks, and no torch.

The library's functions take these; the CLI builds its options and their defaults from them, so one
place decides each default, and `clipag CMD --help` reads them without importing torch (fast start).
The method modules re-export their own config (`from clipag.tools.draw import DrawConfig` keeps working).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from .errors import ClipagError, check_finite
from .generation.prompts import parse_weighted_prompt

# ---------------------------------------------------------------- choices

AUGMENT_CHOICES = ("diffaugment", "kornia")  # generation's views: the official notebook's, or clipag's earlier
POLICY_OPS = ("color", "translation", "resize", "cutout")  # DiffAugment's operations, in its order
INIT_CHOICES = ("gmm", "noise")  # or a path to an image
OPTIMIZER_CHOICES = ("adamw", "l2")
KEEP_CHOICES = ("best", "last")
ADAMW_WEIGHT_DECAY = 0.01  # torch.optim.AdamW's default, which the notebook does not change
CUT_METHODS = ("latest", "pooled-crops")  # VQGAN+CLIP cutouts
VQGAN_AUGMENTS = ("Ji", "Sh", "Gn", "Pe", "Ro", "Af", "Et", "Ts", "Cr", "Er", "Re")  # generate.py's MakeCutouts names
DEFAULT_AUGMENTS = ("Af", "Pe", "Ji", "Er")
POSTPROCESS = ("reference", "none")
STYLE_NETS = ("stylenet", "small-unet")
CONTENT_LOSSES = ("vgg", "pixels")
NORMS = ("l2", "linf")
ATTACKS = ("pgd", "apgd")
COMPARE_METHODS = ("generate", "draw", "vqgan", "style")  # what `clipag compare` drives
AESTHETIC_EMBEDDER = "ViT-L-14:openai"  # the LAION aesthetic predictor reads this model's image embedding


# ---------------------------------------------------------------- generation and guided tools

@dataclass
class ViewConfig:
    """The augmented views and crops every generation step scores."""
    views: int = 32  # augmented whole-image views per step
    crops: int = 32  # augmented random crops per step
    augment: str = "diffaugment"  # "diffaugment" (official notebook) or "kornia" (clipag's earlier views)
    policy: str = "color,translation,resize,cutout"  # DiffAugment operations, in this order
    noise_std: float = 0.01  # Gaussian noise added to the image before augmenting
    translate: float = 0.125  # largest shift, as a share of the side
    resize: tuple[float, float] = (0.8, 1.2)  # range of the per-batch resize ratio
    cutout: float = 0.5  # side of the zeroed square, as a share of the side
    crop_share: float = 128 / 224  # side of the fixed-size crops, as a share of the image's side

    def policy_ops(self) -> tuple[str, ...]:
        return tuple(op.strip() for op in self.policy.split(",") if op.strip())



def check_view_config(config: ViewConfig) -> Optional[str]:
    """What is wrong with `config`, in one line, or None."""
    if config.augment not in AUGMENT_CHOICES:
        return f"unknown augment {config.augment!r}; choose one of {', '.join(AUGMENT_CHOICES)}"
    unknown = [op for op in config.policy_ops() if op not in POLICY_OPS]
    if unknown:
        return f"unknown DiffAugment operation {unknown[0]!r}; the policy takes {','.join(POLICY_OPS)}"
    if not 0 <= config.translate < 0.5 or not 0 <= config.cutout <= 1 or not 0 < config.crop_share <= 1:
        return "translate must be in [0, 0.5), cutout in [0, 1] and crop_share in (0, 1]"
    low, high = config.resize
    if not 0.1 <= low <= high <= 4:
        return f"resize range {config.resize} must satisfy 0.1 <= low <= high <= 4"
    if config.noise_std < 0:
        return f"noise_std must be 0 or more, got {config.noise_std}"
    return None


@dataclass
class GenerateConfig:
    """Settings of generator-free generation (`clipag generate`, `clipag.generation.generate`): the official notebook's
    defaults, AdamW on the pixels over augmented views and crops, from the best of many GMM samples."""
    steps: int = 100  # the official notebook uses 100, the paper 1000
    optimizer: str = "adamw"  # "adamw" (official notebook) or "l2": steps along the normalised gradient
    lr: float = 0.0175  # AdamW's learning rate; with "l2", each step's root-mean-square change per pixel
    weight_decay: Optional[float] = None  # AdamW's; None = torch's default 0.01, which the notebook keeps
    view_weight: float = 1.0
    crop_weight: float = 5.0
    size: Optional[int] = None  # output side in pixels; None = the model's input size
    init: str = "gmm"  # "gmm", "noise", or a path to an image
    gmm_path: Optional[str] = None
    samples_per_class: int = 5  # GMM candidates drawn from every class (the notebook: 1,000 over 200 classes)
    grad_clip: float = 0.001  # max L2 norm of the pixel gradient (the notebook's clip_grad_norm)
    keep: str = "best"  # "best": the image after the step with the lowest view loss (notebook); "last"
    threshold_quantile: float = 0.95  # dynamic thresholding (Imagen) of the pixels in [-1, 1]
    prefix: str = ""  # e.g. "an oil painting of"
    trajectory_frames: int = 0  # > 0: keep this many frames for a strip and a GIF
    views: ViewConfig = field(default_factory=ViewConfig)
    chunk: Optional[int] = None  # views and crops per pass; None = as many as fit in memory (same result)

    def validate(self) -> None:
        check_finite(self)
        for name in ("lr", "weight_decay", "view_weight", "crop_weight", "grad_clip", "threshold_quantile"):
            value = getattr(self, name)
            if name == "weight_decay" and value is None:
                continue
            if not isinstance(value, (int, float)) or value < 0:  # finiteness: check_finite above
                raise ClipagError(f"{name} must be a finite number, 0 or more; got {value!r}")
        if self.chunk is not None and self.chunk <= 0:
            raise ClipagError(f"chunk must be a positive number of views, got {self.chunk}")
        if self.steps <= 0:
            raise ClipagError(f"steps must be a positive integer, got {self.steps}")
        if self.views.views < 0 or self.views.crops < 0 or self.views.views + self.views.crops == 0:
            raise ClipagError("need at least one view or crop per step; set --views or --crops above 0")
        if self.size is not None and not 16 <= self.size <= 2048:
            raise ClipagError(f"unsupported image size {self.size}; use 16 to 2048 pixels")
        if self.lr <= 0:
            raise ClipagError(f"learning rate must be positive, got {self.lr}")
        if self.keep not in KEEP_CHOICES:
            raise ClipagError(f"unknown keep {self.keep!r}; choose one of {', '.join(KEEP_CHOICES)}")
        problem = check_view_config(self.views)
        if problem:
            raise ClipagError(problem)
        if self.optimizer not in OPTIMIZER_CHOICES:
            raise ClipagError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZER_CHOICES)}")
        if self.optimizer == "l2" and self.weight_decay:
            raise ClipagError("weight decay applies to the adamw optimizer only; drop it or use --optimizer adamw")
        if self.samples_per_class <= 0:
            raise ClipagError(f"samples per class must be positive, got {self.samples_per_class}")
        if not 0 < self.threshold_quantile <= 1:
            raise ClipagError(f"threshold quantile must be in (0, 1], got {self.threshold_quantile}")


@dataclass
class DrawConfig:
    """Settings of CLIPDraw (`clipag draw`, `clipag.tools.draw`): kvfrans/clipdraw's defaults (strokes, widths,
    optimisers, augmentation) unless a field says otherwise."""
    strokes: int = 256
    max_segments: int = 3
    max_width: float = 50.0
    steps: int = 1000
    lr_points: float = 1.0
    lr_widths: float = 0.1
    lr_colours: float = 0.01
    views: int = 4
    augment: bool = True
    normalized_input: bool = False  # the notebooks feed unnormalised pixels (use_normalized_clip = False)
    clamp_points: bool = False  # CLIPDraw clamps widths and colours only; True keeps points near the canvas
    size: Optional[int] = None  # canvas side; None = the guide's input size
    trajectory_frames: int = 0

    def validate(self) -> None:
        check_finite(self)
        if self.strokes <= 0 or self.steps <= 0 or self.views <= 0:
            raise ClipagError("strokes, steps and views must be positive integers")
        if not 1 <= self.max_segments <= 8:
            raise ClipagError(f"max segments {self.max_segments} is out of range; use 1 to 8")


@dataclass
class VQGANCLIPConfig:
    """Settings of VQGAN+CLIP (`clipag vqgan`, `clipag.vqgan_clip`): nerdyrodent/VQGAN-CLIP's defaults
    (cutouts, learning rate, steps) unless a field says otherwise."""
    steps: int = 500
    lr: float = 0.1
    size: Optional[int] = None  # output side (multiple of the downsampling); None = the reference's for the device
    crops: int = 32  # the reference's cutouts per step
    cut_method: str = "latest"  # "latest" (the reference's default) or "pooled-crops" (clipag's earlier)
    augments: tuple[str, ...] = DEFAULT_AUGMENTS  # for "latest", in this order
    cut_pow: float = 1.0  # crop-size exponent of "pooled-crops"
    image_prompts: tuple[str, ...] = ()  # "PATH" or "PATH:WEIGHT", embedded through the same crops
    init: Optional[str] = None  # an image to start from (its encoding); None: random codes
    save_every: int = 0  # keep a frame every N steps (0: none)

    def validate(self) -> None:
        check_finite(self)
        if self.steps <= 0 or self.crops <= 0 or self.lr <= 0:
            raise ClipagError("steps, crops and lr must be positive")
        if self.cut_method not in CUT_METHODS:
            raise ClipagError(f"unknown cut method {self.cut_method!r}; choose one of {', '.join(CUT_METHODS)}")
        unknown = [a for a in self.augments if a not in VQGAN_AUGMENTS]
        if unknown:
            raise ClipagError(f"unknown augment {unknown[0]!r}; choose from {' '.join(VQGAN_AUGMENTS)}")
        for prompt in self.image_prompts:
            parse_weighted_prompt(prompt)


@dataclass
class StyleConfig:
    """Settings of CLIPStyler (`clipag style`, `clipag.tools.style`): cyclomon/CLIPstyler's losses, weights
    and patch settings unless a field says otherwise."""
    steps: int = 200
    network: bool = True
    lr: Optional[float] = None  # None: 5e-4 for the network, 5e-3 for pixels
    crops: int = 64
    crop_size: int = 128
    threshold: float = 0.7
    lambda_patch: float = 9000.0
    lambda_global: float = 500.0
    lambda_content: float = 150.0
    lambda_tv: float = 2e-3
    width: int = 512  # the content image is resized to width x height, as the reference does
    height: int = 512
    style_net: str = "stylenet"  # "stylenet" (the reference's UNet) or "small-unet" (clipag's earlier)
    content_loss: str = "vgg"  # "vgg" (the reference's VGG19 features) or "pixels" (1/4-resolution pixels)
    vgg_weights: Optional[str] = None  # torchvision vgg19 state dict; None = torchvision's cache file
    trajectory_frames: int = 0  # > 0: keep this many frames for a strip and a GIF
    postprocess: str = "reference"  # "reference": contrast x1.5 then min-max, as CLIPStyler saves; "none"

    def validate(self) -> None:
        check_finite(self)
        if self.steps <= 0 or self.crops <= 0:
            raise ClipagError("steps and crops must be positive integers")
        if self.postprocess not in POSTPROCESS:
            raise ClipagError(f"unknown postprocess {self.postprocess!r}; use {' or '.join(POSTPROCESS)}")
        if self.style_net not in STYLE_NETS or self.content_loss not in CONTENT_LOSSES:
            raise ClipagError(f"style net must be one of {', '.join(STYLE_NETS)} and content loss one of "
                              f"{', '.join(CONTENT_LOSSES)}")
        if not 16 <= self.width <= 2048 or not 16 <= self.height <= 2048:
            raise ClipagError(f"unsupported size {self.width}x{self.height}; use 16 to 2048 pixels a side")
        if self.network and self.style_net == "stylenet" and (self.width % 8 or self.height % 8):
            raise ClipagError(f"the style network needs a width and height divisible by 8, got "
                              f"{self.width}x{self.height}; e.g. --width {self.width // 8 * 8 or 8}")
        if not 16 <= self.crop_size <= min(self.width, self.height):
            raise ClipagError(f"crop size {self.crop_size} must be between 16 and the image's shorter side "
                              f"{min(self.width, self.height)}")


# ---------------------------------------------------------------- attacks and measures

@dataclass
class AttackConfig:
    """A PGD attack in pixel space ([0,1] images): norm (l2 or linf), radius eps, steps, step size (None =
    2.5 * eps / steps), random start and momentum. Shared by training, evaluation and explanation."""
    norm: str = "l2"
    eps: float = 1.5  # l2: pixel units; linf: 1/255 units
    steps: int = 5
    step_size: Optional[float] = None  # same units as eps; None = 2.5 * eps / steps
    random_start: bool = True
    momentum: float = 0.0  # 0: plain PGD; RobustVLM (chs20/RobustVLM train/pgd_train.py): 0.9

    def validate(self) -> None:
        if self.norm not in NORMS:
            raise ClipagError(f"unknown threat model {self.norm!r}; use l2 or linf")
        if not self.eps > 0:
            raise ClipagError(f"attack eps must be positive, got {self.eps}")
        if self.steps <= 0:
            raise ClipagError(f"attack steps must be a positive integer, got {self.steps}")
        if self.step_size is not None and not self.step_size > 0:
            raise ClipagError(f"attack step size must be positive, got {self.step_size}")
        if not 0 <= self.momentum < 1:
            raise ClipagError(f"attack momentum must be in [0, 1), got {self.momentum}")

    @property
    def radius(self) -> float:
        """eps in [0,1] pixel units."""
        return self.eps / 255 if self.norm == "linf" else self.eps

    @property
    def alpha(self) -> float:
        """Step size in [0,1] pixel units."""
        step = self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps
        return step / 255 if self.norm == "linf" else step


@dataclass
class RobustnessConfig:
    """Settings of `clipag robustness`: zero-shot accuracy clean and under PGD or APGD at each radius."""
    eps: list[float] = field(default_factory=lambda: [1.5])  # l2: [0,1] pixel units; linf: /255 units
    norm: str = "l2"
    attack_steps: int = 10
    attacks: Sequence[str] = ("pgd",)
    templates: str = "name"  # "name" ("{}"), "simple", "openai", or a file with one "{}" template per line
    batch_size: int = 128
    seed: int = 0

    def validate(self) -> None:
        unknown = [a for a in self.attacks if a not in ATTACKS]
        if unknown:
            raise ClipagError(f"unknown attack {unknown[0]!r}; use {' or '.join(ATTACKS)}")
        for eps in self.eps:
            AttackConfig(norm=self.norm, eps=eps, steps=self.attack_steps).validate()


@dataclass
class PagConfig:
    """Settings of the targeted PAG measure (`clipag pag`): radii, PGD steps, prompt template, batch, seed."""
    eps: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])  # L2 radii in [0,1] pixel units
    steps: int = 50  # PGD steps per radius
    step_size: float | None = None  # None: 2.5 * eps / steps, as clipag.attack
    template: str = "{}"  # how a name becomes the prompt, for the guide and the judge alike
    batch_size: int = 64
    seed: int = 0  # the targets (the sample of names is sample_pictures' seed)

    def validate(self) -> None:
        check_finite(self)
        if not self.eps:
            raise ClipagError("give at least one radius (--eps)")
        for eps in self.eps:
            AttackConfig(eps=eps, steps=self.steps, step_size=self.step_size).validate()
        if "{}" not in self.template:
            raise ClipagError(f"the template {self.template!r} needs {{}} where the name goes")
        if self.batch_size <= 0:
            raise ClipagError("batch size must be a positive integer")


# ---------------------------------------------------------------- the paper's figures and tables

REPRODUCE_TARGETS = ("fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "table-clipdraw",
                     "table-vqgan")
PAPER_STEPS = 1000  # the supplementary's K for generation
QUICK_STEPS = 20


@dataclass
class ReproduceConfig:
    """Settings of `clipag reproduce`: the paper's by default; `quick` makes every target small and fast.

    Inputs the paper took from datasets are the user's: pictures with Grad-CAM targets (fig5), a content
    pictures (fig2), a VQGAN (fig1, table-vqgan), MS-COCO captions (table-vqgan), evaluators (tables)."""
    quick: bool = False
    steps: Optional[int] = None  # every method's steps; None = the paper's (generation 1000), or quick's
    gmm: Optional[str] = None  # GMM file for the generation figures; None = each model's own (as generate)
    images: list[str] = field(default_factory=list)  # fig5: "PATH" or "PATH=TARGET"; targets default to the paper's
    contents: list[str] = field(default_factory=list)  # fig2: the pictures CLIPStyler restyles
    vqgan_config: Optional[str] = None  # fig1 / table-vqgan: the taming-transformers VQGAN's YAML and checkpoint
    vqgan_checkpoint: Optional[str] = None
    captions: Optional[str] = None  # table-vqgan: MS-COCO captions_val2017.json
    evaluators: list[str] = field(default_factory=list)  # tables: models that score the results
    aesthetic: Optional[str] = None  # tables: the LAION aesthetic predictor's weights

    def generation_steps(self) -> int:
        return self.steps or (QUICK_STEPS if self.quick else PAPER_STEPS)

    def validate(self) -> None:
        if self.steps is not None and self.steps <= 0:
            raise ClipagError(f"steps must be a positive integer, got {self.steps}")
        if (self.vqgan_config is None) != (self.vqgan_checkpoint is None):
            raise ClipagError("give both --vqgan-config and --vqgan-checkpoint, or neither")
