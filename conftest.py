"""Fixtures shared by the processor's unit tests and the cross-process tests."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))  # tests/support

from market_data_tick_handler.devtools.local_redis import RedisServer, redis_server


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
