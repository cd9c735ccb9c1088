"""`clipag gmm fit DATASET --out FILE`: fit the per-class GMM that generation starts from."""
from __future__ import annotations

import argparse

from .args import positive_int, print_usage


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("gmm", help="per-class Gaussian mixtures for --init gmm")
    p.set_defaults(run=lambda args: print_usage(p))
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    fit = actions.add_parser("fit", help="fit one Gaussian per class on a labelled image set",
                             description="Fit one Gaussian per class on images downsampled to SIZE x SIZE, as "
                                         "the official notebook fits Tiny-ImageNet's validation split: "
                                         "clipag gmm fit hf:Maysee/tiny-imagenet --out tiny-imagenet-16px.safetensors")
    fit.add_argument("dataset", metavar="DATASET",
                     help="a folder with one sub-folder of images per class; Tiny-ImageNet (its root, train/ "
                          "or val/); a CSV/TSV with --class-column; or hf:NAME, a Hugging Face dataset "
                          "(pip install 'clipag[data]')")
    fit.add_argument("--split", help="for Tiny-ImageNet (val, the default, or train) and hf: datasets "
                     "(default: valid, validation or val, else train)")
    fit.add_argument("--class-column", help="for a CSV: the column of class names (e.g. subcategory); "
                     "images are the filepath column, relative to the CSV")
    fit.add_argument("--out", required=True, help="where to write the GMM (.safetensors)")
    fit.add_argument("--size", type=positive_int, default=16, help="side of the downsampled images (default 16)")
    fit.add_argument("--rank", type=positive_int, default=None,
                     help="store covariances as rank-R plus diagonal (default: full covariance)")
    fit.add_argument("--max-per-class", type=positive_int, default=None, help="use at most N images per class")
    fit.add_argument("--half", action="store_true", help="store the parameters in fp16 (half the file size)")
    fit.add_argument("--keep-grey", action="store_true",
                     help="keep single-channel images (default: dropped, as the notebook drops them)")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(run=run_fit, out_is_file=True)


def run_fit(args: argparse.Namespace) -> int:
    from ..generation.gmm import fit_gmm
    gmm, read = fit_gmm(args.dataset, args.out, size=args.size, rank=args.rank,
                        max_per_class=args.max_per_class, progress=not args.quiet,
                        class_key=args.class_column, half=args.half, split=args.split,
                        drop_grey=not args.keep_grey)
    print(f"{args.out}: {len(gmm.classes)} classes, {int(gmm.counts.sum())} images at "
          f"{gmm.size}x{gmm.size}, {gmm.covariance} covariance; read {read.source}"
          + (f"; {read.grey} grey images dropped" if read.grey else "")
          + (f"; {read.unreadable} unreadable files skipped" if read.unreadable else ""))
    return 0
