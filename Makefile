# Two commands do everything on a fresh machine:
#   make demo     create .venv if missing, install, run the main job on the embedded default
#   make test     create/update .venv, run the test suite (what CI runs)
# and one more runs the strongest attacks:
#   make shadows  the demo's targets + a 400 + 400 one, 16 shadow models each, LiRA/RMIA ceilings (~40 min on 2 cores)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test demo demo-models shadows clean

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
DEMO_MODELS := runs/demo/models
SYNTH_SPLITS := synth-mcqa synth-oeqa synth-caption
DEMO_TARGETS := mcqa-full oeqa-lora caption-projector
V := $(VENV)/bin/vidsme
T := scripts/timed.sh  # T LABEL CMD: runs CMD and prints its wall time ([time] lines in the demo's log)

# The demo's data and models (make demo and make shadows both start here; finished stages are reused).
demo-models: $(STAMP)
	$(T) splits $(V) splits build $(SYNTH_SPLITS) synth-pretrain synth-probe --video-root $(DEMO_VIDEOS)
	$(T) verify $(V) splits verify $(SYNTH_SPLITS) synth-pretrain synth-probe --video-root $(DEMO_VIDEOS)
	$(T) audit $(V) splits audit $(SYNTH_SPLITS) --video-root $(DEMO_VIDEOS) --cache-dir runs/demo/cache
	$(T) base $(V) train base configs/base/tiny.yaml data.video_root=$(DEMO_VIDEOS) output_dir=$(DEMO_MODELS)/tiny-base
	for t in $(DEMO_TARGETS); do \
	  $(T) target-$$t $(V) train target configs/targets/$$t.yaml base=$(DEMO_MODELS)/tiny-base \
	    data.video_root=$(DEMO_VIDEOS) output_dir=$(DEMO_MODELS)/$$t || exit 1; done

demo: demo-models
	@echo "== vidsme demo: synthetic data -> splits -> verify -> audit -> base -> 3 targets -> 4 shadows -> benchmark -> leaderboard =="
	$(T) population $(V) splits build synth-mcqa-population --video-root $(DEMO_VIDEOS)
	$(T) shadows $(V) train shadows configs/targets/mcqa-full.yaml --count 4 --offline base=$(DEMO_MODELS)/tiny-base \
	  data.video_root=$(DEMO_VIDEOS) output_dir=$(DEMO_MODELS)/mcqa-full
	$(T) benchmark $(V) benchmark configs/suites/demo.yaml
	@echo "== done: results, per-sample scores, plots and the leaderboard under runs/demo/benchmark =="
	@echo "   open runs/demo/benchmark/leaderboard.html; rerunning make demo reuses every finished stage"
	@echo "   the strongest attacks with 16 shadow models per target: make shadows (about 40 min)"

SHADOW_MODELS := runs/shadows/models
shadows: demo-models
	@echo "== vidsme shadows: populations + a 400 + 400 split -> its target -> 16 online shadows per target -> benchmark =="
	$(V) splits build synth-mcqa-population synth-oeqa-population synth-caption-population synth-mcqa-large \
	  synth-mcqa-large-population --video-root $(DEMO_VIDEOS)
	$(V) train target configs/targets/mcqa-full-large.yaml base=$(DEMO_MODELS)/tiny-base \
	  data.video_root=$(DEMO_VIDEOS) output_dir=$(SHADOW_MODELS)/mcqa-full-large
	for t in $(DEMO_TARGETS); do \
	  $(V) train shadows configs/targets/$$t.yaml --count 16 --quiet base=$(DEMO_MODELS)/tiny-base \
	    data.video_root=$(DEMO_VIDEOS) output_dir=$(DEMO_MODELS)/$$t \
	    --shadows-dir $(SHADOW_MODELS)/$$t-shadows-online-16 || exit 1; done
	$(V) train shadows configs/targets/mcqa-full-large.yaml --count 16 --quiet base=$(DEMO_MODELS)/tiny-base \
	  data.video_root=$(DEMO_VIDEOS) output_dir=$(SHADOW_MODELS)/mcqa-full-large \
	  --shadows-dir $(SHADOW_MODELS)/mcqa-full-large-shadows-online-16
	$(V) benchmark configs/suites/shadows.yaml
	@echo "== done: runs/shadows/benchmark/leaderboard.html (lira and rmia on every target, each target's ceiling marked) =="

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
