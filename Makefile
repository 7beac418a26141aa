# Two entry points (see README): `make demo` and `make test`. Both set up a virtual
# environment in .venv with the system packages and Python dependencies first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install-system-deps
	./scripts/install-system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,tflite]"
	touch $@

demo: setup
	$(BIN)/accelkit layer conv2d --height 28 --width 28 --in-channels 16 --out-channels 32 --kernel 3 --activation RELU --json results/demo.json

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/accelkit bench sim-speed --json results/sim-speed.json

clean:
	rm -rf $(VENV) results .pytest_cache
