"""Fixtures shared by the processor's unit tests and the cross-process tests."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))  # tests/support

# every process a test starts serves its metrics on a free port, not on the fixed defaults (9464, 9465)
# that a running pipeline or another test may hold; a test that checks an address sets its own
os.environ.setdefault("MDTH_METRICS_ADDRESS", "127.0.0.1:0")
os.environ.setdefault("MDTH_INGESTER_METRICS_ADDRESS", "127.0.0.1:0")

from market_data_tick_handler.devtools.bq_emulator import BigQueryEmulator
from market_data_tick_handler.devtools.bq_emulator import bigquery_emulator as bq_emulator
from market_data_tick_handler.devtools.local_redis import RedisServer, redis_server


@pytest.fixture(scope="session", autouse=True)
def compiled_candle_path():
    """The candle engine's compiled path loaded (or compiled, seconds on a fresh clone) once, before any
    test, as the service does at start (``hot_path.py``): not inside a test that bounds its time."""
    from market_data_tick_handler.streaming_service.candle_processor.batch_kernel import compile_kernel

    compile_kernel()


@pytest.fixture
def redis_url():
    """A private, real redis-server on a free port."""
    with redis_server() as url:
        yield url


@pytest.fixture
def restartable_redis():
    """A private redis-server that a test may ``kill()`` and ``start()`` again on the same port; it keeps
    an fsynced append-only file, so what it acknowledged survives the kill."""
    server = RedisServer(appendonly=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def bigquery_emulator():
    """A private bqemulator (a real BigQuery REST and gRPC endpoint) for the whole session; tests keep
    apart by using datasets of their own."""
    with bq_emulator() as endpoint:
        yield endpoint


@pytest.fixture
def restartable_bigquery_emulator():
    """A private bqemulator that a test may ``kill()`` and ``start()`` again on the same ports; its tables
    and rows are on disk, so they survive the kill (its write streams do not)."""
    emulator = BigQueryEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()
