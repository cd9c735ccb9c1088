# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv and install.
PYTHON3 ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
# Nothing here downloads weights; make every run fail fast instead of waiting on a model hub.
export HF_HUB_OFFLINE := 1

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON3) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(VENV)/bin/clipag generate "a red apple" --model clipag-tiny:random --init noise \
		--steps 50 --trajectory --out outputs/demo

test: install
	$(PYTHON) -m pytest

bench: install
	$(PYTHON) benchmarks/generate.py
	$(PYTHON) benchmarks/train.py

clean:
	rm -rf $(VENV) outputs
