"""Put a trained image tower (and logit scale) back on the model it started from: the inverse of what
scripts/gpu-eps-sweep.sh brings back from the GPU, whose text tower stayed frozen.

    python scripts/merge-image-tower.py START.safetensors CHANGED.safetensors OUT.safetensors
"""
import sys

from safetensors.torch import load_file, save_file

start, changed, target = sys.argv[1:4]
state, update = load_file(start), load_file(changed)
if not set(update) <= set(state):
    sys.exit(f"{changed} holds tensors that {start} lacks: {sorted(set(update) - set(state))[:5]}")
state.update(update)
save_file(state, target, metadata={"format": "pt", "dtype": "float16"})
print(f"{target}: {len(update)} tensors from {changed}, {len(state) - len(update)} from {start}")
