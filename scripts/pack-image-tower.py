"""Ship a CLIPAG model as its image tower only, its frozen text tower taken from a shipped model (models.towers).

    python scripts/pack-image-tower.py RUN_WEIGHTS.safetensors TEXT_FROM_NAME OUT/image_tower.safetensors
"""
import sys

from clipag.models.loading import read_state_dict
from clipag.models.registry import get_spec, spec_file
from clipag.models.towers import save_image_tower

source, text_from, target = sys.argv[1:4]
save_image_tower(read_state_dict(source), target, text_from=text_from,
                 text_state_dict=read_state_dict(spec_file(get_spec(text_from))))
print(f"wrote {target}: the image tower of {source}, text tower from {text_from}")
