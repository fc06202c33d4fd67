"""Node ingester -> ZeroMQ -> Python candles -> a real redis-server, on real Binance recordings.

Every published 15s, 1m and 5m candle is checked against candles this test computes itself from the
raw frames (support/binance_reference.py).
"""

import pytest

from support.binance_reference import (
    BINANCE_WS,
    assert_candles_match,
    expected_candles,
    read_trades,
)
from support.pipeline import Subscriber, replay
from support.pipeline import us as _us

REPO_FILES = {
    "spot": [
        BINANCE_WS / "spot_btcusdt_20240808.gz",
        BINANCE_WS / "spot_btcusdt_20240809.gz",
    ],
    "usdm": [BINANCE_WS / "usdm_btcusdt_20240808.gz"],
}


@pytest.mark.parametrize(
    ("recording", "exchange", "symbol", "trades"),
    [
        ("spot", "binance", "BTC-USDT", 9_757 + 10_147),
        ("usdm", "binance-futures", "BTC-USDT-PERP", 21_313),
    ],
)
def test_replay_publishes_the_candles_of_the_raw_frames(
    redis_url, tmp_path, recording, exchange, symbol, trades
):
    files = REPO_FILES[recording]
    raw = read_trades(*files)
    assert len(raw) == trades  # shared/data/README.md
    sub = Subscriber(redis_url, f"candles:{exchange}:{symbol}:*")
    run, _ = replay(files, exchange, "btcusdt", redis_url, tmp_path)
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
