"""The data types of the seeds (walkthroughs 1, 9, 10): processors on hand-built wire frames, the
router, gaps, feature context, process_tick and serve mode. Every expected value is worked out by hand
in the comments; none was copied from the code's output."""

import asyncio
import logging
import math
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from helpers import T0, S, candle_columns, control_frame, trade_frame

from market_data_tick_handler.config import (
    ConfigError,
    DataTypeConfig,
    DataTypesConfig,
    GapsConfig,
    config_from_dict,
    load_config,
)
from market_data_tick_handler.streaming_service import (
    DataTypeRouter,
    HFTFeatureCalculator,
    LiveCandleProcessor,
    ServeConfig,
    ServeMode,
)
from market_data_tick_handler.streaming_service.candle_processor import Candle, CandleBatch
from market_data_tick_handler.streaming_service.data_types import (
    BookSnapshot,
    BookSnapshotProcessor,
    CandlesProcessor,
    DerivativeTickerProcessor,
    FundingRate,
    FundingRateProcessor,
    Gap,
    GapProcessor,
    LiquidationProcessor,
    OptionsChainProcessor,
    TradeProcessor,
)
from market_data_tick_handler.streaming_service.hft_features import FEATURE_NAMES
from market_data_tick_handler.streaming_service.ingest import ingester_args
from market_data_tick_handler.streaming_service.keys import record_channels
from market_data_tick_handler.streaming_service.messages import record_message
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler
from market_data_tick_handler.wire import INT64_MISSING, decode_frame, encode_frame

NAN = float("nan")
MISSING = INT64_MISSING
TF = ("15s", "1m")


def _header(kind, seq, symbols, **extra):
    return {
        "type": kind,
        "seq": seq,
        "session": "dt",
        "symbols": [list(s) for s in symbols],
        "recv_mono_us": 1,
        "sent_mono_us": 2,
        **extra,
    }


def book_frame(rows, seq=0, symbols=(("binance", "BTCUSDT"),), depth=3, interval_ms=100):
    """rows: (sym, ts, bids [(price, amount)], asks [(price, amount)]), padded with NaN to ``depth``."""
    cols = {"sym": [], "timestamp": [], "local_timestamp": []}
    for name in ("bid_price", "bid_amount", "ask_price", "ask_amount"):
        cols[name] = []
    for sym, ts, bids, asks in rows:
        cols["sym"].append(sym)
        cols["timestamp"].append(ts)
        cols["local_timestamp"].append(ts + 7)
        for side, levels in (("bid", bids), ("ask", asks)):
            padded = list(levels) + [(NAN, NAN)] * (depth - len(levels))
            cols[f"{side}_price"] += [p for p, _ in padded]
            cols[f"{side}_amount"] += [a for _, a in padded]
    return encode_frame(_header("book_snapshot", seq, symbols, depth=depth, interval_ms=interval_ms), cols)


TICKER_COLUMNS = (
    "last_price", "open_interest", "funding_rate", "funding_timestamp", "predicted_funding_rate",
    "index_price", "mark_price",
)  # fmt: skip


def ticker_frame(rows, seq=0, symbols=(("binance-futures", "BTCUSDT"),)):
    """rows: dicts with sym, ts and any of TICKER_COLUMNS (missing: NaN / INT64_MISSING)."""
    cols = {
        "sym": [r["sym"] for r in rows],
        "timestamp": [r["ts"] for r in rows],
        "local_timestamp": [r["ts"] + 9 for r in rows],
    }
    for name in TICKER_COLUMNS:
        default = MISSING if name == "funding_timestamp" else NAN
        cols[name] = [r.get(name, default) for r in rows]
    return encode_frame(_header("derivative_ticker", seq, symbols), cols)


def liquidation_frame(rows, seq=0, symbols=(("deribit", "BTC-PERPETUAL"),)):
    """rows: (sym, ts, price, amount, side code, id)."""
    cols = {
        "sym": [r[0] for r in rows],
        "timestamp": [r[1] for r in rows],
        "local_timestamp": [r[1] + 3 for r in rows],
        "price": [r[2] for r in rows],
        "amount": [r[3] for r in rows],
        "side": [r[4] for r in rows],
        "id": [r[5] for r in rows],
    }
    return encode_frame(_header("liquidation", seq, symbols), cols)


OPTION = {
    "option_type": 1, "strike_price": 60_000.0, "expiration": 1_727_424_000_000_000,  # 2024-09-27T08:00Z
    "best_bid_price": 0.05, "best_bid_amount": 10.0, "best_bid_iv": 48.5, "best_ask_price": 0.0525,
    "best_ask_amount": 5.0, "best_ask_iv": 50.1, "last_price": 0.051, "open_interest": 1234.0,
    "mark_price": 0.0512, "mark_iv": 49.3, "delta": 0.45, "gamma": 0.00002, "vega": 95.1, "theta": -60.2,
    "rho": 20.5, "underlying_price": 58_000.0, "underlying_index": "BTC-27SEP24",
}  # fmt: skip


def option_frame(rows, seq=0, symbols=(("deribit", "BTC-27SEP24-60000-C"),)):
    cols = {"sym": [r[0] for r in rows], "timestamp": [r[1] for r in rows]}
    cols["local_timestamp"] = [t + 11 for t in cols["timestamp"]]
    for name in OPTION:
        cols[name] = [r[2].get(name, OPTION[name]) for r in rows]
    return encode_frame(_header("option_summary", seq, symbols), cols)


def _same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and (a == b or math.isclose(a, b)))


# -- processors -------------------------------------------------------------------------------------
def test_book_snapshots_best_first_with_the_padding_removed():
    frame = decode_frame(
        book_frame(
            [
                (0, T0 + S, [(100.0, 1.0), (99.5, 2.0)], [(100.5, 0.5), (101.0, 0.25), (102.0, 3.0)]),
                (1, T0 + 2 * S, [], [(10.5, 4.0)]),  # an empty bid side
            ],
            symbols=(("binance", "BTCUSDT"), ("binance", "ETHUSDT")),
        )
    )
    done = BookSnapshotProcessor().process(frame)
    assert done.bad_rows == 0
    btc, eth = done.records
    assert btc == BookSnapshot(
        exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0 + S,
        local_timestamp=T0 + S + 7, depth=3, interval_ms=100, bids=((100.0, 1.0), (99.5, 2.0)),
        asks=((100.5, 0.5), (101.0, 0.25), (102.0, 3.0)),
    )  # fmt: skip
    assert (eth.symbol, eth.bids, eth.asks) == ("ETH-USDT", (), ((10.5, 4.0),))
    message = record_message(btc)
    # T0 = 2023-11-14T22:14:00Z; +1 s, and +7 µs for the receipt
    assert message["type"] == "book_snapshot"
    assert message["timestamp"] == "2023-11-14T22:14:01.000000Z"
    assert message["local_timestamp"] == "2023-11-14T22:14:01.000007Z"
    assert message["bids"] == [{"price": 100.0, "amount": 1.0}, {"price": 99.5, "amount": 2.0}]


def test_bad_book_rows_are_named_counted_and_the_good_rows_kept(caplog):
    h = TickHandler(CandleSettings(timeframes=TF, grace_ms=0))
    rows = [
        (0, T0 + 1 * S, [(100.0, 1.0)], [(101.0, 1.0)]),
        (0, T0 + 2 * S, [(100.0, 1.0), (100.5, 1.0)], [(101.0, 1.0)]),  # bids not best first
        (0, T0 + 3 * S, [(100.0, 1.0)], [(101.0, -2.0)]),  # negative amount
        (0, T0 + 4 * S, [(99.0, 1.0)], [(101.0, 1.0)]),
    ]
    result = h.handle_bytes(book_frame(rows, seq=7, depth=2))
    assert [r.timestamp for r in result.records] == [T0 + 1 * S, T0 + 4 * S]
    stats = h.get_stats()
    assert stats["bad_rows"] == {"book_snapshot": 2} and stats["counts"]["bad_book_snapshots"] == 2
    assert "book_snapshot frame seq=7 row 1 (binance:BTCUSDT): bid_price=[100.0, 100.5]" in caplog.text
    assert "2 bad row(s) in this frame dropped, the other 2 kept" in caplog.text


def test_derivative_ticker_fields_and_missing_values():
    f1 = T0 + 8 * 3600 * S
    frame = decode_frame(
        ticker_frame(
            [
                {"sym": 0, "ts": T0 + S, "last_price": 37_000.5, "open_interest": 12_345.0,
                 "funding_rate": 0.0001, "funding_timestamp": f1, "predicted_funding_rate": 0.00012,
                 "index_price": 36_990.0, "mark_price": 36_995.25},
                {"sym": 0, "ts": T0 + 2 * S, "mark_price": 36_996.0},  # a partial update
                {"sym": 0, "ts": T0 + 3 * S, "mark_price": -1.0},  # bad
            ]
        )
    )  # fmt: skip
    done = DerivativeTickerProcessor().process(frame)
    full, partial = done.records
    assert (full.symbol, full.exchange_symbol, full.exchange) == (
        "BTC-USDT-PERP",
        "BTCUSDT",
        "binance-futures",
    )
    assert (full.last_price, full.open_interest, full.funding_rate) == (37_000.5, 12_345.0, 0.0001)
    assert (full.funding_timestamp, full.predicted_funding_rate) == (f1, 0.00012)
    assert (full.index_price, full.mark_price, full.local_timestamp) == (36_990.0, 36_995.25, T0 + S + 9)
    assert (partial.mark_price, partial.funding_rate, partial.funding_timestamp) == (36_996.0, None, None)
    assert done.bad_rows == 1 and "row 2 (binance-futures:BTCUSDT): mark_price=-1.0" in done.error
    message = record_message(full)
    assert message["funding_timestamp"] == "2023-11-15T06:14:00.000000Z"  # T0 + 8 h
    assert record_message(partial)["funding_rate"] is None


def test_liquidations_keep_side_price_amount_and_id():
    frame = decode_frame(
        liquidation_frame(
            [
                (0, T0 + S, 36_500.0, 1200.0, 1, "liq-1"),  # buy: a short was liquidated
                (0, T0 + 2 * S, 36_400.0, 0.0, 2, "liq-2"),  # amount 0: bad
                (0, T0 + 3 * S, 36_300.0, 800.0, 2, "liq-3"),
            ]
        )
    )
    done = LiquidationProcessor().process(frame)
    assert [(r.side, r.price, r.amount, r.id) for r in done.records] == [
        ("buy", 36_500.0, 1200.0, "liq-1"),
        ("sell", 36_300.0, 800.0, "liq-3"),
    ]
    assert done.records[0].symbol == "BTC-USD-PERP"  # deribit BTC-PERPETUAL
    assert done.bad_rows == 1 and "row 1 (deribit:BTC-PERPETUAL): amount=0.0" in done.error


def test_options_chain_rows():
    frame = decode_frame(
        option_frame(
            [(0, T0 + S, {}), (0, T0 + 2 * S, {"best_bid_iv": NAN}), (0, T0 + 3 * S, {"option_type": 0})]
        )
    )
    done = OptionsChainProcessor().process(frame)
    first, second = done.records
    assert (first.option_type, first.strike_price, first.underlying_index) == (
        "call",
        60_000.0,
        "BTC-27SEP24",
    )
    assert (first.best_bid_price, first.best_ask_iv, first.delta, first.theta) == (0.05, 50.1, 0.45, -60.2)
    assert record_message(first)["expiration"] == "2024-09-27T08:00:00.000000Z"
    assert second.best_bid_iv is None
    assert done.bad_rows == 1 and "row 2 (deribit:BTC-27SEP24-60000-C): option_type=0" in done.error


def test_funding_rates_one_record_per_change_first_included():
    f1, f2 = T0 + 3600 * S, T0 + 9 * 3600 * S
    symbols = (("binance-futures", "BTCUSDT"), ("binance-futures", "ETHUSDT"))
    p = FundingRateProcessor()
    first = p.process(
        decode_frame(
            ticker_frame(
                [
                    {"sym": 0, "ts": T0 + 1, "funding_rate": 0.0001, "funding_timestamp": f1},  # first BTC
                    {"sym": 0, "ts": T0 + 2, "funding_rate": 0.0001, "funding_timestamp": f1},  # same
                    {"sym": 1, "ts": T0 + 3, "funding_rate": 0.0002, "funding_timestamp": f1},  # first ETH
                    {"sym": 0, "ts": T0 + 4, "funding_rate": 0.00015, "funding_timestamp": f1},  # rate
                    {"sym": 0, "ts": T0 + 5, "mark_price": 37_000.0},  # no funding rate: nothing
                ],
                symbols=symbols,
            )
        )
    )
    second = p.process(
        decode_frame(
            ticker_frame(
                [
                    {"sym": 0, "ts": T0 + 6, "funding_rate": 0.00015, "funding_timestamp": f2},  # next time
                    {"sym": 1, "ts": T0 + 7, "funding_rate": 0.0002, "funding_timestamp": f1},  # same
                    {"sym": 0, "ts": T0 + 8, "funding_rate": 0.00015, "funding_timestamp": f2},  # same
                ],
                seq=1,
                symbols=symbols,
            )
        )
    )
    got = [(r.symbol, r.timestamp - T0, r.funding_rate, r.funding_timestamp) for r in first.records]
    assert got == [
        ("BTC-USDT-PERP", 1, 0.0001, f1),
        ("ETH-USDT-PERP", 3, 0.0002, f1),
        ("BTC-USDT-PERP", 4, 0.00015, f1),
    ]
    assert [(r.symbol, r.timestamp - T0, r.funding_timestamp) for r in second.records] == [
        ("BTC-USDT-PERP", 6, f2)
    ]
    assert isinstance(second.records[0], FundingRate)


def test_trades_and_candles_processors():
    frame = decode_frame(
        trade_frame(
            [
                (0, T0 + S, 100.0, 1.0, "buy"),
                (0, T0 + 2 * S, -1.0, 1.0, "sell"),
                (0, T0 + 16 * S, 101.0, 2.0, "sell"),
            ]
        )
    )
    trades = TradeProcessor().process(frame)
    assert [(r.price, r.side, r.id) for r in trades.records] == [(100.0, "buy", "0"), (101.0, "sell", "2")]
    assert trades.bad_rows == 1
    candles = CandlesProcessor(timeframes=TF).process(frame).records
    # the trade at 16 s closes the 15 s candle [0, 15) holding the one valid trade before it
    assert [(c.timeframe, c.timestamp_in - T0, c.close, c.volume) for c in candles] == [
        ("15s", 0, 100.0, 1.0)
    ]


# -- gaps -------------------------------------------------------------------------------------------
def test_stale_symbol_on_a_fake_wall_clock_is_a_gap_and_flags_the_open_candles():
    now = [T0 + 1 * S]
    h = TickHandler(CandleSettings(timeframes=TF, clock="wall", grace_ms=0), now=lambda: now[0])
    h.handle_bytes(trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy")]))  # heard from at 1 s (wall)
    candles = []
    now[0] = T0 + 16 * S
    polled = h.poll()
    candles += polled.candles
    assert polled.records == []  # 15 s of silence: not stale yet
    now[0] = T0 + 31 * S - 1
    polled = h.poll()
    candles += polled.candles
    assert polled.records == []  # 30 s minus 1 µs
    now[0] = T0 + 31 * S
    polled = h.poll()
    candles += polled.candles
    (gap,) = polled.records
    assert (gap.reason, gap.symbol, gap.start, gap.end) == ("stale", "BTC-USDT", T0 + 1 * S, None)
    assert (gap.timestamp, gap.local_timestamp) == (T0 + 1 * S, T0 + 31 * S)
    now[0] = T0 + 40 * S
    result = h.handle_bytes(trade_frame([(0, T0 + 40 * S, 101.0, 1.0, "buy")], seq=1))
    (ended,) = result.records
    assert (ended.reason, ended.start, ended.end) == ("stale", T0 + 1 * S, T0 + 40 * S)
    now[0] = T0 + 61 * S
    candles += h.poll().candles
    flags = [((c.timestamp_in - T0) // S, c.has_gap) for c in candles if c.timeframe == "15s"]
    # [0, 15) and [15, 30) closed (at 16 s and 31 s - 1 µs) before the gap was known at 31 s; [30, 45)
    # was open then and overlaps the gap (1 s, 40 s); [45, 60) does not; the 1 m candle [0, 60) does
    assert flags == [(0, False), (15, False), (30, True), (45, False)]
    assert [c.has_gap for c in candles if c.timeframe == "1m"] == [True]
    assert h.get_stats()["gaps"] == {
        "disconnect": 0,
        "stale": 1,
        "frames_lost": 0,
        "ingester_exit": 0,
        "open": 0,
    }
    assert h.next_deadline_us() is not None


def test_stale_detection_in_event_time_and_a_silence_noticed_late():
    h = TickHandler(CandleSettings(timeframes=TF, grace_ms=0))
    symbols = (("binance", "BTCUSDT"), ("binance", "ETHUSDT"))
    h.handle_bytes(
        trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy"), (1, T0 + 2 * S, 10.0, 1.0, "buy")], symbols=symbols)
    )
    # ETH trades on; the exchange clock reaches 31 s: BTC has been silent for 30 s
    result = h.handle_bytes(trade_frame([(1, T0 + 31 * S, 10.0, 1.0, "buy")], seq=1, symbols=symbols))
    assert [(g.exchange_symbol, g.reason, g.start, g.end) for g in result.records] == [
        ("BTCUSDT", "stale", T0 + 1 * S, None)
    ]
    result = h.handle_bytes(
        trade_frame(
            [(0, T0 + 33 * S, 100.0, 1.0, "buy"), (1, T0 + 70 * S, 10.0, 1.0, "buy")], seq=2, symbols=symbols
        )
    )
    # BTC is back at 33 s (its gap ends); ETH's next message comes at 70 s, 39 s after its last: a
    # silence seen only now, one closed gap; and BTC is silent from 33 s to the clock at 70 s (37 s)
    assert [(g.exchange_symbol, g.start - T0, g.end and g.end - T0) for g in result.records] == [
        ("BTCUSDT", 1 * S, 33 * S),
        ("ETHUSDT", 31 * S, 70 * S),
        ("BTCUSDT", 33 * S, None),
    ]


def test_in_event_time_a_message_without_exchange_time_does_not_move_the_clock():
    h = TickHandler(CandleSettings(timeframes=TF, grace_ms=0))
    symbols = (("bitmex", "XBTUSD"), ("bitmex", "ETHUSD"))
    h.handle_bytes(
        trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy"), (1, T0 + 2 * S, 10.0, 1.0, "buy")], symbols=symbols)
    )
    # a BitMEX liquidation has no exchange time: tardis-dev stamps it with its arrival, which in a
    # replay is years later; timestamp == local_timestamp marks it
    later = T0 + 1_000_000 * S
    untimed = encode_frame(
        {"type": "liquidation", "seq": 1, "session": "test", "symbols": [list(s) for s in symbols],
         "recv_mono_us": 0, "sent_mono_us": 0},
        {"sym": [0], "timestamp": [later], "local_timestamp": [later], "price": [100.0], "amount": [1.0],
         "side": [1], "id": ["x"]},
    )  # fmt: skip
    result = h.handle_bytes(untimed)
    assert [r.TYPE for r in result.records] == ["liquidation"]  # kept, and no stale gap opened
    result = h.handle_bytes(trade_frame([(1, T0 + 3 * S, 10.0, 1.0, "buy")], seq=2, symbols=symbols))
    assert result.records == []
    assert h.get_stats()["gaps"]["stale"] == 0


def test_disconnect_and_lost_frames_give_gap_records_and_flagged_candles(caplog):
    h = TickHandler(CandleSettings(timeframes=TF, grace_ms=0))
    symbols = (("binance", "BTCUSDT"),)
    out = h.handle_bytes(trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy")], seq=0)).candles
    opened = h.handle_bytes(control_frame("disconnect", 1, symbols=symbols, rows=[(0, T0 + 3 * S)]))
    (gap,) = opened.records
    # the exchange clock (replay) was at 1 s when the connection dropped
    assert (gap.reason, gap.start, gap.end, gap.symbol) == ("disconnect", T0 + 1 * S, None, "BTC-USDT")
    assert (
        "gap (disconnect) on binance BTCUSDT: from 2023-11-14T22:14:01.000000Z until now (open)"
        in caplog.text
    )
    resumed = h.handle_bytes(trade_frame([(0, T0 + 20 * S, 101.0, 1.0, "buy")], seq=2))
    out += resumed.candles
    assert [(g.reason, g.end) for g in resumed.records] == [("disconnect", T0 + 20 * S)]
    # seq 3 and 4 are lost; the next frame's first trade (at 50 s) ends the gap from the clock (20 s)
    lost = h.handle_bytes(trade_frame([(0, T0 + 50 * S, 102.0, 1.0, "buy")], seq=5))
    out += lost.candles
    assert [(g.reason, g.start - T0, g.end - T0) for g in lost.records] == [("frames_lost", 20 * S, 50 * S)]
    flags = [((c.timestamp_in - T0) // S, c.has_gap) for c in out if c.timeframe == "15s"]
    # gaps (1 s, 20 s) and (20 s, 50 s): every 15 s candle from 0 to 45 overlaps one
    assert flags == [(0, True), (15, True), (30, True)]
    gaps = h.get_stats()["gaps"]
    assert (gaps["disconnect"], gaps["frames_lost"], gaps["open"]) == (1, 1, 0)


def test_gap_processor_on_its_own():
    p = GapProcessor(stale_after_ms=10_000, clock="event", now=lambda: 42)
    p.observe(decode_frame(trade_frame([(0, T0, 1.0, 1.0, "buy")])))
    p.check()
    assert p.drain() == []
    disconnected = p.process(
        decode_frame(control_frame("disconnect", 1, symbols=(("binance", "BTCUSDT"),), rows=[(0, T0 + 5)]))
    )
    assert disconnected.records == [
        Gap(exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0,
            local_timestamp=42,
            reason="disconnect", start=T0, end=None)
    ]  # fmt: skip


# -- features ---------------------------------------------------------------------------------------
def test_live_features_with_book_derivative_and_liquidation_context_equal_compute_batch():
    ex = "binance-futures"
    symbols = ((ex, "BTCUSDT"),)
    h = TickHandler(
        CandleSettings(
            timeframes=TF,
            grace_ms=0,
            hft_timeframes=("15s",),
            feature_groups=("book", "derivative", "liquidations"),
        )
    )
    frames = [
        trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy")], seq=0, symbols=symbols),
        book_frame(
            [(0, T0 + 2 * S, [(100.0, 1.0), (99.0, 2.0)], [(101.0, 3.0), (102.0, 4.0)])],
            seq=1, symbols=symbols, depth=2,
        ),
        ticker_frame(
            [{"sym": 0, "ts": T0 + 3 * S, "funding_rate": 0.0001, "open_interest": 1000.0,
              "mark_price": 100.5, "index_price": 100.4}],
            seq=2,
        ),
        liquidation_frame(
            [(0, T0 + 4 * S, 100.0, 0.5, 1, "a"), (0, T0 + 5 * S, 100.0, 0.25, 2, "b")],
            seq=3,
            symbols=symbols,
        ),
        trade_frame([(0, T0 + 6 * S, 101.0, 2.0, "sell")], seq=4, symbols=symbols),
        book_frame([(0, T0 + 14_900_000, [(100.5, 2.0)], [(100.7, 1.0)])], seq=5, symbols=symbols, depth=2),
        # after the end of [0, 15), before the trade that closes it: not that candle's book
        book_frame(
            [(0, T0 + 15_100_000, [(101.0, 1.0), (100.0, 1.0)], [(102.0, 2.0), (103.0, 2.0)])],
            seq=6, symbols=symbols, depth=2,
        ),
        trade_frame([(0, T0 + 16 * S, 102.0, 1.0, "buy")], seq=7, symbols=symbols),
        liquidation_frame([(0, T0 + 20 * S, 101.0, 1.0, 2, "c")], seq=8, symbols=symbols),
        trade_frame([(0, T0 + 31 * S, 103.0, 1.0, "buy")], seq=9, symbols=symbols),
    ]  # fmt: skip
    candles = []
    for data in frames:
        candles += [c for c in h.handle_bytes(data).candles if c.timeframe == "15s"]
    assert [c.timestamp_in - T0 for c in candles] == [0, 15 * S]
    live = [c.hft_features for c in candles]
    # candle [0, 15): book at 14.9 s (bid 100.5 x 2, ask 100.7 x 1), ticker at 3 s, liquidations 0.5 / 0.25
    first = live[0]
    assert first["mid_price"] == pytest.approx(100.6)
    assert first["spread_bps"] == pytest.approx(0.2 / 100.6 * 1e4)  # 19.88 bps
    assert first["microprice"] == pytest.approx((100.5 * 1.0 + 100.7 * 2.0) / 3.0)  # 100.6333
    assert first["depth_imbalance_5"] == pytest.approx((2.0 - 1.0) / 3.0)
    assert (first["funding_rate"], first["open_interest"]) == (0.0001, 1000.0)
    assert first["basis_bps"] == pytest.approx(0.1 / 100.4 * 1e4)  # 9.96 bps
    assert (first["liquidation_buy_volume"], first["liquidation_sell_volume"]) == (0.5, 0.25)
    # candle [15, 30): the book at 15.1 s (depth 2 vs 4), no new ticker (open interest unchanged),
    # the sell liquidation at 20 s
    second = live[1]
    assert second["depth_imbalance_5"] == pytest.approx((2.0 - 4.0) / 6.0)
    assert second["spread_bps"] == pytest.approx(1.0 / 101.5 * 1e4)
    assert second["open_interest_change"] == 0.0
    assert (second["liquidation_buy_volume"], second["liquidation_sell_volume"]) == (0.0, 1.0)
    context = {
        "bid_price": [100.5, 101.0], "ask_price": [100.7, 102.0], "bid_size": [2.0, 1.0],
        "ask_size": [1.0, 2.0],
        "bid_depth_5": [2.0, 2.0], "ask_depth_5": [1.0, 4.0], "funding_rate": [0.0001, 0.0001],
        "open_interest": [1000.0, 1000.0], "mark_price": [100.5, 100.5], "index_price": [100.4, 100.4],
        "liquidation_buy_volume": [0.5, 0.0], "liquidation_sell_volume": [0.25, 1.0],
    }  # fmt: skip
    frame = candle_columns(candles) | context
    batch = asyncio.run(HFTFeatureCalculator("BTC-USDT-PERP").compute_batch(frame, timeframe="15s"))
    assert set(live[0]) == set(FEATURE_NAMES)
    for got, expected in zip(live, batch, strict=True):
        for name in FEATURE_NAMES:
            assert _same(got[name], getattr(expected, name)), (name, got[name], getattr(expected, name))


# -- the router ---------------------------------------------------------------------------------------
SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "001_b0489267966ac9be.txt"
#: the walkthrough's expected output, line by line as printed there (one line has two trailing blanks)
WALKTHROUGH_1 = (
    "📊 SUPPORTED DATA TYPES:",
    "========================================",
    "1. ✅ NATIVE trades",
    "2. ✅ NATIVE book_snapshots  ",
    "3. 🔄 FALLBACK liquidations",
    "4. ✅ NATIVE derivative_ticker",
    "5. ✅ NATIVE options_chain",
    "6. 🔄 FALLBACK funding_rates",
    "7. 🔄 FALLBACK gaps",
    "8. 🔄 FALLBACK candles",
    "",
    "Total: 8 data types supported",
)


def test_walkthrough_1_snippet_prints_the_walkthrough_table(capsys):
    async def show_data_types():
        router = DataTypeRouter()

        print("📊 SUPPORTED DATA TYPES:")
        print("=" * 40)

        # Show all 8 data types
        all_types = router.get_supported_data_types()
        for i, data_type in enumerate(all_types, 1):
            config = router.get_config(data_type)
            status = "🔄 FALLBACK" if config and config.fallback else "✅ NATIVE"
            print(f"{i}. {status} {data_type}")

        print(f"\nTotal: {len(all_types)} data types supported")

    asyncio.run(show_data_types())
    printed = capsys.readouterr().out
    if SEEDS.is_file():  # the copy above is the walkthrough's text
        text = SEEDS.read_text().split("## Walkthrough 1:")[1].split("**Expected Output**:\n```\n")[1]
        assert tuple(text.split("\n```")[0].splitlines()) == WALKTHROUGH_1
    assert [line.rstrip() for line in printed.splitlines()] == [line.rstrip() for line in WALKTHROUGH_1]


async def test_router_configs_processors_and_sources():
    router = DataTypeRouter()
    sources = {
        t: (router.get_config(t).source, router.get_config(t).batch_timeout)
        for t in router.get_supported_data_types()
    }
    assert sources == {
        "trades": ("tardis_realtime", 60_000),
        "book_snapshots": ("tardis_realtime", 60_000),
        "liquidations": ("trade_transformation", 900_000),
        "derivative_ticker": ("tardis_realtime", 900_000),
        "options_chain": ("tardis_realtime", 900_000),
        "funding_rates": ("derivative_ticker_extraction", 900_000),
        "gaps": ("disconnect_and_stale_detection", 900_000),
        "candles": ("trade_aggregation", 60_000),
    }
    assert router.get_config("nope") is None
    kinds = {t: type(await router.get_processor(t)).__name__ for t in router.get_supported_data_types()}
    assert kinds == {
        "trades": "TradeProcessor",
        "book_snapshots": "BookSnapshotProcessor",
        "liquidations": "LiquidationProcessor",
        "derivative_ticker": "DerivativeTickerProcessor",
        "options_chain": "OptionsChainProcessor",
        "funding_rates": "FundingRateProcessor",
        "gaps": "GapProcessor",
        "candles": "CandlesProcessor",
    }
    assert await router.get_processor("liquidations") is await router.get_processor("liquidations")
    with pytest.raises(ValueError, match="unknown data type 'nope'"):
        await router.get_processor("nope")


def test_router_ingester_data_types_and_availability_warnings(caplog):
    router = DataTypeRouter()
    assert router.ingester_data_types() == (
        "trade",
        "book_snapshot",
        "derivative_ticker",
        "liquidation",
        "option_summary",
    )
    # liquidations from trades: deribit's (and three others') only; the rest is the ingester's to say
    assert router.ingester_data_types("binance") == (
        "trade", "book_snapshot", "derivative_ticker", "option_summary"
    )  # fmt: skip
    assert router.ingester_data_types("deribit") == (
        "trade", "book_snapshot", "derivative_ticker", "liquidation", "option_summary"
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        messages = router.warn_unavailable(["binance"])
    assert messages == [
        "liquidations (trade_transformation) not available for binance:"
        " its trades carry no liquidation flag; deribit's do (and cryptofacilities', dydx-v4's, ftx's)"
    ]
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    futures = router.unavailable("binance-futures")["liquidations"]
    assert futures.endswith(
        "(it has a liquidation feed: set data_types.liquidations.source: tardis_realtime)"
    )
    # the ingester's start frame lists what tardis-dev can stream for binance (spot): fewer than asked for
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        missing = router.check_start(["binance"], ["trade", "book_snapshot"])
    assert missing == {
        "derivative_ticker": "derivative_ticker not available for binance:"
        " the ingester does not stream derivative_ticker for it",
        "options_chain": "options_chain not available for binance:"
        " the ingester does not stream option_summary for it",
        "funding_rates": "funding_rates (derivative_ticker_extraction) not available for binance:"
        " the ingester does not stream derivative_ticker for it",
    }
    assert len(caplog.records) == 3
    # funding rates alone still need derivative tickers; a native liquidation feed with tardis_realtime
    only = DataTypeRouter(
        DataTypesConfig(
            derivative_ticker=DataTypeConfig(enabled=False),
            book_snapshots=DataTypesConfig().book_snapshots.__class__(enabled=False),
            options_chain=DataTypeConfig(enabled=False),
            liquidations=DataTypeConfig(source="tardis_realtime", batch_timeout=900_000),
        )
    )
    assert only.ingester_data_types("bitmex") == ("trade", "derivative_ticker", "liquidation")
    assert only.feature_groups("bitmex") == ("liquidations",)
    assert only.unavailable("deribit")["liquidations"].startswith(
        "liquidations not available for deribit: it has no liquidation feed (its trades flag liquidations"
    )
    args = ingester_args(load_config(None).ingest, "ipc:///x", only.ingester_data_types("bitmex"), 25, 100)
    assert args[args.index("--data-types") + 1] == "trade,derivative_ticker,liquidation"
    assert args[args.index("--book-depth") + 1 : args.index("--book-depth") + 4] == [
        "25",
        "--book-interval-ms",
        "100",
    ]


def test_the_start_frame_leaves_out_the_features_of_types_not_streamed(caplog):
    h = TickHandler(
        CandleSettings(
            timeframes=TF, hft_timeframes=("15s",), feature_groups=("book", "derivative", "liquidations")
        )
    )
    start = control_frame(
        "start", 0, source="replay", exchanges=["binance"], data_types=["trade", "book_snapshot"], speed="max"
    )
    h.handle_bytes(start)
    # liquidations from trades are not available on binance, and it streams no derivative tickers
    assert h.settings.feature_groups == ("book",)
    assert "derivative_ticker not available for binance: the ingester does not stream derivative_ticker" in (
        caplog.text
    )
    h.handle_bytes(trade_frame([(0, T0 + S, 100.0, 1.0, "buy")], seq=1))
    assert h.features["binance"].features.groups == ("book",)


def test_data_types_config():
    config = load_config("streaming.yaml").data_types
    assert config == DataTypesConfig()  # the file states the defaults
    assert (config.book_snapshots.depth, config.book_snapshots.interval_ms, config.gaps.stale_after_ms) == (
        25,
        100,
        30_000,
    )
    custom = config_from_dict(
        {"data_types": {"gaps": {"stale_after_ms": 5000}, "liquidations": {"source": "tardis_realtime"}}}
    )
    assert custom.data_types.gaps == GapsConfig(
        source="disconnect_and_stale_detection", batch_timeout=900_000, fallback=True, stale_after_ms=5000
    )
    assert custom.data_types.liquidations.fallback is False  # native when read from the exchange's feed
    for raw, message in [
        ({"data_types": {"trade": {}}}, "data_types: unknown data type(s) trade"),
        ({"data_types": {"trades": {"depth": 5}}}, "data_types.trades: unknown key(s) depth"),
        ({"data_types": {"gaps": {"stale_afer_ms": 5}}}, "data_types.gaps: unknown key(s) stale_afer_ms"),
        ({"data_types": {"funding_rates": {"source": "tardis_realtime"}}}, "data_types.funding_rates.source"),
        ({"data_types": {"liquidations": {"source": "tardis_realtime", "fallback": True}}}, "disagrees"),
        ({"ingest": {"data_types": ["trade"]}}, "ingest.data_types: removed"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            config_from_dict(raw)


# -- process_tick and stats ---------------------------------------------------------------------------
async def test_process_tick_takes_every_data_type():
    h = TickHandler()
    trade = {
        "symbol": "BTC-USDT", "exchange": "binance", "timestamp": "2024-10-25T12:51:00.500000+00:00",
        "type": "trades", "price": 67000.0, "amount": 0.1, "side": "buy",
    }  # fmt: skip
    assert await h.process_tick(trade) is True
    book = {
        "type": "book_snapshots", "exchange": "binance", "symbol": "BTC-USDT", "depth": 3, "interval": 100,
        "timestamp": "2024-10-25T12:51:00.600000Z", "localTimestamp": "2024-10-25T12:51:00.601000Z",
        "bids": [{"price": 67000.0, "amount": 1.5}, {"price": 66999.5, "amount": 2.0}],
        "asks": [{"price": 67000.5, "amount": 0.5}],
    }  # fmt: skip
    assert await h.process_tick(book) is True
    (snapshot,) = h.last_result.records
    assert (snapshot.bids, snapshot.asks, snapshot.depth) == (
        ((67000.0, 1.5), (66999.5, 2.0)),
        ((67000.5, 0.5),),
        3,
    )
    assert record_message(snapshot)["local_timestamp"] == "2024-10-25T12:51:00.601000Z"
    ticker = {
        "type": "derivative_ticker", "exchange": "binance-futures", "symbol": "BTC-USDT-PERP",
        "timestamp": "2024-10-25T12:51:01.000000Z", "lastPrice": 67010.0, "openInterest": 80_000.0,
        "fundingRate": 0.0001, "fundingTimestamp": "2024-10-25T16:00:00.000Z", "indexPrice": 67005.0,
        "markPrice": 67008.0, "predictedFundingRate": None,
    }  # fmt: skip
    assert await h.process_tick(ticker) is True
    tick_record, funding = h.last_result.records
    assert (tick_record.exchange_symbol, tick_record.funding_timestamp) == ("BTCUSDT", 1_729_872_000_000_000)
    assert (funding.funding_rate, funding.predicted_funding_rate) == (0.0001, None)
    liquidation = {
        "type": "liquidations", "exchange": "deribit", "symbol": "BTC-PERPETUAL",
        "timestamp": 1_729_860_661_000_000,
        "price": 67000.0, "amount": 1000.0, "side": "sell", "id": "x1",
    }  # fmt: skip
    assert await h.process_tick(liquidation) is True
    assert [(r.side, r.id, r.symbol) for r in h.last_result.records] == [("sell", "x1", "BTC-USD-PERP")]
    option = {
        "type": "options_chain", "exchange": "deribit", "symbol": "BTC-27SEP24-60000-C",
        "timestamp": "2024-10-25T12:51:02Z", "optionType": "put", "strikePrice": 60000,
        "expirationDate": "2024-09-27T08:00:00.000Z", "bestBidPrice": 0.05, "bestBidIV": 48.5, "markIV": 49.0,
        "delta": -0.55, "underlyingIndex": "BTC-27SEP24", "underlyingPrice": 58000,
    }  # fmt: skip
    assert await h.process_tick(option) is True
    (opt,) = h.last_result.records
    assert (opt.option_type, opt.strike_price, opt.best_bid_iv, opt.mark_iv, opt.delta) == (
        "put",
        60000.0,
        48.5,
        49.0,
        -0.55,
    )
    assert (opt.expiration, opt.best_ask_price, opt.underlying_index) == (
        1_727_424_000_000_000,
        None,
        "BTC-27SEP24",
    )
    assert await h.process_tick({**book, "bids": [{"price": -1, "amount": 1}]}) is False
    assert await h.process_tick({**trade, "type": "quotes"}) is False
    stats = h.get_stats()
    assert stats["ticks_by_type"] == {
        "trade": 1, "book_snapshot": 2, "derivative_ticker": 1, "liquidation": 1, "option_summary": 1,
    }  # fmt: skip
    assert stats["ticks_by_symbol"]["binance:BTCUSDT"] == {"trade": 1, "book_snapshot": 2}
    assert stats["records_by_type"] == {
        "book_snapshots": 1, "derivative_ticker": 1, "funding_rates": 1, "liquidations": 1,
        "options_chain": 1,
    }  # fmt: skip
    assert stats["counts"]["bad_book_snapshots"] == 1 and stats["counts"]["bad_ticks"] == 1


def test_get_stats_shape_walkthrough_9():
    h = TickHandler(CandleSettings(timeframes=TF, grace_ms=0))
    h.handle_bytes(trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy"), (0, T0 + 16 * S, 100.0, 1.0, "buy")]))
    h.handle_bytes(trade_frame([(0, T0 + 2 * S, 100.0, 1.0, "buy")], seq=1))  # late: its bucket closed
    h.handle_bytes(book_frame([(0, T0 + 17 * S, [(99.0, 1.0)], [(101.0, 1.0)])], seq=2))
    stats = h.get_stats()
    assert set(stats) >= {
        "counts", "ticks_by_type", "ticks_by_symbol", "records_by_type", "bad_rows", "drops", "late_ticks",
        "gaps", "engines", "recent_errors",
    }  # fmt: skip
    assert stats["ticks_by_type"] == {"trade": 3, "book_snapshot": 1}
    assert (stats["late_ticks"], stats["drops"]["late"], stats["drops"]["bad_rows"]) == (1, 1, 0)
    assert stats["gaps"] == {"disconnect": 0, "stale": 0, "frames_lost": 0, "ingester_exit": 0, "open": 0}
    p = h.engines["binance"].processors["BTCUSDT"]
    mine = p.get_stats()
    assert mine["ticks_by_type"] == {"trade": 3, "book_snapshot": 1}
    assert (mine["late_ticks"], mine["drops"]["late"], mine["gaps"], mine["trades"]) == (1, 1, 0, 3)
    alone = LiveCandleProcessor("BTC-USDT").get_stats()  # walkthrough 9's own processor
    assert alone["ticks_by_type"] == {"trade": 0} and alone["drops"] == {
        "late": 0,
        "late_too_old": 0,
        "ahead": 0,
        "jump": 0,
    }


def test_disabled_types_are_counted_as_drops():
    router = DataTypeRouter(
        DataTypesConfig(book_snapshots=DataTypesConfig().book_snapshots.__class__(enabled=False))
    )
    h = TickHandler(CandleSettings(timeframes=TF), router=router)
    result = h.handle_bytes(book_frame([(0, T0 + S, [(99.0, 1.0)], [(101.0, 1.0)])]))
    assert result.records == [] and h.get_stats()["drops"]["book_snapshots_disabled"] == 1


# -- serve mode ---------------------------------------------------------------------------------------
async def test_serve_mode_publishes_records_with_the_candles_in_one_round_trip(redis_url):
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.psubscribe("book_snapshots:*", "funding_rates:*", "gaps:*", "candles:binance:*")
    for _ in range(4):
        await pubsub.get_message(timeout=1)
    serve = ServeMode(ServeConfig(transport="redis", redis_url=redis_url))
    await serve.start()
    book = BookSnapshot(
        exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0 + S,
        local_timestamp=T0 + S + 250, depth=25, interval_ms=100, bids=((100.0, 1.5),), asks=((100.5, 2.0),),
    )  # fmt: skip
    funding = FundingRate(
        exchange="binance-futures", symbol="BTC-USDT-PERP", exchange_symbol="BTCUSDT", timestamp=T0,
        local_timestamp=T0 + 5, funding_rate=-0.0002, funding_timestamp=None, predicted_funding_rate=None,
    )  # fmt: skip
    gap = Gap(
        exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0,
        local_timestamp=T0 + 31 * S,
        reason="stale", start=T0, end=None,
    )  # fmt: skip
    candle = Candle(
        "binance", "BTC-USDT", "BTCUSDT", "15s", T0, 1.0, 2.0, 0.5, 1.5, 3.0, 2.0, 1.0, 1.2, 4, T0 + 1,
        T0 + 2,
        False, True, False, 0,
    )  # fmt: skip
    await serve.publish(CandleBatch.from_candles([candle]), T0 + 15 * S, [book, funding, gap])
    got = []
    while len(got) < 7:  # the candle on the one subscribed channel of its three, each record on two
        message = await pubsub.get_message(timeout=2)
        if message and message["type"] == "pmessage":
            got.append((message["channel"].decode(), orjson.loads(message["data"])))
    assert [ch for ch, _ in got] == [
        "candles:binance:BTC-USDT:15s",
        "book_snapshots:BTC-USDT",
        "book_snapshots:binance:BTC-USDT",
        "funding_rates:BTC-USDT-PERP",
        "funding_rates:binance-futures:BTC-USDT-PERP",
        "gaps:BTC-USDT",
        "gaps:binance:BTC-USDT",
    ]
    bodies = {body["type"]: body for ch, body in got if not ch.startswith("candles:")}
    assert bodies["book_snapshot"]["timestamp"] == "2023-11-14T22:14:01.000000Z"
    assert bodies["book_snapshot"]["local_timestamp"] == "2023-11-14T22:14:01.000250Z"
    assert bodies["book_snapshot"]["asks"] == [{"price": 100.5, "amount": 2.0}]
    assert bodies["funding_rate"] | {} == {
        **bodies["funding_rate"],
        "funding_rate": -0.0002,
        "funding_timestamp": None,
    }
    assert (bodies["gap"]["reason"], bodies["gap"]["start"], bodies["gap"]["end"]) == (
        "stale", "2023-11-14T22:14:00.000000Z", None
    )  # fmt: skip
    stats = serve.get_stats()
    assert (stats["round_trips"], stats["candles_published"], stats["records_published"]) == (1, 1, 3)
    assert stats["messages_published"] == 3 + 3 * 2  # a candle on 3 channels, a record on 2
    await serve.publish(None, 0, [gap])
    assert serve.get_stats()["round_trips"] == 2
    await serve.close()
    await pubsub.aclose()
    await client.aclose()


def test_record_channels():
    assert record_channels("options_chain", "deribit", "BTC-27SEP24-60000-C") == (
        "options_chain:BTC-27SEP24-60000-C",
        "options_chain:deribit:BTC-27SEP24-60000-C",
    )
