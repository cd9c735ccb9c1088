"""Start a new image tower beside a trained text tower: a model folder whose text tower and logit scale come
from DONOR and whose image tower is ARCH's random init (seeded), for `clipag train --lock-text` (a
recipe's `"train_text": false`: the text stays locked, as in LiT with the roles swapped). Issue 14 uses it
to try a wider image tower without training the text tower again: the new tower learns the donor's
embedding space.

    python scripts/graft-text-tower.py ARCH DONOR OUT [--seed 0]
    python scripts/graft-text-tower.py emoji-resnet-32-w64 local-dir:runs/v2/clip-emoji-r32 runs/v2/start-w64

ARCH and DONOR must share the text config and the embedding width.
"""
import argparse

import torch

from clipag.models.hub import cpu_state_dict, folder_config, write_model_folder
from clipag.models.loading import load_model


def graft(arch: str, donor: str, out: str, seed: int = 0) -> None:
    torch.manual_seed(seed)
    new, old = load_model(f"{arch}:random"), load_model(donor)
    if new.model_cfg["text_cfg"] != old.model_cfg["text_cfg"] or new.model_cfg["embed_dim"] != old.model_cfg["embed_dim"]:
        raise SystemExit(f"{arch} and {donor} differ in their text config or embedding width; pick matching ones")
    text = {k: v for k, v in old.model.state_dict().items() if not k.startswith("visual.")}
    missing = set(text) - set(new.model.state_dict())
    if missing:
        raise SystemExit(f"{arch} lacks the donor's text tensors {sorted(missing)[:3]}")
    new.model.load_state_dict(text, strict=False)
    write_model_folder(out, folder_config(new), state_dict=cpu_state_dict(new.model))
    print(f"{out}: {arch} image tower (random, seed {seed}), {len(text)} text tensors from {donor}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arch")
    parser.add_argument("donor")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    graft(args.arch, args.donor, args.out, args.seed)
