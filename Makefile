# Two commands do everything on a fresh machine with Python 3.11+ and make: `make run`, `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint clean bench bench-smoke

install: $(STAMP)

# Re-installs only when pyproject.toml changes; `make install` twice is a no-op.
$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "pvem needs Python 3.11+")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/pvem serve --demo

lint: install
	$(BIN)/ruff check api controller tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

# Benchmarks (bench/README.md): the full run takes several minutes; the smoke run (CI) under a minute.
bench: install
	$(BIN)/python -m bench

bench-smoke: install
	$(BIN)/python -m bench --smoke

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
