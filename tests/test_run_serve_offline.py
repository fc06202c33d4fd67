"""`make run-serve` without a reachable exchange fails fast with a message naming the URL and the cause."""

import os
import subprocess
import sys
import time

from market_data_tick_handler.devtools.local_redis import free_port


def test_live_mode_without_network_fails_fast_and_says_why(redis_url):
    closed = f"ws://127.0.0.1:{free_port()}/stream"  # nothing listens there
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "market_data_tick_handler.main",
            "--mode",
            "streaming-candles-serve",
            "--symbol",
            "BTC-USDT",
            "--redis-url",
            redis_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "WSS_URL_BINANCE": closed},
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 1
    assert f"cannot stream binance from {closed}" in run.stderr
    assert "ECONNREFUSED" in run.stderr
    assert elapsed < 15, f"took {elapsed:.1f} s"
