import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.redis_server import redis_server  # noqa: E402


@pytest.fixture
def redis_url():
    with redis_server() as url:
        yield url
