#!/usr/bin/env bash
# Issue 14's adversarial stages on a lent GPU, in one device call (10 minutes at most):
#   A. recipes/emoji/v2/clipag-emoji-r32-eps2.0.json as committed (2000 x 256, L2 2.0 at 32 px);
#   B. clipag-emoji-r32-eps2.0-long: from A at the same radius, for as many steps as fit before DEADLINE
#      seconds (a multiple of 500, from A's measured seconds per step), so that B ends with its model.
# Ready the checkout with scripts/gpu/prepare.sh first and restore it after. Carried: .whl (wheels of
# open_clip, kornia, ftfy), gpu-carry/emoji32 (scripts/gpu/emoji-pack.py) and A's start
# (runs/v2/clipag-emoji-r32-eps1.0), or A itself when it was trained here: then A is skipped and a
# 60-step throwaway run measures the speed. Each stage's fp16 weights come back split into 15 MB parts
# (the device returns files of 16 MiB at most) with a tar of its settings, log and config.
set -uo pipefail
START=$(date +%s); DEADLINE=${DEADLINE:-480}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 scripts/gpu/emoji-pack.py unpack gpu-carry/emoji32 data/emoji || exit 1
train() { python3 -m clipag.cli.main train --config "$1" --resume latest --quiet; }
ship() {  # run dir -> $OUT/NAME.partXX + $OUT/NAME.tar
    local run=$1 name; name=$(basename "$1")
    python3 scripts/half-weights.py "$run/open_clip_model.safetensors" "/tmp/$name.safetensors" &&
        split -b 15M -d "/tmp/$name.safetensors" "$OUT/$name.part" &&
        tar cf "$OUT/$name.tar" -C "$run" log.csv open_clip_config.json $(cd "$run" && ls settings*.json)
}
A=recipes/emoji/v2/clipag-emoji-r32-eps2.0.json
per_step() { python3 -c "import csv,sys; r=list(csv.DictReader(open(sys.argv[1])))[1:]; print(sum(float(x['seconds']) for x in r)/len(r))" "$1"; }
if [ -f runs/v2/clipag-emoji-r32-eps2.0/open_clip_model.safetensors ]; then
    python3 -m clipag.cli.main train --config $A --model local-dir:runs/v2/clipag-emoji-r32-eps2.0 --out /tmp/speed \
        --steps 60 --quiet || exit 1
    PER_STEP=$(per_step /tmp/speed/log.csv)
else
    train $A || exit 1
    ship runs/v2/clipag-emoji-r32-eps2.0
    PER_STEP=$(per_step runs/v2/clipag-emoji-r32-eps2.0/log.csv)
fi
LEFT=$(( DEADLINE - ($(date +%s) - START) ))
STEPS=$(python3 -c "print(max(0, int(($LEFT - 60) / ($PER_STEP * 1.15) // 500 * 500)))")
echo "stage A: $(( $(date +%s) - START )) s since start, ${PER_STEP} s/step; stage B: $STEPS steps in the $LEFT s left"
[ "$STEPS" -gt 0 ] || exit 0
python3 - "$A" "$STEPS" <<'PY'
import json, sys
recipe = json.load(open(sys.argv[1]))
recipe.update(model="local-dir:runs/v2/clipag-emoji-r32-eps2.0", out="runs/v2/clipag-emoji-r32-eps2.0-long",
              steps=int(sys.argv[2]), save_every=500,
              _role="issue 14: CLIPAG, the long stage at L2 2.0 (32 px) from clipag-emoji-r32-eps2.0, on a lent GPU",
              _steps="as many steps as fit in one 10-minute device call after stage A (scripts/gpu/emoji-curriculum.sh)")
json.dump(recipe, open("recipes/emoji/v2/clipag-emoji-r32-eps2.0-long.json", "w"), indent=2)
PY
cp recipes/emoji/v2/clipag-emoji-r32-eps2.0-long.json "$OUT/"
train recipes/emoji/v2/clipag-emoji-r32-eps2.0-long.json && ship runs/v2/clipag-emoji-r32-eps2.0-long
echo "done in $(( $(date +%s) - START )) s"
