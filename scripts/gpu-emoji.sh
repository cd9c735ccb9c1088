#!/usr/bin/env bash
# How the shipped emoji models were trained on a lent GPU machine (one H200, no internet), with the
# wheels open_clip needs carried in .whl/ and the data in data/emoji/. Short probes measure each
# stage's seconds per step; the step counts are then chosen to fit the time budgets below (capped),
# and the same scripts/train-emoji-models.sh that runs on a CPU does the training.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=$PWD/src:/tmp/site HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export CLIPAG="python3 -m clipag"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, open_clip; print('torch', torch.__version__, 'open_clip', open_clip.__version__)"

probe() {  # NAME RECIPE STEPS [options] -> seconds per step at the last logged step
    local name=$1 recipe=$2 steps=$3; shift 3
    $CLIPAG train --config "recipes/emoji/$recipe.json" --out "/tmp/probe/$name" --steps "$steps" \
        --log-every 10 --save-every 100000 --device cuda --quiet "$@" >/dev/null
    tail -n 1 "/tmp/probe/$name/log.csv" | cut -d, -f8
}
fit() {  # SECONDS_PER_STEP BUDGET CAP -> steps
    python3 -c "import sys; s, b, c = map(float, sys.argv[1:]); print(int(min(c, b / s)))" "$@"
}
start=$(date +%s)
probe clean clip-emoji 50 > /tmp/clean.s & probe judge emoji-judge 50 > /tmp/judge.s & wait
probe clipag clipag-emoji 20 --model local-dir:/tmp/probe/clean > /tmp/clipag.s
echo "probe s/step: clean $(cat /tmp/clean.s) judge $(cat /tmp/judge.s) clipag $(cat /tmp/clipag.s) ($(( $(date +%s) - start )) s)"
export STEPS_CLEAN=$(fit "$(cat /tmp/clean.s)" "${BUDGET_CLEAN:-100}" 1600)
export STEPS_JUDGE=$(fit "$(cat /tmp/judge.s)" "${BUDGET_JUDGE:-250}" 1600)
export STEPS_CLIPAG=$(fit "$(cat /tmp/clipag.s)" "${BUDGET_CLIPAG:-230}" 4000)
echo "steps: clean $STEPS_CLEAN judge $STEPS_JUDGE clipag $STEPS_CLIPAG"
start=$(date +%s)
SKIP_STAGE2=1 scripts/train-emoji-models.sh --device cuda  # stage 2 ran on the CPU (src/clipag/assets/models/clipag-emoji/README.md)
echo "training took $(( $(date +%s) - start )) s"
mkdir -p /tmp/pack
for name in clip-emoji clipag-emoji emoji-judge; do
    mkdir -p /tmp/pack/$name
    cp runs/$name/$name.safetensors runs/$name/settings.json runs/$name/log.csv runs/$name/open_clip_config.json /tmp/pack/$name/
done
tar -C /tmp/pack -cf /tmp/models.tar . && split -b 15M -d /tmp/models.tar "$OUT/models.tar.part"
ls -la "$OUT"
