"""The emoji training set of clipag's embedded models, rebuilt from public npm packages.

    npm pack emoji-datasource-twitter@16.0.0 emoji-datasource-google@16.0.0 \
        @iconify-json/fluent-emoji-flat @iconify-json/fluent-emoji @iconify-json/noto @iconify-json/twemoji \
        @iconify-json/emojione @iconify-json/emojione-v1 @iconify-json/fxemoji @iconify-json/noto-v1  # in DIR
    clipag data emoji --from DIR --out data/emoji

emoji-datasource's emoji.json names 1,911 emoji (name, short names, category, subcategory, code points)
and its `img/STYLE/64/` folders hold a 64 px PNG of each, skin tones included (3,786 per style). Each
Iconify JSON set adds its own drawing of the emoji it has (SVG, rasterised; see .iconify). Packages
are read as the .tgz files `npm pack` writes or as unpacked folders; whichever are in DIR are used.
Output, in --out:

  images/STYLE/*.png        one picture per emoji and style (file names from emoji.json)
  train.csv, heldout.csv    filepath,title (what `clipag train` reads) plus name, subcategory, category, style
  heldout.txt               the held-out emoji names, one per line
  LICENSES.md               each style's author, licence and package; manifest.json: the counts

A fixed, seeded share of the emoji (10% by default), with all their skin tones and every style, is held
out of train.csv for honest evaluation. Captions come from the name, the short names and the category:
"red apple", "a red apple, food & drink", "apple".
"""
from .build import build_emoji_dataset, holdout_names
from .datasource import Emoji, captions, code_key, read_emoji
from .iconify import IconSet, match_icons, rasterise
from .packages import DATASOURCE, ICONIFY, PACKAGES, Package, find_packages

__all__ = ["build_emoji_dataset", "holdout_names", "Emoji", "captions", "code_key", "read_emoji", "IconSet",
           "match_icons", "rasterise", "DATASOURCE", "ICONIFY", "PACKAGES", "Package", "find_packages"]
