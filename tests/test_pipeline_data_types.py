"""Every data type through the whole pipeline, on recordings of real exchanges: the Node ingester replays
raw frames through tardis-dev's real-time path, ZeroMQ carries them to the processor, and the records are
read back from a real redis-server. Expected values come from the raw frames, worked out here.

- Binance spot depth -> 25-level snapshots every 100 ms, against a book rebuilt from the same frames
  (support/binance_book.py);
- a replay cut in the middle -> a gap record and the candles it touches flagged has_gap;
- Coinbase matches -> candles, with Coinbase's maker side flipped to the taker side;
- Deribit option tickers -> options_chain records, field by field.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from support.binance_book import expected_snapshots, read_depth
from support.binance_reference import (
    BINANCE_WS,
    RawTrade,
    assert_candles_match,
    expected_candles,
    read_trades,
)
from support.pipeline import Subscriber, replay, us

CRYPTOFEED = BINANCE_WS.parent / "cryptofeed-ws"
SPOT = BINANCE_WS / "spot_btcusdt_20240808.gz"
TRADES_ONLY = "data_types:\n  book_snapshots:\n    enabled: false\n"


def _received(path: Path) -> list[dict]:
    """The JSON messages a cryptofeed capture received (`<epoch seconds>: <json>` lines)."""
    out = []
    for line in path.read_text().splitlines():
        head, sep, body = line.partition(": ")
        if sep and re.fullmatch(r"\d+\.\d+", head):
            out.append(json.loads(body))
    return out


def test_binance_depth_becomes_25_level_snapshots_every_100ms_equal_to_a_rebuilt_book(redis_url, tmp_path):
    expected = expected_snapshots(read_depth(SPOT), depth=25, interval_ms=100)
    assert len(expected) > 3000
    sub = Subscriber(redis_url, "book_snapshots:*")
    run, stats = replay(
        [SPOT], "binance", "btcusdt", redis_url, tmp_path
    )  # built-in config: 25 levels, 100 ms
    assert run.returncode == 0, run.stderr[-3000:]
    assert stats["records_by_type"]["book_snapshots"] == len(expected)
    sub.stop(2 * len(expected))
    by_channel = defaultdict(list)
    for channel, message in sub.messages:
        by_channel[channel].append(message)
    assert set(by_channel) == {"book_snapshots:BTC-USDT", "book_snapshots:binance:BTC-USDT"}
    published = by_channel["book_snapshots:binance:BTC-USDT"]
    assert published == by_channel["book_snapshots:BTC-USDT"]
    assert len(published) == len(expected)
    for k, (message, book) in enumerate(zip(published, expected, strict=True)):
        where = f"snapshot {k} at {message['timestamp']}"
        assert (message["type"], message["exchange"], message["exchange_symbol"]) == (
            "book_snapshot",
            "binance",
            "BTCUSDT",
        )
        assert (message["depth"], message["interval_ms"]) == (25, 100)
        assert us(message["timestamp"]) == book.timestamp_us, where
        assert [(lv["price"], lv["amount"]) for lv in message["bids"]] == book.bids, where
        assert [(lv["price"], lv["amount"]) for lv in message["asks"]] == book.asks, where
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", message["local_timestamp"]), where
    # the walkthrough's other types cannot come from Binance spot: said at start, not silently missing
    for line in (
        "liquidations (trade_transformation) not available for binance",
        "derivative_ticker not available for binance",
        "options_chain not available for binance",
    ):
        assert line in run.stderr


def test_a_replay_cut_in_the_middle_yields_a_gap_record_and_flagged_candles(redis_url, tmp_path):
    trades = read_trades(SPOT)
    cut = 5000  # the replay server drops the connection after 5000 frames: trade frames only here
    before, after = trades[cut - 1].ts_us, trades[cut].ts_us
    sub = Subscriber(redis_url, "gaps:binance:*", "candles:binance:*")
    run, stats = replay(
        [SPOT],
        "binance",
        "btcusdt",
        redis_url,
        tmp_path,
        config=TRADES_ONLY,
        ingest_args=(f"--cut-after={cut}",),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert stats["gaps"]["disconnect"] == 1
    published = stats["serve"]["candles_published"]
    sub.stop(published + 2)
    gaps = sub.of_type("gap")
    # one record when the gap opens (no end yet), one when the next trade closes it
    assert [(g["reason"], us(g["start"]), us(g["end"])) for _, g in gaps] == [
        ("disconnect", before, None),
        ("disconnect", before, after),
    ]
    assert all(g["symbol"] == "BTC-USDT" and g["local_timestamp"] for _, g in gaps)
    candles = sub.of_type("candle")
    assert len(candles) == published
    widths = {"15s": 15, "1m": 60, "5m": 300, "15m": 900, "4h": 14_400, "24h": 86_400}
    by_tf = defaultdict(list)
    for _, m in candles:
        start, width = us(m["timestamp_in"]), widths[m["timeframe"]] * 1_000_000
        touches = start <= after and before < start + width
        assert m["candle"]["has_gap"] == touches, f"{m['timeframe']} {m['timestamp_in']}"
        c = m["candle"]
        by_tf[m["timeframe"]].append(
            {
                **c,
                "timestamp_in": start,
                "first_trade_time": us(c["first_trade_time"]),
                "last_trade_time": us(c["last_trade_time"]),
            }
        )
    assert sum(m["candle"]["has_gap"] for _, m in candles) == 6  # the one candle per timeframe around the cut
    for tf in ("15s", "1m"):  # and no trade was lost over the reconnect
        assert_candles_match(by_tf[tf], expected_candles(trades, tf), f"cut replay {tf}")


def test_coinbase_matches_become_candles_with_the_taker_side(redis_url, tmp_path):
    capture = CRYPTOFEED / "COINBASE.ws.28.0"
    matches = [m for m in _received(capture) if m.get("type") == "match"]
    assert len(matches) == 97  # shared/data/README.md
    by_product: dict[str, list[RawTrade]] = defaultdict(list)
    for m in matches:
        # Coinbase's `side` is the MAKER order's side: a sell maker means the taker bought
        by_product[m["product_id"]].append(
            RawTrade(us(m["time"]), float(m["price"]), float(m["size"]), m["side"] == "buy", m["trade_id"])
        )
    products = sorted(by_product)
    sub = Subscriber(redis_url, "candles:coinbase:*")
    run, stats = replay([capture], "coinbase", ",".join(products), redis_url, tmp_path, config=TRADES_ONLY)
    assert run.returncode == 0, run.stderr[-3000:]
    assert stats["ticks_by_type"]["trade"] == 97
    sub.stop(stats["serve"]["candles_published"])
    got = defaultdict(list)
    for _, m in sub.of_type("candle"):
        c = m["candle"]
        got[(m["symbol"], m["timeframe"])].append(
            {
                **c,
                "timestamp_in": us(m["timestamp_in"]),
                "first_trade_time": us(c["first_trade_time"]),
                "last_trade_time": us(c["last_trade_time"]),
            }
        )
    for product in products:
        raw = sorted(by_product[product], key=lambda t: t.ts_us)
        for tf in ("15s", "1m"):
            want, candles = expected_candles(raw, tf), got[(product, tf)]
            assert_candles_match(candles[: len(want)], want, f"coinbase {product} {tf}")
            # after its last trade the product's candles go on, empty, as long as other products trade
            for c in candles[len(want) :]:
                assert c["is_empty"] and c["trade_count"] == 0 and c["volume"] == 0, (product, tf, c)
                assert c["open"] == c["high"] == c["low"] == c["close"] == want[-1]["close"], (product, tf, c)
    buys = sum(t.qty for ts in by_product.values() for t in ts if not t.taker_sells)
    assert buys > 0 and buys != sum(
        float(m["size"]) for m in matches if m["side"] == "buy"
    )  # the flip matters


def _positive(value):
    """tardis' reading of a Deribit ticker number: 0 means none (no bid, no ask, no trade yet)."""
    return None if value in (None, 0) else value


def test_deribit_option_tickers_become_the_options_chain(redis_url, tmp_path):
    capture = CRYPTOFEED / "DERIBIT.ws.1.0"
    tickers = [
        m["params"]["data"]
        for m in _received(capture)
        if m.get("method") == "subscription" and m["params"]["channel"].startswith("ticker.")
    ]
    assert len(tickers) == 89  # shared/data/README.md
    instruments = sorted({t["instrument_name"] for t in tickers})
    sub = Subscriber(redis_url, "options_chain:deribit:*")
    run, stats = replay([capture], "deribit", ",".join(instruments), redis_url, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert stats["records_by_type"]["options_chain"] == 89
    sub.stop(89)
    published = sub.of_type("option_summary")
    assert len(published) == 89
    for (channel, got), raw in zip(published, tickers, strict=True):
        name = raw["instrument_name"]  # e.g. BTC-24SEP21-8000-P: underlying, expiry day, strike, put/call
        _, day, strike, kind = name.split("-")
        expiry = f"20{day[-2:]}-{_MONTHS[day[-5:-2]]:02d}-{int(day[:-5]):02d}T08:00:00.000000Z"
        assert channel == f"options_chain:deribit:{name}"
        assert got == {
            "type": "option_summary",
            "exchange": "deribit",
            "symbol": name,
            "exchange_symbol": name,
            "timestamp": _iso_ms(raw["timestamp"]),
            "local_timestamp": got["local_timestamp"],
            "option_type": {"P": "put", "C": "call"}[kind],
            "strike_price": float(strike),
            "expiration": expiry,
            **{field: _positive(raw[key]) for field, key in _ZERO_IS_NONE.items()},
            **{field: raw[field] for field in _AS_SENT},
            **{greek: raw["greeks"][greek] for greek in ("delta", "gamma", "vega", "theta", "rho")},
        }, name


_MONTHS = {
    m: i
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
# option_summary field -> Deribit ticker key, for the numbers where 0 means none
_ZERO_IS_NONE = {
    "best_bid_price": "best_bid_price",
    "best_bid_amount": "best_bid_amount",
    "best_bid_iv": "bid_iv",
    "best_ask_price": "best_ask_price",
    "best_ask_amount": "best_ask_amount",
    "best_ask_iv": "ask_iv",
    "last_price": "last_price",
}
_AS_SENT = ("open_interest", "mark_price", "mark_iv", "underlying_price", "underlying_index")


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
