# qcore: every target does its own set-up, so a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PLUGINS := plugins/qdata_cn plugins/qops plugins/qmodel_zoo plugins/qbacktest plugins/qrl plugins/qrecorder_mlflow plugins/qportfolio plugins/qanalysis plugins/qflight plugins/qray plugins/qmine plugins/qonline plugins/qmeta plugins/qmodel_xgb_cat
TEST_PLUGINS := tests/plugins/qdata_toy tests/plugins/qrl_toy_algo tests/plugins/qweight_toy
STAMP := $(VENV)/.installed
# Where `make run` keeps the embedded synthetic market.
MARKET ?= data/synth_cn
CONFIG ?= examples/workflow_lightgbm_alpha158.yaml

.PHONY: install system-deps run test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch goes in first, pinned: an unpinned torch (pulled by tianshou) would bring several GB of CUDA wheels.
$(STAMP): $(PY) pyproject.toml $(foreach p,$(PLUGINS) $(TEST_PLUGINS),$(p)/pyproject.toml) plugins/qops/setup.py \
		$(wildcard plugins/qops/qops/*.pyx plugins/qops/qops/*.h)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]" $(foreach p,$(PLUGINS) $(TEST_PLUGINS),-e $(p))
	touch $(STAMP)

install: $(STAMP)

$(MARKET)/calendars/day.txt: | $(STAMP)
	$(VENV)/bin/qcore data synth --out $(MARKET) --instruments 300 --days 2500 --seed 0

run: $(STAMP) $(MARKET)/calendars/day.txt
	QCORE_DATA=$(MARKET) $(VENV)/bin/qcore run $(CONFIG)

# Debian's chromium renders the HTML report in a browser test; installed when this machine allows (root + apt).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium is not installed: the browser test of the HTML report will be skipped"

test: $(STAMP) system-deps
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check qcore plugins tests benchmarks

# Speed against Qlib, built in its own environment (../shared/tools/qlib-baseline-env.sh); see benchmarks/README.md.
bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) build plugins/*/build plugins/qops/qops/*.so plugins/qops/qops/*.c
