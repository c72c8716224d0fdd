# One-command entry points. `make lint test` is exactly what CI runs (.ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= OUT
# The suite runs in parallel, a test file per worker (its module fixtures built once): one worker per core,
# at most 4, since each holds its own TensorFlow. `make test TEST_WORKERS=` runs it in one process.
TEST_WORKERS ?= -n auto --maxprocesses 4 --dist loadfile

.PHONY: install lint test demo sample-store bench bench-quick default-identifier clean

# A virtual environment with the pinned CPU stack; rebuilt when the requirements change.
$(BIN)/lrid: requirements.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv==0.13.9
	$(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -r requirements.txt -e '.[cpu,ray,dev]'
	touch $@

install: $(BIN)/lrid

# Lint and type-check lrid/ (rules and settings in pyproject.toml); CI runs it before the tests.
lint: install
	$(BIN)/ruff format --check lrid
	$(BIN)/ruff check lrid
	$(BIN)/mypy

test: install
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest $(TEST_WORKERS) tests --nbmake notebooks

demo: install
	$(BIN)/lrid run pipelines/demo.yaml --out $(OUT)

# Every benchmark of issues #8, #14 (identify speed) and #16; tables print, JSON goes to benchmarks/results/. About 85 minutes, most of
# it the paper's reference grid searches (classification.py). `make bench-quick` is a smoke run (~8 min).
bench: install
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python benchmarks/run_all.py

bench-quick: install
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python benchmarks/run_all.py --quick

# Regenerates the small store the notebooks read (data/sample_store, well under 1 MB).
sample-store: install
	rm -rf data/sample_store
	$(BIN)/lrid generate pipelines/sample.yaml --store data/sample_store

# lrid's default identifier (lrid/identify/default_model/): generates the zoo into $(ZOO) (resumable; hours on
# 2 cores, README says what each step took), measures transfer on it, and fits the identifier with its model card
# (with the update-reach variants, since the benchmark measures them: --reach). Zoo draws hold 969 runs, two
# thirds of zoo.yaml's learned runs, so zoo designs compare at one size.
ZOO ?= $(OUT)/zoo/store
ZOO_SWEEPS = pipelines/zoo.yaml,pipelines/zoo_activations.yaml
default-identifier: install
	$(BIN)/lrid generate pipelines/zoo.yaml --store $(ZOO)
	$(BIN)/lrid generate pipelines/zoo_activations.yaml --store $(ZOO)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python benchmarks/transfer.py --store $(ZOO) --sweep $(ZOO_SWEEPS) --classifiers xgb --configs 8 --reach \
		--zoo-draws 5 --zoo-draw-runs 969 --fit-seeds 1,2,3
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python scripts/build_default_identifier.py --store $(ZOO) --sweep $(ZOO_SWEEPS) --classifier xgb

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
