# Two entry points (see README): `make demo` and `make test`. Both set up a virtual
# environment in .venv with the system packages and Python dependencies first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# PYNQ's host classes need numpy < 2: they get their own environment (scripts/pynq-requirements.txt).
PYNQ_VENV ?= .venv-pynq

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed $(PYNQ_VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install-system-deps
	./scripts/install-system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,tvm,ray]"
	touch $@

$(PYNQ_VENV)/.installed: pyproject.toml scripts/pynq-requirements.txt
	$(PYTHON) -m venv $(PYNQ_VENV)
	$(PYNQ_VENV)/bin/python -m pip install -q --upgrade pip
	$(PYNQ_VENV)/bin/python -m pip install -q -r scripts/pynq-requirements.txt
	$(PYNQ_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $@

demo: setup
	$(BIN)/accelkit run digits_cnn --input zoo:digits_test_x --labels zoo:digits_test_y --compare ref --json results/digits.json

test: setup
	ACCELKIT_REQUIRE=tvm,pynq $(BIN)/python -m pytest -q

bench: setup
	$(BIN)/accelkit bench sim-speed --json results/sim-speed.json
	$(BIN)/accelkit bench model --json results/model.json
	$(BIN)/accelkit bench utilization --json results/utilization.json
	$(BIN)/accelkit bench fidelity --json results/fidelity.json

clean:
	rm -rf $(VENV) $(PYNQ_VENV) results .pytest_cache
