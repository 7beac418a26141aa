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
	$(BIN)/python -m pip install -q -e ".[test,tvm]"
	touch $@

demo: setup
	$(BIN)/accelkit run digits_cnn --input zoo:digits_test_x --labels zoo:digits_test_y --compare ref --json results/digits.json

test: setup
	ACCELKIT_REQUIRE=tvm $(BIN)/python -m pytest -q

bench: setup
	$(BIN)/accelkit bench sim-speed --json results/sim-speed.json
	$(BIN)/accelkit bench model --json results/model.json
	$(BIN)/accelkit bench utilization --json results/utilization.json
	$(BIN)/accelkit bench fidelity --json results/fidelity.json

clean:
	rm -rf $(VENV) results .pytest_cache
