# Two commands do everything on a fresh machine:
#   make demo   create .venv if missing, install, run the main job on the embedded default
#   make test   create/update .venv, run the test suite (what CI runs)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test demo clean

# Reinstall only when the install recipe or the requirements change.
$(STAMP): setup.py pyproject.toml scripts/install.sh scripts/constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	scripts/install.sh $(PY) test
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	@echo "== vidsme demo =="
	@echo "The end-to-end benchmark (synthetic videos -> tiny targets -> attacks -> leaderboard)"
	@echo "has not landed yet (issues 3-5). This demo runs what exists: the attack registry"
	@echo "and the token-feature core, checked against the per-token reference loop."
	$(VENV)/bin/vidsme attacks
	$(PY) perf/bench_features.py --repeats 2 --loop-tokens 512 --check-tokens 256

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
