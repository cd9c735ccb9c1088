#!/usr/bin/env bash
# Session 4's sweep of the CLIPAG radius on a lent GPU machine (one H200): fine-tune the shipped
# clip-emoji with `clipag train --objective clipag` at several L2 radii side by side, each for the same
# time budget, then measure each one's held-out robustness there. The judged generations are measured
# afterwards on the CPU (the judge does not fit in the 64 MiB that travels to the machine).
# Needs: .whl/ (open_clip_torch, ftfy, wcwidth, kornia, kornia_rs) and data/emoji/ carried; only
# src/clipag/assets/models/clip-emoji/open_clip_model.safetensors of the shipped models (the others are moved aside).
# Writes to $OUT: log, robustness-*.json, and sweep.tar.part* (per radius: the image tower and
# logit scale in fp16, log.csv, settings.json; the text tower is clip-emoji's, frozen).
# As run (session 4), with the other models moved out of the tree: PROBE_STEPS=10 BUDGET=150 scripts/gpu-eps-sweep.sh
# (device run, carry .whl and data/emoji). Back here, per radius E (then judged on CPU with
#   benchmarks/emoji_evidence.py --sample-seed 1 --seeds 2 3 --guides clipag-emoji emoji-vit-64:runs/sweep/eps-E/model.safetensors ...):
#   python scripts/merge-image-tower.py src/clipag/assets/models/clip-emoji/open_clip_model.safetensors \
#       runs/sweep/eps-E/changed.safetensors runs/sweep/eps-E/model.safetensors
# Locally: PROBE_STEPS=2 BUDGET=5 BATCH=16 OUT=/tmp/out DEVICE=cpu scripts/gpu-eps-sweep.sh
set -euo pipefail
if [ -d .whl ] && [ "${DEVICE:-cuda}" = cuda ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=$PWD/src:/tmp/site
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
CLIPAG=${CLIPAG:-python3 -m clipag}
DEVICE=${DEVICE:-cuda}
EPS=${EPS:-2.0 4.0}
# Split the cores between the side-by-side runs: four runs of 16 threads each on 16 cores ran at
# 12.8 s/step (first try, session 4); two runs of 8 threads ran at 0.39 and 0.53 s/step.
count=$(wc -w <<< "$EPS")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / count > 0 ? $(nproc) / count : 1 ))}
BUDGET=${BUDGET:-240}        # seconds of training per radius (all radii run at once)
PROBE_STEPS=${PROBE_STEPS:-20}
BATCH=${BATCH:-512}
RUNS=${RUNS:-/tmp/sweep}
START=src/clipag/assets/models/clip-emoji/open_clip_model.safetensors
HELDOUT=${HELDOUT:-data/emoji/heldout.csv}
mkdir -p "$OUT" "$RUNS"
exec > >(tee "$OUT/log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, open_clip; print('torch', torch.__version__, 'open_clip', open_clip.__version__)"

train() {  # EPS OUT STEPS [options]
    local eps=$1 out=$2 steps=$3; shift 3
    $CLIPAG train --config recipes/emoji/clipag-emoji-eps-sweep.json --model "emoji-vit-64:$START" \
        --eps "$eps" --out "$out" --steps "$steps" --batch-size "$BATCH" --device "$DEVICE" --quiet "$@"
}
start=$(date +%s)
pids=()  # (a bare `wait` would also wait for the tee above)
for eps in $EPS; do train "$eps" "$RUNS/probe-$eps" "$PROBE_STEPS" --log-every "$PROBE_STEPS" --save-every 100000 >/dev/null & pids+=($!); done
wait "${pids[@]}"
for eps in $EPS; do
    seconds=$(tail -n 1 "$RUNS/probe-$eps/log.csv" | cut -d, -f8)
    steps=$(python3 -c "import sys; print(max(1, int(min(6000, float(sys.argv[1]) / float(sys.argv[2])))))" "$BUDGET" "$seconds")
    echo "$eps $steps" >> "$RUNS/plan"
    echo "eps $eps: $seconds s/step side by side, so $steps steps"
done
echo "probes took $(( $(date +%s) - start )) s"
start=$(date +%s)
pids=()
while read -r eps steps; do
    train "$eps" "$RUNS/eps-$eps" "$steps" --log-every 20 --save-every 500 & pids+=($!)
done < "$RUNS/plan"
wait "${pids[@]}"
echo "training took $(( $(date +%s) - start )) s"
pids=()
for eps in $EPS; do
    $CLIPAG robustness "$HELDOUT" --class-column name --model "emoji-vit-64:$RUNS/eps-$eps/open_clip_model.safetensors" \
        --eps 0.43 1.0 2.0 --attack-steps 10 --device "$DEVICE" --out "$RUNS/eps-$eps/robustness" | tail -n 3 & pids+=($!)
done
wait "${pids[@]}"
mkdir -p /tmp/pack
for eps in $EPS; do
    mkdir -p "/tmp/pack/eps-$eps"
    cp "$RUNS/eps-$eps/robustness/results.json" "$OUT/robustness-eps-$eps.json"
    cp "$RUNS/eps-$eps/log.csv" "$RUNS/eps-$eps/settings.json" "$RUNS/eps-$eps/robustness/results.json" "/tmp/pack/eps-$eps/"
    python3 - "$START" "$RUNS/eps-$eps/open_clip_model.safetensors" "/tmp/pack/eps-$eps/changed.safetensors" <<'EOF'
import sys
from safetensors.torch import load_file, save_file
start, trained, target = load_file(sys.argv[1]), load_file(sys.argv[2]), sys.argv[3]
moved = [k for k, v in trained.items() if not k.startswith("visual.") and not (v.half() == start[k]).all()]
assert not moved, f"frozen tensors moved: {sorted(moved)}"
save_file({k: v.half() for k, v in trained.items() if k.startswith("visual.") or k.startswith("logit_")}, target)
print(target, "(text tower unchanged)")
EOF
done
tar -C /tmp/pack -cf /tmp/sweep.tar . && split -b 15M -d /tmp/sweep.tar "$OUT/sweep.tar.part"
ls -la "$OUT"
