# Two commands do all setup on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-compat lint install bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch==2.13.0 first: pip takes the CPU wheel on disk instead of a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,modelscope]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m fastgrpo.demo

test: $(STAMP)
	$(BIN)/ruff check fastgrpo tests benchmarks
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check fastgrpo tests benchmarks
	$(BIN)/ruff format --check fastgrpo tests benchmarks

# The CPU suite on the lowest transformers pyproject.toml admits (`make test` has the newest): a second venv,
# its pins read from pyproject.toml by .ci/lowest_pin.py, and checked installed before the tests run.
COMPAT_VENV ?= .venv-compat
COMPAT_BIN := $(COMPAT_VENV)/bin
COMPAT_STAMP := $(COMPAT_VENV)/.installed-compat
COMPAT_PKGS := transformers
COMPAT_TESTS ?= -m "not slow" tests

$(COMPAT_STAMP): pyproject.toml .ci/lowest_pin.py
	$(PY) -m venv $(COMPAT_VENV)
	$(COMPAT_BIN)/pip install -q --upgrade pip
	$(COMPAT_BIN)/pip install -q torch==2.13.0
	$(COMPAT_BIN)/pip install -q -e '.[dev,modelscope]' $$($(PY) .ci/lowest_pin.py $(COMPAT_PKGS))
	touch $(COMPAT_STAMP)

test-compat: $(COMPAT_STAMP)
	$(COMPAT_BIN)/python .ci/lowest_pin.py --check $(COMPAT_PKGS)
	$(COMPAT_BIN)/python -m pytest -q -p no:cacheprovider $(COMPAT_TESTS)

clean:
	rm -rf $(VENV) $(COMPAT_VENV) runs .pytest_cache
