# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv and install.
PYTHON3 ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
# Nothing here downloads weights; make every run fail fast instead of waiting on a model hub.
export HF_HUB_OFFLINE := 1

.PHONY: install demo serve test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON3) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --no-cache-dir --upgrade pip
	$(PYTHON) -m pip install --quiet --no-cache-dir -e '.[test]'
	# torchattacks, for tests/test_apgd.py (clipag's APGD must return its images): it pins requests~=2.25.1,
	# which would downgrade requests and idna; it never imports requests, so install it without its pins
	# (scipy it does need).
	$(PYTHON) -m pip install --quiet --no-cache-dir scipy
	$(PYTHON) -m pip install --quiet --no-cache-dir --no-deps torchattacks==3.5.1
	touch $@

# From noise, so that only the gradients draw: clipag-emoji, then its vanilla twin for comparison. The last
# step's picture (--keep last), which the judges recognised at least as often as the notebook's best step
# (docs/evidence/README.md, section 5), and which is less speckled. Four seeds, so that one sees the spread
# rather than one draw (grid.png beside the pictures).
DEMO := --init noise --steps 100 --views 16 --crops 16 --keep last --trajectory --seed 0 1 2 3
demo: install
	$(VENV)/bin/clipag generate "a red apple" --model clipag-emoji $(DEMO) --out outputs/demo
	$(VENV)/bin/clipag generate "a red apple" --model clip-emoji $(DEMO) --out outputs/demo/clip-emoji

serve: install
	$(VENV)/bin/clipag serve --model clip-emoji --model clipag-emoji

test: install
	$(PYTHON) -m pytest

bench: install
	$(PYTHON) benchmarks/generate.py
	$(PYTHON) benchmarks/train.py

clean:
	rm -rf $(VENV) outputs
