#!/usr/bin/env bash
# The quick pages of docs/reproduce/: every target of `clipag reproduce` that the embedded emoji models
# can run on this CPU, with Twemoji pictures (CC-BY 4.0, data/emoji/images/twitter/) as fig5's inputs
# (the paper's targets: dog, parrot, cars, monkey) and fig2's content. Needs data/emoji
# (`clipag data emoji --from npm --out data/emoji`). No VQGAN ships, so fig1 and table-vqgan say so.
set -euo pipefail
T=data/emoji/images/twitter
${CLIPAG:-clipag} reproduce all --model clip-emoji --model clipag-emoji --quick \
    --image $T/1f436.png=dog --image $T/1f99c.png=parrot --image $T/1f697.png=cars --image $T/1f435.png=monkey \
    --content $T/1f3e1.png --evaluator emoji-judge --out "${OUT:-docs/reproduce}" "$@"
