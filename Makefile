# Two entry points: `make demo` (the main job on built-in sample data) and `make test`.
# Both create .venv from nothing and install the project into it.
# On a machine without a GPU, TORCH_INDEX=https://download.pytorch.org/whl/cpu
# installs PyTorch's CPU-only build first (no CUDA libraries; see README, Set up).
PYTHON ?= python3
TORCH_INDEX ?=
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   := demo

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(PY) -m pip install --disable-pip-version-check -q torch torchvision --index-url $(TORCH_INDEX))
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# The main job on built-in sample data: kernels sized for the tiny preset's
# 80-px crops -> synthetic pairs -> a short training of the tiny preset mixed
# 2:1 with a GoPro-layout sample -> eval of the last generator on the held-out
# frames (not best.pt, which validation on those same frames picked), its export as a
# model folder (safetensors, config.json, model card: docs/export.md), deblur through that folder.
# The run's settings are configs/tiny.yaml (preset tiny, mix 2:1, 300 steps,
# validation every 100); the paths are given again so that DEMO=... moves them.
# The tiny preset's content loss is on pixels (the per-image PSNR): the paper's
# perceptual loss needs VGG19 ImageNet weights, which the demo does not download.
demo: $(STAMP)
	mkdir -p $(DEMO)
	$(VENV)/bin/blurgen make-kernels -n 2000 --size 21 --max-len 19 --seed 0 --out $(DEMO)/kernels.h5 --overwrite --preview
	$(VENV)/bin/blurgen show-kernels $(DEMO)/kernels.h5 --limit 16 --png $(DEMO)/kernels.png
	$(PY) data/make_sample_photos.py --out $(DEMO)/photos -n 48 --seed 0
	$(VENV)/bin/blurgen synthesize --src $(DEMO)/photos --out $(DEMO)/shards --kernels $(DEMO)/kernels.h5 \
	    --crop 128 --crops-per-image 4 --shard-size 64 --overwrite
	$(VENV)/bin/blurgen verify $(DEMO)/shards
	$(VENV)/bin/blurgen inspect $(DEMO)/shards --samples 2 --png $(DEMO)/samples.png
	$(PY) data/make_gopro_sample.py --out $(DEMO)/GOPRO_Large --seed 0 --overwrite
	rm -rf $(DEMO)/run
	$(VENV)/bin/trainer fit --config configs/tiny.yaml --shards $(DEMO)/shards --gopro $(DEMO)/GOPRO_Large \
	    --out $(DEMO)/run
	$(VENV)/bin/trainer curves $(DEMO)/run
	$(VENV)/bin/trainer eval --checkpoint $(DEMO)/run/last.pt --gopro $(DEMO)/GOPRO_Large --gopro-scale 0.5 --png $(DEMO)/report.png
	$(VENV)/bin/trainer export --checkpoint $(DEMO)/run/last.pt --model-folder $(DEMO)/model --overwrite
	$(VENV)/bin/trainer deblur --model $(DEMO)/model $(DEMO)/GOPRO_Large/test/*/blur --out $(DEMO)/deblurred --overwrite

bench: $(STAMP)
	$(PY) bench/kernels.py
	$(PY) bench/synthesize.py
	$(PY) bench/loader.py
	$(PY) bench/readers.py
	$(PY) bench/train_step.py
	$(PY) bench/deblur.py
	$(PY) bench/loader.py --verify
	$(PY) bench/learning.py --out bench-learning

clean:
	rm -rf $(DEMO) bench-learning .pytest_cache
