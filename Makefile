# Every target sets up its own virtual environment on first use, so a fresh machine needs
# nothing but Python 3.11+ and make.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
DEMO_SCENARIO ?= escooter-13s-urban

.PHONY: setup demo demo-fleet demo-analytics test bench lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/cellwarden simulate $(DEMO_SCENARIO) --duration 14400 --out out/demo

# a small mixed fleet, its edges on a local broker and the cloud; prints the dashboard's address
demo-fleet: setup
	$(VENV)/bin/cellwarden cloud demo

# three years of a mixed fleet with developing faults, analysed and scored against its truth
demo-analytics: setup
	$(VENV)/bin/cellwarden fleet simulate --packs 200 --days 1830 --seed 7 --out out/fleet
	$(VENV)/bin/cellwarden fleet analyse --history out/fleet/history.parquet --as-of 2026-01-01 --out out/fleet/analysis
	$(VENV)/bin/cellwarden fleet score --run out/fleet --as-of 2026-01-01

test: setup
	$(PY) -m pytest -n 2

bench: setup
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check src tests bench validation
	$(VENV)/bin/ruff format --check src tests bench validation

format: setup
	$(VENV)/bin/ruff format src tests bench validation
	$(VENV)/bin/ruff check --fix src tests bench validation

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
