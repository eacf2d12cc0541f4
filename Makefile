# The two README commands:
#   make run    set up .venv, then train, evaluate and test the reference pipeline
#   make test   set up .venv, then run the whole suite: pytest --ml, with coverage
# Both work on a fresh machine with Python 3.11 and pip only.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mltest-installed
PYTEST_ARGS ?=

# No telemetry, ever.
export BENTOML_DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
# The pretrained encoder loads packaged weights: never try the Hugging Face hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv run test lint typecheck clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: a looser requirement pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $(STAMP)

venv: $(STAMP)

# The main job: prepare -> baselines -> train -> evaluate (prints the table), then the
# acceptance tests on the model it just trained (targets, behaviour, splits), then the
# served smoke: package, serve on a free port, send the test split, monitor, stop.
run: venv
	$(BIN)/python -m reference_pipeline run --out artifacts
	PIPELINE_ARTIFACTS=artifacts $(BIN)/python -m pytest --ml tests/pipeline/acceptance \
		-p no:cacheprovider --ml-report artifacts/mltest-report.json
	$(BIN)/python -m reference_pipeline.smoke --run-dir artifacts

test: venv
	$(BIN)/python -m coverage erase
	$(BIN)/python -m coverage run -m pytest --ml $(PYTEST_ARGS)
	$(BIN)/python -m coverage combine --quiet
	$(BIN)/python -m coverage report

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .nox .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
