#!/usr/bin/env bash
# Ready the checkout for scripts/gpu/emoji-curriculum.sh: a device call takes 64 MiB in all, and the
# tracked shipped weights and figures are 150 MB. `prepare` packs the 32 px corpus and the wheels and
# drops the big tracked folders from the index (ignored, so they stay behind); `restore` puts them back.
#   scripts/gpu/prepare.sh prepare   # then: device run "DEADLINE=470 bash scripts/gpu/emoji-curriculum.sh"
#                                    #   carry [".whl", "gpu-carry/emoji32", "runs/v2/clipag-emoji-r32-eps2.0"]
#                                    #   (A, trained on the CPU; restore it with ONLY=... scripts/train-emoji-v2.sh)
#   scripts/gpu/prepare.sh restore   # at once after the call, before any commit
set -euo pipefail
BIG=(docs/evidence docs/models/runs src/clipag/assets/models src/clipag/assets/gmm)
EXCLUDE=.git/info/exclude
case "$1" in
prepare)
    [ -d data/emoji32 ] || python scripts/resize-corpus.py data/emoji data/emoji32 32
    [ -d gpu-carry/emoji32 ] || python scripts/gpu/emoji-pack.py pack data/emoji32 gpu-carry/emoji32
    grep -qx /gpu-carry/ "$EXCLUDE" 2>/dev/null || echo /gpu-carry/ >> "$EXCLUDE"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl open-clip-torch==3.3.0 kornia==0.9.0 kornia-rs==0.2.0 ftfy==6.3.1 wcwidth==0.9.4
    git rm -r -q --cached "${BIG[@]}"
    for path in "${BIG[@]}"; do echo "/$path/" >> "$EXCLUDE"; done ;;
restore)
    git reset -q -- "${BIG[@]}"
    for path in "${BIG[@]}"; do sed -i "\#^/$path/\$#d" "$EXCLUDE"; done ;;
esac
