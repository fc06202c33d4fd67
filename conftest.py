"""Fixtures shared by the processor's unit tests and the cross-process tests."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))  # tests/support

from market_data_tick_handler.devtools.local_redis import redis_server


@pytest.fixture
def redis_url():
    """A private, real redis-server on a free port."""
    with redis_server() as url:
        yield url
