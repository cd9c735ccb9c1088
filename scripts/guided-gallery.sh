#!/usr/bin/env bash
# The guided tools with the shipped emoji models, side by side: clipag compare reports for CLIPDraw
# (at its defaults: 1000 iterations, 256 strokes, 4 views) and CLIPStyler (pixels, 256 px), judged by
# emoji-judge. Run from the repository root after `clipag data emoji` (the style content is a held-out
# emoji); writes docs/tools/{draw,style}/. VQGAN+CLIP needs a taming-transformers checkpoint, which this
# machine cannot download: see docs/tools/README.md.
set -euo pipefail
CLIPAG=${CLIPAG:-clipag}
OUT=${OUT:-docs/tools}
GUIDES=(--model clip-emoji --model clipag-emoji --evaluator emoji-judge)

$CLIPAG compare draw "a red apple" "a rocket" "a cat face" "a house with a tree" --steps 1000 \
    "${GUIDES[@]}" --seed 0 --out "$OUT/draw" --quiet &
$CLIPAG compare style "fire" "a snowy night" "a watercolor painting" --no-network --size 256 \
    --content data/emoji/images/twitter/26c5.png "${GUIDES[@]}" --seed 0 --out "$OUT/style" --quiet &
wait
