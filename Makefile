# kvmviz developer tasks. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
KVMVIZ_PORT ?= 8888
KVMVIZ_DASHBOARD_PORT ?= 8866
PYTEST_ARGS ?=

# The install stamp is named after a checksum of pyproject.toml, and also depends on it:
# editing the dependencies reinstalls; a second `make test` with nothing changed installs nothing.
STAMP := $(VENV)/.installed-$(firstword $(shell cksum < pyproject.toml))

.DEFAULT_GOAL := help
.PHONY: help install lab dashboard test format bench clean strip nav claims

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP) ## create the venv (VENV, default .venv) and install kvmviz[dev] into it (skipped when up to date)

# A workshop room may have no internet: no news feed, no update check against PyPI, and no
# pop-up asking whether to fetch news (jupyter/lab-settings/overrides.json sets the answer).
# ui-tests/test_lab.py starts JupyterLab with the same flags.
LAB_OFFLINE := --LabApp.news_url=None \
	--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
	--LabApp.app_settings_dir=$(CURDIR)/jupyter/lab-settings

lab: $(STAMP) ## start JupyterLab on notebooks/ (prints the URL; opens a browser only with a display)
	@open=False; \
	if [ -z "$${CI:-}" ] && { [ -n "$${DISPLAY:-}" ] || [ -n "$${WAYLAND_DISPLAY:-}" ] || \
		[ "$$(uname -s)" = Darwin ]; }; then open=True; fi; \
	root=; if [ "$$(id -u)" = 0 ]; then root=--allow-root; fi; \
	set -x; exec $(VENV)/bin/jupyter lab notebooks/ --port=$(KVMVIZ_PORT) \
		--ServerApp.open_browser=$$open $$root $(LAB_OFFLINE)

# Voila runs dashboard/toggle.ipynb and shows its outputs only. The `kvmviz` template
# (dashboard/jupyter/voila/templates/) is Voila's `lab` one without its CDN links: nothing is
# fetched from outside localhost. No --allow-root needed: Voila has no root check.
# Every page load starts a kernel of its own, and closing or reloading the page shuts it down
# (the template gives Voila's shutdown request the XSRF cookie it needs). A browser that
# crashes sends nothing: the culler stops a kernel after two hours with no page connected to
# it and no message (checked every 5 minutes); a page left open keeps its kernel however long
# it stays idle (cull_connected is False). No kernel is started ahead (no preheat): a page
# takes a few seconds to show its numbers, every time.
dashboard: $(STAMP) ## serve chapter 04's kernel toggle without code, for a projector (Voila)
	@echo "kvmviz dashboard: http://127.0.0.1:$(KVMVIZ_DASHBOARD_PORT)/ (Ctrl-C stops it)"
	@export JUPYTER_PATH="$(CURDIR)/dashboard/jupyter$${JUPYTER_PATH:+:$$JUPYTER_PATH}"; \
	set -x; exec $(VENV)/bin/voila dashboard/toggle.ipynb --port=$(KVMVIZ_DASHBOARD_PORT) \
		--Voila.port_retries=0 --no-browser --Voila.ip=127.0.0.1 --template=kvmviz \
		--MappingKernelManager.cull_idle_timeout=7200 --MappingKernelManager.cull_interval=300

test: $(STAMP) ## lint, check formatting, run all tests (notebooks executed too)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

format: $(STAMP) ## format the code and apply ruff's safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP) ## run the engine benchmark against its reference implementation
	$(VENV)/bin/python benchmarks/engine.py

strip: ## remove outputs and execution counts from notebooks/*.ipynb
	$(PYTHON) tools/strip_notebooks.py notebooks

claims: $(STAMP) ## run the chapters and documents and write the model's numbers into their prose (docs/claims.md)
	$(VENV)/bin/python tools/claims.py --write

nav: ## regenerate the navigation cells of notebooks/NN-*.ipynb (and 00-index's chapter table)
	$(PYTHON) tools/nav.py notebooks

clean: ## remove the venv and caches (never sources, notebooks or figures)
	if [ -f $(VENV)/pyvenv.cfg ]; then rm -rf $(VENV); fi
	rm -rf .pytest_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
