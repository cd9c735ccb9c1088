"""How long `clipag --help` and each `clipag CMD --help` take, beside importing the whole library.

    python benchmarks/startup.py --repeats 5

Each case is a fresh process (what a user waits for at the terminal); the table gives the median
wall time and its ratio to importing every method module (what the help paid before issue 15).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from clipag.cli.main import COMMANDS

FULL_IMPORT = ("import clipag.generation.generate, clipag.tools.draw, clipag.tools.vqgan, clipag.tools.style, "
               "clipag.training.loop, clipag.measure.pag")


def seconds(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    reference = seconds([sys.executable, "-c", FULL_IMPORT], args.repeats)
    cases = [["--help"]] + [[c.__name__.rsplit(".", 1)[1], "--help"] for c in COMMANDS]
    print(f"| command | median s ({args.repeats} runs) | x of importing the library ({reference:.2f} s) |")
    print("|---|---:|---:|")
    for case in cases:
        took = seconds([sys.executable, "-m", "clipag", *case], args.repeats)
        print(f"| clipag {' '.join(case)} | {took:.2f} | {took / reference:.2f} |")


if __name__ == "__main__":
    main()
