"""Where an independent judge ranks the intended name for generated pictures, among many names.

    make demo && python benchmarks/judge_rank.py outputs/demo --name "red apple" --names data/emoji/train.csv

For each picture in the run folders (found by its settings JSON, as `clipag evaluate` finds them): the rank (1 = the judge's first choice) of --name among the base names of
--names (skin-tone variants, "NAME: TONE", left out) and the judge's top 5. The numbers that the README
gives for `make demo` come from this script with the default judge, emoji-judge (never a guide).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from clipag import Guide
from clipag.errors import ClipagError
from clipag.measure.evaluate import collect_items, load_images
from clipag.io import read_csv
from clipag.measure.pag import read_names as read_name_lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="run folders of `clipag generate` (searched recursively)")
    p.add_argument("--name", required=True, help="the name the pictures were generated for")
    p.add_argument("--names", required=True, help="the candidate names: a CSV with a name column (e.g. "
                                                  "data/emoji/train.csv, from `clipag data emoji`) or a text file, one per line")
    p.add_argument("--judge", default="emoji-judge", help="the independent judge, never a guide (default emoji-judge)")
    args = p.parse_args()
    if not Path(args.names).is_file():
        p.error(f"--names {args.names} is not a file; give the corpus CSV (e.g. data/emoji/train.csv) or a text file of names")
    try:
        names = [n for n in read_names(Path(args.names)) if ":" not in n]
    except ClipagError as err:
        p.error(str(err))
    if args.name not in names:
        names.append(args.name)
    items, _ = collect_items(args.folders)
    judge = Guide.from_pretrained(args.judge, device="cpu")
    text = judge.encode_text(names)  # (N, D)
    with torch.no_grad():
        scores = judge.encode_image(load_images(items, judge.image_size[0])) @ text.T  # (P, N)
    wanted = scores[:, names.index(args.name)].unsqueeze(1)  # (P, 1)
    ranks = (scores > wanted).sum(dim=1) + 1  # (P,)
    print(f"| picture | guide | rank of {args.name!r} among {len(names)} names | judge's top 5 |\n|---|---|---:|---|")
    for item, rank, row in zip(items, ranks.tolist(), scores):
        top = ", ".join(names[i] for i in row.topk(min(5, len(names))).indices.tolist())
        print(f"| {item.image} | {item.model} | {rank} | {top} |")


def read_names(path: Path) -> list[str]:
    """Distinct names, in first-seen order: a CSV's name column, or a text file's lines."""
    lines = [row["name"] for row in read_csv(path, ("name",))] if path.suffix == ".csv" else read_name_lines(path)
    return list(dict.fromkeys(n.strip() for n in lines if n.strip()))


if __name__ == "__main__":
    main()
