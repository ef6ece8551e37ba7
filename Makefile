# The two commands of the README:
#   make up     install everything and start the platform on this machine
#   make test   install everything the tests need and run the whole suite
# Everything is installed by these rules; nothing by hand.

PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install up test bench chromium slurm build-ext clean

# A virtual environment any local user can run (Debian's /usr/bin/python3, not a root-only
# pyenv), so per-user servers can use it too.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

node_modules/.install-stamp: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

jupyter_mlops/labextension/package.json: node_modules/.install-stamp $(BIN)/python $(shell find labextension/src labextension/style -type f) labextension/tsconfig.json
	$(BIN)/pip install -q "jupyter-builder>=1.2"
	npm run --silent build:prod

$(VENV)/.install-stamp: pyproject.toml jupyter_mlops/labextension/package.json
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.install-stamp

up: install
	$(BIN)/jupyter-mlops up $(ARGS)

chromium:
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
	@# kubectl talks to the Kubernetes API stand-in in the tests (Debian's kubernetes-client).
	@command -v kubectl >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q kubernetes-client; }

# A real single-machine Slurm cluster for tests/slurm (the tests start its daemons themselves).
slurm:
	@command -v slurmctld >/dev/null && command -v munged >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge; }

# The lab extension's lint and unit tests take seconds: they run first and stop a broken tree early.
test: install chromium slurm
	npm run --silent lint
	npm test --silent
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every benchmark against its named peer, one after the other (tens of minutes; each prints
# medians and the ratio, results in benchmarks/results/); fails if one missed its goal.
bench: install chromium
	@status=0; for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || status=1; done; exit $$status

clean:
	rm -rf $(VENV) node_modules labextension/lib jupyter_mlops/labextension
