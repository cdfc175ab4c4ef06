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

DEMO_VIDEOS := runs/demo/videos
SYNTH_SPLITS := synth-mcqa synth-oeqa synth-caption

demo: $(STAMP)
	@echo "== vidsme demo: synthetic data -> splits -> verify -> audit -> base -> 3 targets -> benchmark -> leaderboard =="
	$(VENV)/bin/vidsme splits build $(SYNTH_SPLITS) synth-pretrain --video-root $(DEMO_VIDEOS)
	$(VENV)/bin/vidsme splits verify $(SYNTH_SPLITS) synth-pretrain --video-root $(DEMO_VIDEOS)
	$(VENV)/bin/vidsme splits audit $(SYNTH_SPLITS) --video-root $(DEMO_VIDEOS) --cache-dir runs/demo/cache
	$(VENV)/bin/vidsme train base configs/base/tiny.yaml data.video_root=$(DEMO_VIDEOS) output_dir=runs/demo/models/tiny-base
	for t in mcqa-full oeqa-lora caption-projector; do \
	  $(VENV)/bin/vidsme train target configs/targets/$$t.yaml base=runs/demo/models/tiny-base \
	    data.video_root=$(DEMO_VIDEOS) output_dir=runs/demo/models/$$t || exit 1; done
	$(VENV)/bin/vidsme benchmark configs/suites/demo.yaml
	@echo "== done: results, per-sample scores, plots and the leaderboard under runs/demo/benchmark =="
	@echo "   open runs/demo/benchmark/leaderboard.html; rerunning make demo reuses every finished stage"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
