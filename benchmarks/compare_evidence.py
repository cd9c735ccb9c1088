"""Compare two runs of benchmarks/emoji_evidence.py picture by picture, for the same guide.

    python benchmarks/compare_evidence.py docs/evidence/issue13/results-heldout-notebook.json \
        docs/evidence/issue13/results-heldout-previous.json

The two runs must share names, seeds and starts (only a setting such as --preset differs). For each
(split, start, guide) row in both, prints how often the judge scores run A's picture above run B's for
the same prompt and seed, with the interval of clipag.measure.aesthetic.pairwise_preference, and both
R-Precisions. A Markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from clipag.measure.aesthetic import pairwise_preference


def load_rows(path: Path) -> dict[tuple[str, str, str], dict]:
    rows = json.loads(path.read_text())["generation"]["rows"]
    return {(r["split"], r["init"], r["guide"]): r for r in rows if not r["guide"].endswith(" init")}


def compare(a: Path, b: Path) -> list[dict]:
    rows_a, rows_b = load_rows(a), load_rows(b)
    table = []
    for key in sorted(rows_a.keys() & rows_b.keys()):
        ra, rb = rows_a[key], rows_b[key]
        preference = pairwise_preference(ra["similarities"], rb["similarities"])
        table.append({"split": key[0], "init": key[1], "guide": key[2], "pairs": preference.prompts,
                      "a_higher": preference.wins, "low": preference.low, "high": preference.high,
                      "r_precision_a": ra["r_precision"], "r_precision_b": rb["r_precision"]})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="results-NAME.json of run A")
    parser.add_argument("b", type=Path, help="results-NAME.json of run B (same names, seeds, starts)")
    args = parser.parse_args()
    table = compare(args.a, args.b)
    if not table:
        raise SystemExit("error: the two files share no (split, start, guide) row; compare runs of the same sample")
    print(f"A = {args.a.name}, B = {args.b.name}\n")
    print("| split | start | guide | pairs | A's picture higher | R-Precision A | R-Precision B |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in table:
        print(f"| {r['split']} | {r['init']} | {r['guide']} | {r['pairs']} | {r['a_higher']:.0%} "
              f"[{r['low']:.0%}, {r['high']:.0%}] | {r['r_precision_a']:.1%} | {r['r_precision_b']:.1%} |")


if __name__ == "__main__":
    main()
