"""Per-class Gaussian mixture over tiny images: the starting point of generator-free generation.

One Gaussian per class is fit on images downsampled to `size` x `size` (16 by default) and flattened
to D = 3 * size * size values in [0,1]. Covariances are stored in full, or as low-rank plus diagonal
(`rank`) where full ones are too large to ship; the file says which. Files are safetensors with JSON
metadata, so loading never unpickles anything.

Written here rather than taken from scikit-learn: its GaussianMixture fits by EM with unknown labels,
whereas this is a closed-form per-class fit with labels known, plus a compact file format.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from ..errors import ClipagError
from .image_sets import LabelledImages, read_labelled_images
from ..io import atomic_path, path_kind

FORMAT = "clipag-gmm"
RIDGE = 1e-4 / 4  # the notebook's 1e-4 * I on images in [-1, 1], in the [0, 1] units stored here


@dataclass
class ClassGMM:
    """means (C, D); full cov (C, D, D) or factors (C, D, R) + diag (C, D); images are (3, size, size)."""
    classes: list[str]
    size: int
    means: torch.Tensor
    cov: Optional[torch.Tensor] = None
    factors: Optional[torch.Tensor] = None
    diag: Optional[torch.Tensor] = None
    counts: Optional[torch.Tensor] = None
    _scale: Optional[torch.Tensor] = field(default=None, init=False, repr=False, compare=False)

    @property
    def covariance(self) -> str:
        return "full" if self.cov is not None else "lowrank"

    @property
    def dim(self) -> int:
        return 3 * self.size * self.size

    # ------------------------------------------------------------ fitting

    @classmethod
    def fit(cls, data: torch.Tensor, labels: torch.Tensor, classes: list[str], size: int,
            rank: Optional[int] = None, ridge: float = RIDGE) -> "ClassGMM":
        """Fit one Gaussian per class to data (N, D) in [0,1], as the official notebook does: the
        biased (1/n) empirical covariance plus `ridge` on the diagonal."""
        means, covs, factors, diags, counts = [], [], [], [], []
        for c in range(len(classes)):
            x = data[labels == c].double()  # (n, D)
            if len(x) == 0:
                raise ClipagError(f"class {classes[c]!r} has no readable images; remove it or add images")
            mean = x.mean(0)
            centred = x - mean
            cov = centred.T @ centred / len(x) + ridge * torch.eye(x.shape[1], dtype=x.dtype)  # (D, D)
            means.append(mean)
            counts.append(len(x))
            if rank is None:
                covs.append(cov)
            else:
                factor, diag = _low_rank_plus_diag(cov, rank)
                factors.append(factor)
                diags.append(diag)
        stack = lambda ts: torch.stack(ts).float() if ts else None
        return cls(list(classes), size, stack(means), cov=stack(covs), factors=stack(factors),
                   diag=stack(diags), counts=torch.tensor(counts))

    # ------------------------------------------------------------ sampling

    def sample(self, per_class: int, generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw `per_class` images from every class -> images (C*M, 3, s, s) in [0,1], class ids (C*M,)."""
        C, D = self.means.shape
        if self.cov is not None:
            z = torch.randn(C, D, per_class, generator=generator)
            noise = self._full_scale() @ z  # (C, D, M)
        else:
            R = self.factors.shape[-1]
            z_low = torch.randn(C, R, per_class, generator=generator)
            z_diag = torch.randn(C, D, per_class, generator=generator)
            noise = self.factors @ z_low + self.diag.clamp_min(0).sqrt().unsqueeze(-1) * z_diag
        samples = (self.means.unsqueeze(-1) + noise).permute(0, 2, 1).reshape(C * per_class, D)
        images = samples.clamp(0, 1).view(-1, 3, self.size, self.size)
        class_ids = torch.arange(C).repeat_interleave(per_class)
        return images, class_ids

    def _full_scale(self) -> torch.Tensor:
        """A square root of each full covariance, (C, D, D); computed once, as it takes seconds."""
        if self._scale is None:
            eigvals, eigvecs = torch.linalg.eigh(self.cov.double())  # PSD even when n < D
            self._scale = (eigvecs * eigvals.clamp_min(0).sqrt().unsqueeze(1)).float()
        return self._scale

    # ------------------------------------------------------------ files

    def save(self, path: str | os.PathLike, half: bool = False) -> None:
        """Write a safetensors file; half=True stores the parameters in fp16 (half the size, to ship)."""
        from safetensors.torch import save_file
        tensors = {"means": self.means}
        if self.cov is not None:
            tensors["cov"] = self.cov
        else:
            tensors.update(factors=self.factors, diag=self.diag)
        if half:
            tensors = {k: v.half() for k, v in tensors.items()}
        tensors["counts"] = self.counts
        metadata = {"format": FORMAT, "version": "1", "covariance": self.covariance,
                    "rank": str(self.factors.shape[-1] if self.factors is not None else self.dim),
                    "size": str(self.size), "classes": json.dumps(self.classes)}
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ClassGMM":
        from safetensors import SafetensorError, safe_open
        path = Path(path)
        if path_kind(path, "GMM file") != "file":
            raise ClipagError(f"GMM file not found: {path}; make one with `clipag gmm fit DATASET --out {path}`")
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {k: f.get_tensor(k).float() for k in f.keys()}
        except (SafetensorError, OSError) as err:
            raise ClipagError(f"cannot read GMM file {path} ({err}); make one with `clipag gmm fit`") from None
        if metadata.get("format") != FORMAT:
            raise ClipagError(f"{path} is not a clipag GMM file; make one with `clipag gmm fit`")
        try:
            classes, size, means = json.loads(metadata["classes"]), int(metadata["size"]), tensors["means"]
        except (KeyError, ValueError) as err:
            raise ClipagError(f"{path} is a damaged clipag GMM file ({type(err).__name__}: {err}); fit it again "
                              f"with `clipag gmm fit`") from None
        gmm = cls(classes, size, means, cov=tensors.get("cov"), factors=tensors.get("factors"),
                  diag=tensors.get("diag"), counts=tensors.get("counts"))
        problem = gmm._shape_problem()
        if problem:
            raise ClipagError(f"{path} is a damaged clipag GMM file ({problem}); fit it again with `clipag gmm fit`")
        return gmm

    def _shape_problem(self) -> str:
        """What keeps the stored tensors from being one Gaussian per class over (3, size, size) images."""
        count, dim = len(self.classes), self.dim
        if not (isinstance(self.classes, list) and all(isinstance(c, str) for c in self.classes)) or self.size <= 0:
            return "its class names or image size are malformed"
        if tuple(self.means.shape) != (count, dim):
            return f"means are {tuple(self.means.shape)}, not ({count}, {dim})"
        if self.cov is not None:
            return "" if tuple(self.cov.shape) == (count, dim, dim) else f"cov is {tuple(self.cov.shape)}"
        if self.factors is None or self.diag is None:
            return "it has neither cov nor factors and diag"
        if self.factors.shape[:2] != (count, dim) or tuple(self.diag.shape) != (count, dim):
            return f"factors {tuple(self.factors.shape)} and diag {tuple(self.diag.shape)} do not fit the means"
        return ""


def _low_rank_plus_diag(cov: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cov ~ F F^T + diag(d): F from the top `rank` eigenpairs, d keeps the diagonal exact."""
    eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
    top_vals, top_vecs = eigvals[-rank:].clamp_min(0), eigvecs[:, -rank:]
    factor = top_vecs * top_vals.sqrt()  # (D, R)
    diag = (cov.diagonal() - (factor ** 2).sum(1)).clamp_min(0)  # (D,)
    return factor, diag


def fit_gmm(dataset: str | os.PathLike, out: str | os.PathLike, size: int = 16, rank: Optional[int] = None,
            max_per_class: Optional[int] = None, progress: bool = True, class_key: Optional[str] = None,
            half: bool = False, split: Optional[str] = None, drop_grey: bool = True,
            ridge: float = RIDGE) -> tuple[ClassGMM, LabelledImages]:
    """Fit a per-class GMM on a labelled image set (`clipag.generation.image_sets`: class folders, Tiny-ImageNet,
    a CSV with a `class_key` column, or `hf:NAME`) and save it to `out`.

    Returns the GMM and what was read (counts of unreadable and grey images, the layout recognised).
    """
    if size < 2 or size > 64:
        raise ClipagError(f"GMM image size {size} is not supported; use 2 to 64 (default 16)")
    dim = 3 * size * size
    if rank is not None and not 1 <= rank <= dim:
        raise ClipagError(f"rank {rank} must be between 1 and {dim} (3*size*size), or omitted for full")
    images = read_labelled_images(dataset, size, max_per_class=max_per_class, class_key=class_key, split=split,
                                  drop_grey=drop_grey, progress=progress)
    gmm = ClassGMM.fit(images.data, images.labels, images.classes, size, rank, ridge=ridge)
    gmm.save(out, half=half)
    return gmm, images
