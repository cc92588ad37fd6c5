# Every target bootstraps .venv from the pinned lock file; a second run installs nothing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_STAMP := $(VENV)/.installed-torch
LOGDIR ?= runs
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test lint bench tensorboard venv clean

venv: $(STAMP)

$(STAMP): requirements-lock.txt setup.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || { \
	  echo "error: python3 >= 3.11 is needed (found: $$($(PYTHON) --version 2>&1)). Install it, or run make PYTHON=/path/to/python3.11"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { echo "error: the venv module is missing: apt-get install python3-venv"; exit 1; }
	@command -v ffmpeg >/dev/null 2>&1 || echo "note: ffmpeg not found; it is needed only for video input (apt-get install ffmpeg / brew install ffmpeg)"
	@command -v espeak-ng >/dev/null 2>&1 || echo "note: espeak-ng not found; make test and the studies need it to speak the own-data fixtures (apt-get install espeak-ng / brew install espeak-ng)"
	@for d in /usr/share/fonts/truetype/noto /usr/share/fonts/noto /usr/share/fonts/google-noto-emoji /usr/share/fonts/TTF; do \
	  [ -f $$d/NotoColorEmoji.ttf ] && exit 0; done; \
	  echo "note: the Noto Color Emoji font not found; make test and the studies need it to draw the emoji fixtures (apt-get install fonts-noto-color-emoji)"
	@command -v fluidsynth >/dev/null 2>&1 && [ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || echo "note: fluidsynth or its soundfont not found; make test and the studies need them to play the instruments and effects fixtures (apt-get install fluidsynth timgm6mb-soundfont)"
	@command -v chromium >/dev/null 2>&1 || echo "note: chromium not found; make test needs it to drive the media search page headless (apt-get install chromium)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-lock.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(TORCH_STAMP): $(STAMP) requirements-torch.txt
	$(PY) -m pip install --quiet -r requirements-torch.txt
	touch $(TORCH_STAMP)

demo: $(STAMP)
	$(PY) -m experiments.demo --workdir=runs/demo

test: $(STAMP) $(TORCH_STAMP) lint
	$(PY) -m pytest -n 2 tests

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy alignment data_pipelines

bench: $(STAMP)
	$(PY) -m benchmarks.run

# Every run under $(LOGDIR) (each workdir holds its event files): make tensorboard LOGDIR=runs/demo
tensorboard: $(STAMP)
	$(VENV)/bin/tensorboard --logdir $(LOGDIR)

clean:
	rm -rf $(VENV) runs
