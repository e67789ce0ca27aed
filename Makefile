# pyaimc: `make demo` runs the pipeline on the shipped example, `make test` runs the tests.
# Both set everything up first (system packages, virtual environment, CPU build of torch).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.pyaimc-installed
TORCH_VERSION ?= 2.13.0
DEMO_DIR ?= out/demo
# Run as root or with sudo available for the system packages.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-all setup system-packages clean

setup: $(STAMP)

system-packages:
	@if ! command -v ngspice >/dev/null 2>&1 || ! command -v admsXml >/dev/null 2>&1 \
	    || ! ldconfig -p | grep -q libngspice.so.0; then \
	  echo "installing ngspice, libngspice0 and adms from the system packages"; \
	  $(SUDO) apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y ngspice libngspice0 adms; \
	fi

$(STAMP): pyproject.toml | system-packages
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The CPU build of torch: a local wheel when the machine has one, else PyTorch's CPU index.
	# (An unpinned torch from PyPI pulls several GB of CUDA packages.)
	$(PY) -m pip install --no-index torch==$(TORCH_VERSION) \
	  || $(PY) -m pip install torch==$(TORCH_VERSION) --index-url https://download.pytorch.org/whl/cpu
	$(PY) -m pip install -e ".[all]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m pyaimc.demo --out $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) out .pytest_cache
