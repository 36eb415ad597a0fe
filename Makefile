# The two commands of the README's quick start. Each makes its own virtualenv, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

SIZE ?= default

.PHONY: demo test lint bench reliability clean

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

# The console's browser test drives Debian's chromium; a fresh machine gets it here (as root).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@echo "installing Debian's chromium for the browser test"
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

test: lint $(CHROMIUM)
	$(BIN)/pytest

bench: $(BIN)/journeyman
	$(BIN)/journeyman bench e2e --size $(SIZE) --json bench-e2e-$(SIZE).json

reliability: $(BIN)/journeyman
	rm -f tests/artifacts/reliability.json
	$(BIN)/pytest -p no:cacheprovider tests/faults tests/unit/test_hostile_input.py tests/unit/test_security.py tests/e2e/test_api_contract.py tests/integration/test_dead_letter_tools.py
	$(BIN)/python -c "import json; d = json.load(open('tests/artifacts/reliability.json')); [print(f'{k:28} {v}') for k, v in sorted(d.items())]"

clean:
	rm -rf $(VENV) .journeyman .mypy_cache .pytest_cache .ruff_cache
