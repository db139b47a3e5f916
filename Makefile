# Two commands do everything on a fresh machine with Python 3.11+ and make: `make run`, `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install browser run test test-sqlite test-postgres lint clean bench bench-smoke

# The PostgreSQL half of `make test` (each run creates, and drops, a database of its own on this server).
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

install: $(STAMP)

# Re-installs only when pyproject.toml changes; `make install` twice is a no-op.
$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "pvem needs Python 3.11+")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The console's browser tests drive Debian's chromium: installed here when missing and we may (root with
# apt-get); otherwise those tests are skipped with the reason.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && apt-get install -y -qq chromium; \
	fi

run: install
	$(BIN)/pvem serve --demo

lint: install
	$(BIN)/ruff check api controller tests bench
	$(BIN)/mypy

# The whole suite on SQLite, then again on PostgreSQL when a server answers on 127.0.0.1:5432
# (or PVEM_TEST_DATABASE_URL names one).
test: lint browser test-sqlite test-postgres

test-sqlite: install
	env -u PVEM_TEST_DATABASE_URL $(BIN)/pytest -q

test-postgres: install
	@url="$${PVEM_TEST_DATABASE_URL:-$(PG_TEST_URL)}"; \
	if [ -n "$$PVEM_TEST_DATABASE_URL" ] || $(BIN)/python -c 'import socket; socket.create_connection(("127.0.0.1", 5432), 2)' 2>/dev/null; then \
		echo "PostgreSQL half: PVEM_TEST_DATABASE_URL=$$url"; \
		PVEM_TEST_DATABASE_URL="$$url" $(BIN)/pytest -q; \
	else \
		echo "PostgreSQL half skipped: no server answers on 127.0.0.1:5432 (set PVEM_TEST_DATABASE_URL to run it)"; \
	fi

# Benchmarks (bench/README.md): the full run takes several minutes; the smoke run (CI) under a minute.
bench: install
	$(BIN)/python -m bench

bench-smoke: install
	$(BIN)/python -m bench --smoke

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
