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

# Debian tools the suite runs for real: docker-compose checks the deployment files offline,
# chromium drives the console's browser test, graphviz draws journey diagrams as SVG. A fresh
# machine gets them here (as root).
SYSTEM_TOOLS := /usr/bin/docker-compose /usr/bin/chromium /usr/bin/dot
apt_install = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null || \
	(apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null)

/usr/bin/docker-compose:
	@echo "installing Debian's docker-compose for the deployment checks"
	$(call apt_install,docker-compose)

/usr/bin/dot:
	@echo "installing Debian's graphviz for journey diagrams"
	$(call apt_install,graphviz)

/usr/bin/chromium:
	@echo "installing Debian's chromium for the browser test"
	$(call apt_install,chromium)

test: lint $(SYSTEM_TOOLS)
	$(BIN)/pytest

bench: $(BIN)/journeyman
	$(BIN)/journeyman bench e2e --size $(SIZE) --json bench-e2e-$(SIZE).json

reliability: $(BIN)/journeyman
	rm -f tests/artifacts/reliability.json
	$(BIN)/pytest -p no:cacheprovider tests/faults tests/unit/test_hostile_input.py tests/unit/test_security.py tests/e2e/test_api_contract.py tests/integration/test_dead_letter_tools.py
	$(BIN)/python -c "import json; d = json.load(open('tests/artifacts/reliability.json')); [print(f'{k:28} {v}') for k, v in sorted(d.items())]"

clean:
	rm -rf $(VENV) .journeyman .mypy_cache .pytest_cache .ruff_cache
