# make matrix: build, run and report the matrix (MATRIX=other.yaml to override;
#              RESUME=1 continues the latest run with the cells it has not measured).
# make site:   write site/, a static site of every run under results/ (open site/index.html).
# make bench:  every question of bench/, each rewriting its section of bench/RESULTS.md (QUICK=1: a smoke run).
# make test:   every test; the Docker ones need a running engine, the executors ones a package index, the Slurm ones root and Slurm (see docs/testing.md).
PYTHON ?= python3
VENV ?= .venv
MATRIX ?= matrix.yaml
RUNNER = $(VENV)/bin/cudnn-matrix

.PHONY: matrix site test unit-test site-test executors-test docker-test slurm-test bench

matrix: $(VENV)/.installed
	$(RUNNER) run -f $(MATRIX) $(if $(RESUME),--resume)

site: $(VENV)/.installed
	$(RUNNER) publish

# One script a question; those that make environments (the jax venv and image) first.
bench: $(VENV)/.installed
	$(VENV)/bin/python bench/executor_overhead.py $(if $(QUICK),--quick)
	$(VENV)/bin/python bench/runner_cost.py $(if $(QUICK),--quick)
	$(VENV)/bin/python bench/distance_to_limit.py $(if $(QUICK),--quick)
	$(VENV)/bin/python bench/pipeline_overhead.py --matrix bench/input.yaml $(if $(QUICK),--quick)

# --durations: CI's time is close to its limit; the slowest tests, listed in every log, say where to win it back.
test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest --durations=25

# On every core (pytest-xdist): the fast tests share nothing but read-only fixtures, so they run in any order.
# Each worker collects every test module; with the compiled, assert-rewritten modules kept in __pycache__
# (even where PYTHONDONTWRITEBYTECODE is set) that is 2 s a worker instead of 4.
unit-test: $(VENV)/.installed
	PYTHONDONTWRITEBYTECODE= $(VENV)/bin/python -m pytest -n auto -m "not docker and not executors and not slurm and not browser and not ssh and not site"

site-test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n auto -m "site and not browser"

executors-test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m executors

docker-test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m docker

slurm-test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m slurm

# The virtual environment is made on first use and remade when the dependencies change.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@
