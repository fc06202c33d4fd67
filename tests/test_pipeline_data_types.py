"""Every data type through the whole pipeline, on recordings of real exchanges: the Node ingester replays
raw frames through tardis-dev's real-time path, ZeroMQ carries them to the processor, and the records are
read back from a real redis-server. Expected values come from the raw frames, worked out here.

- Binance spot depth -> 25-level snapshots every 100 ms, against a book rebuilt from the same frames
  (support/binance_book.py);
- a replay cut in the middle -> a gap record and the candles it touches flagged has_gap;
- Coinbase matches -> candles, with Coinbase's maker side flipped to the taker side;
- Deribit option tickers -> options_chain records, field by field;
- BitMEX instrument and liquidation tables (written in BitMEX's documented format: no recording holds
  them) -> derivative tickers, funding rates on change, native liquidations;
- Deribit trades flagged as liquidations (documented format) -> liquidations (trade_transformation).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from itertools import pairwise
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
    # the seeds' other data types cannot come from Binance spot: said at start, not silently missing
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
    sub = Subscriber(redis_url, "candles:coinbase:*", "gaps:coinbase:*")
    stale_5s = TRADES_ONLY + "  gaps:\n    stale_after_ms: 5000\n"
    run, stats = replay([capture], "coinbase", ",".join(products), redis_url, tmp_path, config=stale_5s)
    assert run.returncode == 0, run.stderr[-3000:]
    assert stats["ticks_by_type"]["trade"] == 97
    sub.stop(stats["serve"]["candles_published"] + 2 * stats["records_by_type"]["gaps"])
    # stale gaps, on the exchange clock (the latest trade time seen): a product silent for 5 s while the
    # others trade has a gap from its last trade to its next one, or still open at the end
    clock_end = max(t.ts_us for ts in by_product.values() for t in ts)
    want_gaps = {}
    for product, ts in by_product.items():
        times = sorted(t.ts_us for t in ts)
        for a, b in pairwise(times):
            if b - a >= 5_000_000:
                want_gaps[(product, a)] = b
        if clock_end - times[-1] >= 5_000_000:
            want_gaps[(product, times[-1])] = None
    got_gaps = {}
    for _, g in sub.of_type("gap"):
        assert g["reason"] == "stale", g
        got_gaps[(g["symbol"], us(g["start"]))] = us(g["end"])  # the last word on each gap
    assert len(want_gaps) > 5 and got_gaps == want_gaps
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
        underlying, day, strike, kind = name.split("-")
        yy, mm, dd = day[-2:], _MONTHS[day[-5:-2]], int(day[:-5])
        expiry = f"20{yy}-{mm:02d}-{dd:02d}T08:00:00.000000Z"
        # ours (docs "Instrument definitions"): BASE-QUOTE-YYMMDD-STRIKE-C|P; Deribit's options are on USD
        ours = f"{underlying}-USD-{yy}{mm:02d}{dd:02d}-{strike}-{kind}"
        assert channel == f"options_chain:deribit:{ours}"
        assert got == {
            "type": "option_summary",
            "exchange": "deribit",
            "symbol": ours,
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


def _capture(path: Path, url: str, messages: list[dict], t0: float = 1626993367.5) -> Path:
    """A capture in cryptofeed's format (`<url> <-> <t>` then `<epoch seconds>: <json>` lines)."""
    lines = [
        f"{url} <-> {t0}",
        *(f"{t0 + 0.1 * (i + 1):.6f}: {json.dumps(m)}" for i, m in enumerate(messages)),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bitmex_instrument_and_liquidation_tables_become_tickers_funding_rates_and_liquidations(
    redis_url, tmp_path
):
    # No recording holds these tables, so this capture is written in BitMEX's documented realtime format
    # (https://www.bitmex.com/app/wsAPI#Subscriptions, tables `instrument`, `liquidation`, `trade`; fields
    # as in https://www.bitmex.com/api/explorer/#/Instrument and #/Liquidation): a partial, then updates
    # carrying the changed fields only; a liquidation row is an order (orderID, side, price, leavesQty).
    instrument = {
        "symbol": "XBTUSD",
        "state": "Open",
        "fundingRate": 0.0001,
        "indicativeFundingRate": 0.000117,
        "fundingTimestamp": "2021-07-23T04:00:00.000Z",
        "indicativeSettlePrice": 32172.45,
        "markPrice": 32170.12,
        "openInterest": 593428374,
        "lastPrice": 32175,
        "timestamp": "2021-07-22T22:36:10.000Z",
    }
    updates = [
        {
            "symbol": "XBTUSD",
            "markPrice": 32168.5,
            "indicativeSettlePrice": 32170.01,
            "timestamp": "2021-07-22T22:36:15.000Z",
        },
        {
            "symbol": "XBTUSD",
            "openInterest": 593430374,
            "lastPrice": 32150.5,
            "timestamp": "2021-07-22T22:36:16.000Z",
        },
        {
            "symbol": "XBTUSD",
            "fundingRate": 0.000117,
            "indicativeFundingRate": 0.00009,
            "fundingTimestamp": "2021-07-23T12:00:00.000Z",
            "timestamp": "2021-07-22T22:36:20.000Z",
        },
    ]
    liquidations = [
        {
            "orderID": "6f2b1c1e-3d4a-4b5c-8d9e-0a1b2c3d4e5f",
            "symbol": "XBTUSD",
            "side": "Sell",
            "price": 32150.5,
            "leavesQty": 2000,
        },
        {
            "orderID": "a1b2c3d4-e5f6-4a5b-9c8d-7e6f5a4b3c2d",
            "symbol": "XBTUSD",
            "side": "Buy",
            "price": 32190,
            "leavesQty": 500,
        },
    ]
    trade = {
        "timestamp": "2021-07-22T22:36:12.345Z",
        "symbol": "XBTUSD",
        "side": "Buy",
        "size": 100,
        "price": 32171.5,
        "trdMatchID": "00000000-0000-0000-0000-000000000001",
    }
    capture = _capture(
        tmp_path / "bitmex.txt",
        "wss://ws.bitmex.com/realtime",
        [
            {"table": "instrument", "action": "partial", "keys": ["symbol"], "data": [instrument]},
            {"table": "liquidation", "action": "partial", "keys": ["orderID"], "data": []},
            {"table": "trade", "action": "insert", "data": [trade]},
            {"table": "instrument", "action": "update", "data": [updates[0]]},
            {"table": "liquidation", "action": "insert", "data": [liquidations[0]]},
            {"table": "instrument", "action": "update", "data": [updates[1]]},
            {"table": "liquidation", "action": "insert", "data": [liquidations[1]]},
            {"table": "instrument", "action": "update", "data": [updates[2]]},
        ],
    )
    config = (
        "data_types:\n  liquidations:\n    source: tardis_realtime\n    fallback: false\n"
        "  book_snapshots:\n    enabled: false\n"
    )
    sub = Subscriber(
        redis_url, "derivative_ticker:bitmex:*", "funding_rates:bitmex:*", "liquidations:bitmex:*"
    )
    run, stats = replay([capture], "bitmex", "XBTUSD", redis_url, tmp_path, config=config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert stats["records_by_type"] == {"derivative_ticker": 4, "funding_rates": 2, "liquidations": 2}
    sub.stop(8)
    # the instrument row as BitMEX keeps it after each message; BitMEX's names: indicativeSettlePrice is
    # the index price, indicativeFundingRate the predicted funding rate
    row, tickers = dict(instrument), []
    for update in [{}, *updates]:
        row.update(update)
        tickers.append(
            {
                "last_price": row["lastPrice"],
                "open_interest": row["openInterest"],
                "funding_rate": row["fundingRate"],
                "funding_timestamp": row["fundingTimestamp"].replace(".000Z", ".000000Z"),
                "predicted_funding_rate": row["indicativeFundingRate"],
                "index_price": row["indicativeSettlePrice"],
                "mark_price": row["markPrice"],
                "timestamp": row["timestamp"].replace(".000Z", ".000000Z"),
            }
        )
    got = sub.of_type("derivative_ticker")
    assert [{k: m[k] for k in tickers[0]} for _, m in got] == tickers
    assert all(m["exchange_symbol"] == "XBTUSD" and m["local_timestamp"] for _, m in got)
    # funding rates: the first ticker, then whenever the rate or the next funding time changes
    funding = [
        (m["funding_rate"], m["funding_timestamp"], m["predicted_funding_rate"], m["timestamp"])
        for _, m in sub.of_type("funding_rate")
    ]
    assert funding == [
        (0.0001, "2021-07-23T04:00:00.000000Z", 0.000117, "2021-07-22T22:36:10.000000Z"),
        (0.000117, "2021-07-23T12:00:00.000000Z", 0.00009, "2021-07-22T22:36:20.000000Z"),
    ]
    # liquidations: side of the liquidation order (Sell: a long was liquidated), amount = leavesQty
    assert [(m["id"], m["price"], m["amount"], m["side"]) for _, m in sub.of_type("liquidation")] == [
        (r["orderID"], r["price"], r["leavesQty"], r["side"].lower()) for r in liquidations
    ]


def test_deribit_trades_flagged_as_liquidations_become_liquidations(redis_url, tmp_path):
    # Deribit's documented trades notification (https://docs.deribit.com/#trades-instrument_name-interval):
    # `liquidation` is "T" when the taker was liquidated, "M" when the maker was. No recording holds one.
    trades = [
        {
            "trade_seq": 1,
            "trade_id": "ETH-1",
            "timestamp": 1626993724000,
            "tick_direction": 0,
            "price": 1990.5,
            "mark_price": 1990.4,
            "instrument_name": "ETH-PERPETUAL",
            "index_price": 1990.1,
            "direction": "buy",
            "amount": 10.0,
        },
        {
            "trade_seq": 2,
            "trade_id": "ETH-2",
            "timestamp": 1626993725000,
            "tick_direction": 0,
            "price": 1991.0,
            "mark_price": 1990.6,
            "instrument_name": "ETH-PERPETUAL",
            "index_price": 1990.2,
            "direction": "buy",
            "amount": 25.0,
            "liquidation": "T",
        },
        {
            "trade_seq": 3,
            "trade_id": "ETH-3",
            "timestamp": 1626993726000,
            "tick_direction": 1,
            "price": 1989.0,
            "mark_price": 1990.0,
            "instrument_name": "ETH-PERPETUAL",
            "index_price": 1990.0,
            "direction": "buy",
            "amount": 7.0,
            "liquidation": "M",
        },
    ]
    capture = _capture(
        tmp_path / "deribit.txt",
        "wss://www.deribit.com/ws/api/v2",
        [
            {
                "jsonrpc": "2.0",
                "method": "subscription",
                "params": {"channel": "trades.ETH-PERPETUAL.raw", "data": [t]},
            }
            for t in trades
        ],
    )
    sub = Subscriber(redis_url, "liquidations:deribit:*")
    run, stats = replay(
        [capture], "deribit", "ETH-PERPETUAL", redis_url, tmp_path
    )  # built-in: trade_transformation
    assert run.returncode == 0, run.stderr[-3000:]
    assert stats["ticks_by_type"]["trade"] == 3
    sub.stop(2)
    # a liquidated taker who bought was short (side buy); a liquidated maker facing a buyer was long (sell)
    assert [
        (m["id"], m["price"], m["amount"], m["side"], m["timestamp"]) for _, m in sub.of_type("liquidation")
    ] == [
        ("ETH-2", 1991.0, 25.0, "buy", "2021-07-22T22:42:05.000000Z"),
        ("ETH-3", 1989.0, 7.0, "sell", "2021-07-22T22:42:06.000000Z"),
    ]
