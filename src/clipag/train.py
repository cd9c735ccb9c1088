"""`python -m clipag.train` / `torchrun --nproc_per_node N -m clipag.train ...`: same options as `clipag train`."""
import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
