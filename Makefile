# Every target sets itself up: a virtual environment with the pinned dependencies of
# requirements.lock, and the project installed into it in editable mode.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install tools run test test-fast model lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## make tools: programs the tests drive that are not Python packages (promtool, from Debian's
## prometheus package; headless Chromium and a CJK font for the browser test), installed when missing.
tools:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing promtool (Debian package prometheus)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } \
	  || { echo "promtool is needed by the monitoring tests: install Debian's prometheus package" >&2; exit 1; }; }
	@test -x /usr/bin/chromium && dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || { \
	  echo "installing chromium and fonts-wqy-microhei (Debian packages) for the browser test"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei >/dev/null; } \
	  || { echo "the browser test needs Debian's chromium and fonts-wqy-microhei packages" >&2; exit 1; }; }

## make run: the whole system on the embedded broker and SQLite, fed by the demo world.
run: install
	$(BIN)/laborwatch run

## make test: the whole suite (unit, integration on a real broker and database, end to end).
test: install tools
	$(BIN)/python -m pytest

## make test-fast: unit tests only.
test-fast: install
	$(BIN)/python -m pytest tests/unit

## make model: the shipped default model, reproducibly: a simulated district of 600 firms over
## 36 months (seed 7), trained and promoted into models/shipped/, which `run` scores with
## (about 7 minutes on 2 cores; the same version every time).
MODEL_WORLD := var/model-world
model: install
	rm -rf $(MODEL_WORLD)
	$(BIN)/laborwatch simulate $(MODEL_WORLD) --firms 600 --months 36 --seed 7 --start 2022-07-01
	LABORWATCH_MODEL_DIR=$(MODEL_WORLD)/registry $(BIN)/laborwatch models train --seed 0 \
	  --enterprises $(MODEL_WORLD)/enterprises.csv --signals $(MODEL_WORLD)/signals.jsonl \
	  --disputes $(MODEL_WORLD)/disputes.jsonl > $(MODEL_WORLD)/train.out
	tail -n 1 $(MODEL_WORLD)/train.out > $(MODEL_WORLD)/version
	LABORWATCH_MODEL_DIR=$(MODEL_WORLD)/registry LABORWATCH_HOME=$(MODEL_WORLD) \
	  $(BIN)/laborwatch models promote "$$(cat $(MODEL_WORLD)/version)"
	rm -rf models/shipped && cp -r $(MODEL_WORLD)/registry models/shipped

## make lock: re-pin requirements.lock from a fresh resolution of pyproject.toml, and
## requirements-runtime.lock (the image's) from it without the test extra.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[test]'
	( echo '# Exact versions of everything `make` installs (runtime and test). Regenerate with `make lock`.'; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^laborwatch' ) > requirements.lock
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -c requirements.lock -e .
	( echo '# Exact versions of what the project needs at run time (the Docker image installs this), the same'; \
	  echo '# pins as requirements.lock without the test tools. Regenerate with `make lock`.'; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^laborwatch' ) > requirements-runtime.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) var .pytest_cache test-artifacts

## make bench: signals/s of a bare Faust agent vs the full pipeline on the embedded broker, alert
## latency, and scoring cost per row batched vs single-row (figures also in benchmarks/last-run.json).
.PHONY: bench
bench: install
	$(BIN)/python -m benchmarks.pipeline
