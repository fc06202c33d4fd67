"""Node ingester -> ZeroMQ -> Python candles -> a real redis-server, on real Binance recordings.

Every published 15s, 1m and 5m candle is checked against candles this test computes itself from the
raw frames (support/binance_reference.py).
"""

import subprocess
import sys
import threading
from datetime import UTC, datetime

import orjson
import pytest
import redis

from support.binance_reference import (
    BINANCE_WS,
    assert_candles_match,
    expected_candles,
    read_trades,
)

REPO_FILES = {
    "spot": [
        BINANCE_WS / "spot_btcusdt_20240808.gz",
        BINANCE_WS / "spot_btcusdt_20240809.gz",
    ],
    "usdm": [BINANCE_WS / "usdm_btcusdt_20240808.gz"],
}


def _us(iso):
    if iso is None:
        return None
    dt = datetime.fromisoformat(iso)
    return int((dt - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000 + dt.microsecond


class Subscriber:
    """PSUBSCRIBEs before the pipeline starts and keeps every message, in order."""

    def __init__(self, url, pattern):
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.pubsub.psubscribe(pattern)
        assert self.pubsub.get_message(timeout=5)["type"] == "psubscribe"
        self.messages = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.1)
            if message and message["type"] == "pmessage":
                self.messages.append((message["channel"].decode(), orjson.loads(message["data"])))

    def stop(self, expected, timeout=10.0):
        deadline = threading.Event()
        for _ in range(int(timeout / 0.1)):
            if len(self.messages) >= expected:
                break
            deadline.wait(0.1)
        self._stop.set()
        self._thread.join()
        self.pubsub.close()
        self.client.close()


def _replay(files, exchange, redis_url):
    cmd = [
        sys.executable,
        "-m",
        "market_data_tick_handler.main",
        "--mode",
        "streaming-candles-serve",
        "--source",
        "replay",
        "--files",
        *map(str, files),
        "--exchange",
        exchange,
        "--symbols",
        "btcusdt",
        "--speed",
        "max",
        "--redis-url",
        redis_url,
    ]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize(
    ("recording", "exchange", "symbol", "trades"),
    [
        ("spot", "binance", "BTC-USDT", 9_757 + 10_147),
        ("usdm", "binance-futures", "BTC-USDT-PERP", 21_313),
    ],
)
def test_replay_publishes_the_candles_of_the_raw_frames(redis_url, recording, exchange, symbol, trades):
    files = REPO_FILES[recording]
    raw = read_trades(*files)
    assert len(raw) == trades  # shared/data/README.md
    sub = Subscriber(redis_url, f"candles:{exchange}:{symbol}:*")
    run = _replay(files, exchange, redis_url)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"trades              {trades} (bad rows dropped 0, late 0)" in run.stdout, run.stdout
    published = int(run.stdout.split("published")[1].split()[0])
    sub.stop(published)
    assert len(sub.messages) == published

    by_tf = {}
    for channel, message in sub.messages:
        assert channel == f"candles:{exchange}:{symbol}:{message['timeframe']}"
        assert (
            message["type"],
            message["exchange"],
            message["symbol"],
            message["exchange_symbol"],
        ) == ("candle", exchange, symbol, "BTCUSDT")
        assert message["timestamp_in"].endswith("Z") and len(message["timestamp_out"]) == len(
            "2024-08-09T00:00:00.000000Z"
        )
        assert _us(message["local_timestamp"]) <= _us(message["timestamp_out"])
        c = message["candle"]
        by_tf.setdefault(message["timeframe"], []).append(
            {
                **c,
                "timestamp_in": _us(message["timestamp_in"]),
                "first_trade_time": _us(c["first_trade_time"]),
                "last_trade_time": _us(c["last_trade_time"]),
            }
        )
    for tf in ("15s", "1m", "5m"):
        assert_candles_match(by_tf[tf], expected_candles(raw, tf), f"{recording} {tf}")
    assert set(by_tf) == {"15s", "1m", "5m", "15m", "4h", "24h"}
