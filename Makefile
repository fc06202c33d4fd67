# Every command does its own setup: a virtualenv in .venv, `npm ci` in ingest-node, and the local BigQuery
# emulator in its own virtualenv .venv-bqemu (its pins clash with the processor's).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BQEMU_VENV := .venv-bqemu
STAMPS := .stamps

FILES ?= data/sample/binance-spot-btcusdt-trades.gz
EXCHANGE ?= binance
# SYMBOL (the seeds' run-serve SYMBOL=BTC-USDT) and SYMBOLS (several: SYMBOLS=BTC-USDT,ETH-USDT) are one
# setting, main's --symbols, which takes our form (BTC-USDT) and the exchange's (btcusdt) alike
SYMBOL ?= BTC-USDT
SYMBOLS ?= $(SYMBOL)
SPEED ?= max
# replay, run-serve and run-persist hand REDIS_URL to the processor in its environment, never as an
# argument, so a password in it stays out of the process list; give it as `REDIS_URL=... make replay` (an
# argument of make would show in make's own)
REDIS_URL ?= redis://localhost:6379/0
replay run-serve run-persist: export REDIS_URL := $(REDIS_URL)

BQ_PROJECT ?= local-project

.PHONY: setup demo replay bq-emulator run-serve run-persist test lint bench bench-env soak soak-1000 vectors clean

setup: $(STAMPS)/python $(STAMPS)/node $(STAMPS)/bqemu

$(STAMPS)/python: processor-py/pyproject.toml
	@mkdir -p $(STAMPS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e 'processor-py[dev]'
	@touch $@

# bqemulator, with DuckDB's spatial extension put in place offline under its private HOME
$(STAMPS)/bqemu: processor-py/requirements-bqemu.txt
	@mkdir -p $(STAMPS)
	rm -rf $(BQEMU_VENV)
	$(PYTHON) -m venv $(BQEMU_VENV)
	$(BQEMU_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BQEMU_VENV)/bin/python -m pip install --quiet -r processor-py/requirements-bqemu.txt
	mkdir -p $(BQEMU_VENV)/home
	HOME=$(CURDIR)/$(BQEMU_VENV)/home $(BQEMU_VENV)/bin/python -c \
	  "from duckdb_extensions import import_extension; import_extension('spatial')"
	@touch $@

$(STAMPS)/node: ingest-node/package.json ingest-node/package-lock.json
	@mkdir -p $(STAMPS)
	cd ingest-node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## make demo [TRANSPORT=inmemory]: a trimmed real Binance recording through the whole pipeline, candles
## read back with LiveFeatureStream (from a private redis-server, or the in-memory bus without Redis)
TRANSPORT ?= auto
demo: setup
	$(PY) -m market_data_tick_handler.demo data/sample/binance-spot-btcusdt-trades.gz --speed 20 --transport $(TRANSPORT)

## REDIS_URL=redis://HOST:PORT/DB make replay FILES="a.gz b.gz" EXCHANGE=binance SYMBOLS=btcusdt SPEED=max
## MODES: streaming.yaml's names, comma-separated: serve (Redis), persist (candle tables), ticks (tick
## tables), or main's own mode names (streaming-candles-serve, ...);
## ARGS: more of main's options, e.g. ARGS="--bigquery-emulator http://127.0.0.1:9050,127.0.0.1:9060"
MODES ?= serve
ARGS ?=
MODE_serve := streaming-candles-serve
MODE_persist := streaming-candles-bigquery
MODE_ticks := streaming-ticks-bigquery
comma := ,
space := $(subst ,, )
# each name of MODES as main's --mode (a name without a MODE_ line passes as it is, and main names it if wrong)
MODE_FLAGS = $(subst $(space),$(comma),$(foreach m,$(subst $(comma), ,$(MODES)),$(or $(MODE_$(m)),$(m))))
replay: setup
	$(PY) -m market_data_tick_handler.main --mode $(MODE_FLAGS) --source replay \
	  --files $(FILES) --exchange $(EXCHANGE) --symbols $(SYMBOLS) --speed $(SPEED) $(ARGS)

## make bq-emulator: a local BigQuery (bqemulator) on 127.0.0.1:9050 (REST) and :9060 (gRPC) until Ctrl-C, for
## persist mode offline: main --mode streaming-candles-bigquery --bigquery-emulator http://127.0.0.1:9050,127.0.0.1:9060
bq-emulator: setup
	$(PY) -m market_data_tick_handler.devtools.bq_emulator --project $(BQ_PROJECT) --rest-port 9050 --grpc-port 9060

## [REDIS_URL=...] make run-serve SYMBOL=BTC-USDT: live from the exchange (needs network and a Redis at REDIS_URL)
run-serve: setup
	$(PY) -m market_data_tick_handler.main --mode streaming-candles-serve --config streaming.yaml \
	  --symbols $(SYMBOLS) --exchange $(EXCHANGE) --print-candles $(ARGS)

## make run-persist SYMBOLS=BTC-USDT,ETH-USDT: live from the exchange into the candle tables (persist mode):
## the local store (data/warehouse) by default, BigQuery when GCP_PROJECT_ID is set (credentials from the
## environment: GOOGLE_APPLICATION_CREDENTIALS or ADC); MODES=persist,ticks adds the tick tables,
## MODES=serve,persist Redis too (at REDIS_URL)
run-persist: MODES = persist
run-persist: setup
	$(PY) -m market_data_tick_handler.main --mode $(MODE_FLAGS) --config streaming.yaml \
	  --symbols $(SYMBOLS) --exchange $(EXCHANGE) $(ARGS)

## make test: lint, the Node tests, the Python tests and the cross-process tests. Three streams at once (the
## cross-process tests mostly wait on their processes, the two unit suites mostly compute; the unit suites'
## output is shown when all three are done), then the two cross-process tests that bound RSS alone on the
## cores: CI stays inside its 20 minutes on a 2-core machine (21 min 46 s when the cross-process tests ran
## alone after the unit suites)
ALONE := tests/test_memory_1000.py tests/test_fuzz_frames.py
test: setup lint
	@cd ingest-node && { npm test > ../.node-test.log 2>&1; echo $$? > ../.node-test.rc; } & \
	  { $(PY) -m pytest -q processor-py/tests > .py-test.log 2>&1; echo $$? > .py-test.rc; } & \
	  $(PY) -m pytest -q tests $(ALONE:%=--ignore=%); cross=$$?; wait; \
	  cat .node-test.log .py-test.log; node=$$(cat .node-test.rc); py=$$(cat .py-test.rc); \
	  rm -f .node-test.log .node-test.rc .py-test.log .py-test.rc; \
	  echo "node --test: exit $$node; pytest processor-py/tests: exit $$py; pytest tests: exit $$cross"; \
	  test $$node -eq 0 && test $$py -eq 0 && test $$cross -eq 0
	$(PY) -m pytest -q $(ALONE)

lint: setup
	$(VENV)/bin/ruff check processor-py tests bench
	$(VENV)/bin/ruff format --check processor-py tests bench

## make bench-env: the peers make bench compares with (cryptofeed, pandas; bench/requirements-peers.txt) in
## their own virtualenv .venv-bench, never in the project's .venv
BENCH_VENV := .venv-bench
bench-env: $(STAMPS)/bench-env
$(STAMPS)/bench-env: bench/requirements-peers.txt
	@mkdir -p $(STAMPS)
	rm -rf $(BENCH_VENV)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements-peers.txt
	@touch $@

## make bench: throughput and latency through the real processes; figures go to the README
bench: setup bench-env
	$(PY) bench/pipeline_bench.py
	$(PY) bench/feature_bench.py
	$(PY) bench/serve_bench.py
	$(PY) bench/journal_bench.py
	$(PY) bench/store_bench.py
	$(PY) bench/instruments_bench.py
	$(PY) bench/history_bench.py

## make soak [MINUTES=30]: 20k trades/s over 100 symbols through the real processes into a private redis-server;
## the processor's and the ingester's RSS every 30 s, and their growth per minute after a 3-minute warm-up
MINUTES ?= 30
soak: setup
	$(PY) bench/soak.py --minutes $(MINUTES)

## make soak-1000 [MINUTES=30]: issue 19's memory case, 1,000 symbols at 3,000 trades/s, RSS every 10 s
soak-1000: setup
	$(PY) bench/soak.py --minutes $(MINUTES) --symbols 1000 --interval 10 --rate 3000 --event-speed 20 \
	  --stream-maxlen 100 --reply-timeout-ms 10000

## make vectors: rewrite both sides' golden wire vectors from proto/vectors/cases.json
vectors: setup
	$(PY) -m market_data_tick_handler.wire.vectors
	cd ingest-node && npm run --silent vectors

clean:
	rm -rf $(VENV) $(BQEMU_VENV) $(BENCH_VENV) $(STAMPS) ingest-node/node_modules
