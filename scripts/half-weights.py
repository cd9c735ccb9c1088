"""Write an fp16 copy of a safetensors state dict (what clipag ships): half the bytes, same tensors names.

    python scripts/half-weights.py IN.safetensors OUT.safetensors
"""
import sys

from safetensors.torch import load_file, save_file

source, target = sys.argv[1:3]
state = load_file(source)
save_file({key: value.half() if value.is_floating_point() else value for key, value in state.items()},
          target, metadata={"format": "pt", "dtype": "float16"})
