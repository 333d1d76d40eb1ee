# Two entry points: `make demo` (the main job on built-in sample data) and `make test`.
# Both create .venv from nothing and install the project into it.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   := demo

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/blurgen make-kernels -n 64 --seed 0 --out $(DEMO)/kernels.h5 --overwrite --preview 8
	$(VENV)/bin/blurgen show-kernels $(DEMO)/kernels.h5 --limit 16 --png $(DEMO)/kernels.png

bench: $(STAMP)
	$(PY) bench/kernels.py

clean:
	rm -rf $(DEMO) .pytest_cache
