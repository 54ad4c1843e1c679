# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test tools lint format migrate bench lock clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: start TARS (a real Slack workspace with SLACK_BOT_TOKEN set, else the local sandbox)
run: $(STAMP)
	@if [ -n "$$SLACK_BOT_TOKEN" ]; then \
		$(BIN)/tars migrate && exec $(BIN)/tars serve; \
	else \
		exec $(BIN)/tars sandbox; \
	fi

## test: lint, then the whole suite on Postgres (127.0.0.1:5432) and again on SQLite
test: $(STAMP) tools lint
	TARS_TEST_DB=postgres $(BIN)/pytest
	TARS_TEST_DB=sqlite $(BIN)/pytest -q

## tools: Debian's prometheus (prometheus, promtool), prometheus-alertmanager, chromium and chromium-driver,
## which the tests run for real (the emoji font only makes the sandbox page's screenshots readable)
tools:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null \
			|| ! command -v prometheus-alertmanager >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
				prometheus prometheus-alertmanager chromium chromium-driver fonts-noto-color-emoji; \
		else \
			echo "prometheus, prometheus-alertmanager or chromium-driver is missing and cannot be installed here:" \
				"their tests skip (with CI=true they fail)"; \
		fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: print the benchmarks' numbers, one after another (needs Postgres on 127.0.0.1:5432)
# PYTHONPATH pins the code measured to this checkout, whatever checkout the venv's editable install points at.
# ack_latency first: it is the most sensitive to a busy machine, and scheduler_tick leaves Postgres writing out 50k rows.
bench: $(STAMP)
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/ack_latency.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/scheduler_tick.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/delivery.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/startup.py
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/alert_storm.py

## lock: re-pin the image's dependencies with hashes (requirements.lock), after changing pyproject.toml
lock: $(STAMP)
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
		-o requirements.lock pyproject.toml
	sed -i '/^--find-links/d' requirements.lock

migrate: $(STAMP)
	$(BIN)/tars migrate

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
