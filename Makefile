# The single entry point: `make run` starts the whole system, `make test` runs the suite.
# Everything a fresh machine needs (venv, packages, Kafka jars) is installed on demand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: help install kafka-jars system-packages bench-packages run test test-unit lint schemas bench profile floor clean

# Debian packages the tests use: kcat proves a non-Python client can speak the wire format,
# chromium runs the browser test (Playwright cannot download its own browser here).
APT_PACKAGES := kcat chromium
# `make bench` runs Celery and Dramatiq against Debian's Redis.
BENCH_APT_PACKAGES := redis-server

help:
	@echo "make run     start Kafka, Ray, the working blocks and the analyzer (Ctrl-C stops)"
	@echo "make test    run the whole test suite against a real broker and real Ray"
	@echo "make lint    ruff and mypy"
	@echo "make bench   run the benchmarks in bench/"
	@echo "make profile where a job's time goes: CPU, flame graphs, Kafka requests, latency by hop"
	@echo "make floor   the design's floor: the same workloads with a bare Kafka relay and Ray"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# Jars are cached in ~/.cache/computeinfra (COMPUTEINFRA_CACHE), not in the repo.
kafka-jars: install
	$(BIN)/computeinfra kafka fetch

run: kafka-jars
	$(BIN)/computeinfra up $(if $(BLOCKS),--blocks $(BLOCKS),)

# $(call apt_install,packages): install the ones whose command is missing (package = command).
define apt_install
	@missing=""; for p in $(1); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  echo "installing$$missing with apt-get"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

system-packages:
	$(call apt_install,$(APT_PACKAGES))

bench-packages:
	$(call apt_install,$(BENCH_APT_PACKAGES))

test: kafka-jars system-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

schemas: install
	$(BIN)/computeinfra schema --out docs/schemas

# BENCH_ARGS=--quick for a smoke run; the README's table is rewritten either way.
bench: kafka-jars bench-packages
	$(BIN)/python bench/run.py --readme $(BENCH_ARGS)

# Where a job's time goes (issue #15, docs/performance.md): CPU seconds per process kind,
# flame graphs, Kafka requests per job as the broker counts them, latency hop by hop.
profile: kafka-jars
	$(BIN)/python bench/profile.py $(PROFILE_ARGS)

# The design's floor (docs/performance.md, changes 14 and 15): the same workloads through a
# bare Kafka relay and bare Ray actors, none of our code, to tell our cost from the design's
# (FLOOR_ARGS="--only latency --rate 1400,1900": latency near our half load).
floor: kafka-jars
	$(BIN)/python bench/floor.py $(FLOOR_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache results
