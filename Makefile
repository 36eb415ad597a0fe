# The two commands of the README's quick start. Each makes its own virtualenv, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

SIZE ?= default

.PHONY: demo test lint bench clean

$(BIN)/journeyman: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/journeyman
	$(BIN)/journeyman demo

lint: $(BIN)/journeyman
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

test: lint
	$(BIN)/pytest

bench: $(BIN)/journeyman
	$(BIN)/journeyman bench e2e --size $(SIZE) --json bench-e2e-$(SIZE).json

clean:
	rm -rf $(VENV) .journeyman .mypy_cache .pytest_cache .ruff_cache
