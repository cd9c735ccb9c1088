#!/usr/bin/env bash
# Train clipag's embedded emoji models from the recipes in recipes/emoji/, then write the fp16 files
# that ship in src/clipag/assets/models/. Run from the repository root after
#   clipag data emoji --from DIR --out data/emoji
# clip-emoji and emoji-judge train side by side (independent); clipag-emoji then fine-tunes clip-emoji
# in two stages: L2 eps 0.43 (the paper's 1.5 at 224 px, scaled to 64 px), then eps 1.0.
# Options after the script name go to every `clipag train` (e.g. --device cuda). STEPS_CLEAN,
# STEPS_JUDGE and STEPS_CLIPAG override the recipes' step counts; CLIPAG names the command to run.
set -euo pipefail
CLIPAG=${CLIPAG:-clipag}
RUNS=${RUNS:-runs}
steps() { [ -n "${1:-}" ] && echo "--steps $1" || true; }

$CLIPAG train --config recipes/emoji/clip-emoji.json --out "$RUNS/clip-emoji" $(steps "${STEPS_CLEAN:-}") --quiet "$@" &
clean=$!
$CLIPAG train --config recipes/emoji/emoji-judge.json --out "$RUNS/emoji-judge" $(steps "${STEPS_JUDGE:-}") --quiet "$@" &
judge=$!
wait $clean
$CLIPAG train --config recipes/emoji/clipag-emoji.json --model "local-dir:$RUNS/clip-emoji" \
    --out "$RUNS/clipag-emoji" $(steps "${STEPS_CLIPAG:-}") --quiet "$@"
wait $judge
for name in clip-emoji clipag-emoji emoji-judge; do
    python3 scripts/half-weights.py "$RUNS/$name/open_clip_model.safetensors" "$RUNS/$name/$name.safetensors"
done
[ -n "${SKIP_STAGE2:-}" ] && exit 0
$CLIPAG train --config recipes/emoji/clipag-emoji-stage2.json --model "emoji-vit-64:$RUNS/clipag-emoji/clipag-emoji.safetensors" \
    --out "$RUNS/clipag-emoji-stage2" $(steps "${STEPS_STAGE2:-}") --quiet "$@"
python3 scripts/half-weights.py "$RUNS/clipag-emoji-stage2/open_clip_model.safetensors" "$RUNS/clipag-emoji-stage2/clipag-emoji.safetensors"
