"""Where an independent judge ranks the intended name for generated pictures, among many names.

    make demo && python benchmarks/judge_rank.py outputs/demo outputs/demo/clip-emoji \
        --name "red apple" --names data/emoji/train-names.txt

For each PNG in the folders: the rank (1 = the judge's first choice) of --name among the base names of
--names (skin-tone variants, "NAME: TONE", left out) and the judge's top 5. The numbers that the README
gives for `make demo` come from this script with the default judge, emoji-judge (never a guide).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from clipag import Guide
from clipag.io import load_image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="folders of generated PNGs")
    p.add_argument("--name", required=True, help="the name the pictures were generated for")
    p.add_argument("--names", required=True, help="a text file of candidate names, one per line")
    p.add_argument("--judge", default="emoji-judge")
    args = p.parse_args()
    names = [n.strip() for n in Path(args.names).read_text().splitlines() if n.strip() and ":" not in n]
    if args.name not in names:
        names.append(args.name)
    judge = Guide.from_pretrained(args.judge, device="cpu")
    text = judge.encode_text(names)  # (N, D)
    print(f"| picture | rank of {args.name!r} among {len(names)} names | judge's top 5 |\n|---|---:|---|")
    for folder in args.folders:
        for png in sorted(Path(folder).glob("*.png")):
            if png.stem.endswith(("-trajectory", "grid")) or png.stem == "grid":
                continue
            with torch.no_grad():
                scores = (judge.encode_image(load_image(png, judge.image_size[0])) @ text.T)[0]  # (N,)
            rank = int((scores > scores[names.index(args.name)]).sum()) + 1
            top = ", ".join(names[i] for i in scores.topk(5).indices.tolist())
            print(f"| {png} | {rank} | {top} |")


if __name__ == "__main__":
    main()
