# Two commands on a fresh machine: `make demo` and `make test`. Both install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv browser demo demo-serve test test-fast lint typecheck unit bench clean certs screenshots

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

# pytest-xdist workers. The suite waits on sockets, servers and subprocesses as well as it
# computes, so one worker more than there are cores keeps every core busy.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadgroup

# The whole suite: lint, types, then every test in parallel (on SQLite, and on PostgreSQL too
# when GATEWAY_TEST_POSTGRES_URL names a server, as .ci/run does). Replay a failure's
# randomness with PYTEST_ARGS="--seed N" (the seed is printed in the header).
test: lint typecheck browser
	$(BIN)/pytest -q $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# The edit loop: every test but the slow end-to-end ones, on SQLite, no lint. `make test` is
# still the whole suite, and what CI runs.
test-fast: $(STAMP)
	env -u GATEWAY_TEST_POSTGRES_URL $(BIN)/pytest -q $(PYTEST_PARALLEL) -m "not slow" $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest -q tests/gateway/payments tests/gateway/kit tests/gateway/batches/test_validation.py

# Rewrites docs/screenshots/ from the browser tests (the suite itself writes to a temporary
# directory and never changes the repository).
screenshots: $(STAMP) browser
	GATEWAY_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest -q tests/e2e/test_dashboard_browser.py

# Benchmarks print figures; they assert nothing about time.
bench: $(STAMP)
	$(BIN)/python tests/bench/run_all.py
	$(BIN)/python tests/bench/bench_dashboard.py
	$(BIN)/python tests/bench/bench_api_memory.py

clean:
	rm -rf .demo .bench .pytest_cache .mypy_cache .ruff_cache
