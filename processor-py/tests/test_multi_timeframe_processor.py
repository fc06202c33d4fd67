"""``MultiTimeframeProcessor``: candles on every timeframe for several symbols of one exchange, equal to
candles worked out here from the raw Binance trades (tests/support/binance_reference.py, none of the
project's code); ticks given as the seeds' dicts or as arrays come out the same; ``processor(symbol)``
is the LiveCandleProcessor view of one symbol."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from market_data_tick_handler.streaming_service.candle_processor.live_candle_processor import (
    LiveCandleProcessor,
)
from market_data_tick_handler.streaming_service.candle_processor.multi_timeframe_processor import (
    MultiTimeframeProcessor,
)
from support.binance_reference import RawTrade, assert_candles_match, expected_candles, read_trades

REPO = Path(__file__).resolve().parents[2]

SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-trades.gz"
TIMEFRAMES = ("15s", "1m", "5m", "15m")
KEYS = ("timestamp_in", "open", "high", "low", "close", "volume", "buy_volume", "sell_volume", "vwap",
        "trade_count", "first_trade_time", "last_trade_time", "is_empty")  # fmt: skip


def _iso(ts_us: int) -> str:
    return (
        datetime.fromtimestamp(ts_us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        + f".{ts_us % 10**6:06d}Z"
    )


@pytest.fixture(scope="module")
def markets() -> dict[str, list[RawTrade]]:
    """BTC-USDT: the sample's trades; ETH-USDT: every third of them (and the last), at a twentieth of
    the price and three times the amount, so the two symbols share the clock's range."""
    btc = read_trades(SAMPLE)
    eth = [
        RawTrade(t.ts_us, round(t.price / 20, 8), round(t.qty * 3, 8), t.taker_sells, t.trade_id)
        for k, t in enumerate(btc)
        if k % 3 == 0 or k == len(btc) - 1
    ]
    return {"BTC-USDT": btc, "ETH-USDT": eth}


def _merged(markets: dict[str, list[RawTrade]]) -> list[tuple[str, RawTrade]]:
    rows = [(symbol, t) for symbol, trades in markets.items() for t in trades]
    return sorted(rows, key=lambda r: (r[1].ts_us, r[1].trade_id, r[0]))  # arrival order: by time


def _rows(candles, symbol: str, timeframe: str) -> list[dict]:
    picked = [c for c in candles if c.symbol == symbol and c.timeframe == timeframe]
    return [{k: getattr(c, k) for k in KEYS} for c in picked]


def test_ticks_as_the_seeds_dicts_give_every_symbols_candles_on_every_timeframe(markets):
    mtf = MultiTimeframeProcessor(exchange="binance", timeframes=TIMEFRAMES)
    out = []
    for symbol, t in _merged(markets):
        tick = {"symbol": symbol, "exchange": "binance", "timestamp": _iso(t.ts_us), "type": "trades",
                "price": t.price, "amount": t.qty, "side": "sell" if t.taker_sells else "buy"}  # fmt: skip
        out += mtf.process_tick(tick)
    out += mtf.finish()
    assert mtf.symbols == ["BTC-USDT", "ETH-USDT"]
    for symbol, trades in markets.items():
        for tf in TIMEFRAMES:
            assert_candles_match(_rows(out, symbol, tf), expected_candles(trades, tf), f"{symbol} {tf}")
    last = {tf: max(c.timestamp_in for c in out if c.timeframe == tf) for tf in TIMEFRAMES}
    assert all(c.is_partial for c in out if c.timestamp_in == last[c.timeframe])  # open at the end
    stats = mtf.get_stats()
    assert stats["trades"] == sum(map(len, markets.values()))
    assert stats["by_symbol"]["ETH-USDT"]["trades"] == len(markets["ETH-USDT"])


def test_arrays_give_the_same_candles_and_the_view_reads_the_shared_state(markets):
    rows = _merged(markets)
    mtf = MultiTimeframeProcessor(exchange="binance", timeframes=TIMEFRAMES)
    symbols = np.array(["BTCUSDT" if s == "BTC-USDT" else "ETH-USDT" for s, _ in rows])  # either form
    half = len(rows) // 2
    out = []
    for part in (slice(0, half), slice(half, None)):
        chunk = rows[part]
        out += mtf.add_trades(
            symbols[part],
            np.array([t.ts_us for _, t in chunk]),
            np.array([t.price for _, t in chunk]),
            np.array([t.qty for _, t in chunk]),
            ["sell" if t.taker_sells else "buy" for _, t in chunk],
        )
    out += mtf.finish()
    for symbol, trades in markets.items():
        for tf in TIMEFRAMES:
            assert_candles_match(_rows(out, symbol, tf), expected_candles(trades, tf), f"{symbol} {tf}")
    view = mtf.processor("ETH-USDT")
    assert isinstance(view, LiveCandleProcessor)
    assert view is mtf.processor("ETHUSDT")
    stats = view.get_stats()
    assert (stats["symbol"], stats["trades"]) == ("ETH-USDT", len(markets["ETH-USDT"]))
    assert stats["candles"]["1m"] == len(expected_candles(markets["ETH-USDT"], "1m"))


def test_live_candle_processor_alone_is_a_view_over_its_own_multi_timeframe_processor(markets):
    lcp = LiveCandleProcessor("BTC-USDT", timeframes=("15s", "1m"))
    assert isinstance(lcp.multi, MultiTimeframeProcessor) and lcp.engine is lcp.multi.engine
    out = []
    for t in markets["BTC-USDT"][:500]:
        out += lcp.add_trade(t.ts_us, t.price, t.qty, "sell" if t.taker_sells else "buy")
    out += lcp.finish()
    expected = expected_candles(markets["BTC-USDT"][:500], "15s")
    assert_candles_match(_rows(out, "BTC-USDT", "15s"), expected, "view 15s")


def test_bad_ticks_are_refused_and_other_types_ignored():
    mtf = MultiTimeframeProcessor(exchange="binance", timeframes=("15s",))
    base = {"symbol": "BTC-USDT", "exchange": "binance", "timestamp": 1_723_161_480_135_000, "price": 1.0,
            "amount": 1.0, "side": "buy"}  # fmt: skip
    for bad in ({"price": 0.0}, {"price": float("nan")}, {"amount": -1.0}, {"side": "long"},
                {"exchange": "deribit"}):  # fmt: skip
        with pytest.raises(ValueError):
            mtf.process_tick(base | bad)
    assert mtf.process_tick(base | {"type": "book_snapshots"}) == []
    assert mtf.get_stats()["ignored_ticks"] == 1
    assert mtf.get_stats()["trades"] == 0
