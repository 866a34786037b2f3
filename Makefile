# Two entry points: `make demo` (set up and run the main job) and `make test`; `make lint` runs ruff.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   ?= ../shared/data
TORCH_PIN := torch==2.13.0

.PHONY: demo test lint venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Pin torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e '.[test]'
	# Optional: the ONNX export and its tests (skipped where this extra cannot be installed).
	$(PY) -m pip install -q --retries 0 --timeout 20 -e '.[onnx]' \
		|| echo "note: the optional onnx extra was not installed; the ONNX tests will be skipped"
	# Optional: caloclouds produce on Dask (and its tests, skipped where this extra cannot be installed).
	$(PY) -m pip install -q --retries 0 --timeout 20 -e '.[production]' \
		|| echo "note: the optional production extra was not installed; the caloclouds produce tests will be skipped"
	touch $@

venv: $(VENV)/.installed

BUNDLE := caloclouds/models/default

# The main job: 1000 ILD photon showers (10-90 GeV) with the bundled model, projected onto ILD
# cells, written to demo_showers.root; then 200 photons arriving at an angle (theta 0-40 deg, any
# phi), written with their directions to demo_showers_angled.root. Without a bundled model it
# converts the EDM4hep event.
demo: venv
	@if [ -f $(BUNDLE)/bundle.json ]; then \
	  $(VENV)/bin/caloclouds generate --energy-range 10 90 -n 1000 --geometry ild -o demo_showers.root --overwrite && \
	  $(VENV)/bin/caloclouds generate --energy-range 10 90 -n 200 --theta-range 0 40 --phi-range 0 360 \
	    --geometry ild -o demo_showers_angled.root --overwrite && \
	  $(VENV)/bin/caloclouds info demo_showers_angled.root; \
	else \
	  echo "no bundled model yet: converting the shared EDM4hep event instead"; \
	  $(VENV)/bin/caloclouds convert $(DATA)/ild_single_photon.edm4hep.root -o demo_edm4hep.h5 && \
	  $(VENV)/bin/caloclouds info demo_edm4hep.h5; \
	fi

# Everything CI needs, without the tests marked slow or gpu (see pyproject.toml).
test: venv
	$(PY) -m pytest -q

# Lint and format check (ruff, configured in pyproject.toml); never rewrites files. `ruff format .` fixes the format.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
