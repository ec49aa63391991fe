# Two commands on a fresh machine: `make demo` and `make test`. Both install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv browser demo demo-serve test lint typecheck unit bench clean certs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's chromium and a CJK font for the dashboard's browser tests
browser:
	deploy/dev/ensure-browser.sh

certs: $(STAMP)
	$(BIN)/gateway certs init

demo: $(STAMP)
	$(BIN)/gateway demo

# the last demo's database in the operators' dashboard, on loopback with demo accounts
demo-serve: $(STAMP)
	test -f .demo/gateway.db || $(BIN)/gateway demo
	$(BIN)/gateway demo --serve-only

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole suite: lint, types, then every test (on SQLite, and on PostgreSQL too when
# GATEWAY_TEST_POSTGRES_URL names a server, as .ci/run does).
test: lint typecheck browser
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/gateway/payments tests/gateway/kit tests/gateway/batches/test_validation.py

# Benchmarks print figures; they assert nothing about time.
bench: $(STAMP)
	$(BIN)/python tests/bench/run_all.py
	$(BIN)/python tests/bench/bench_dashboard.py

clean:
	rm -rf .demo .bench .pytest_cache .mypy_cache .ruff_cache
