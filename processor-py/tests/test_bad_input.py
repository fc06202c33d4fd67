"""Bad input never stops the processor (issue 14, item 3): undecodable frames, bad rows, repeated seqs,
clock jumps and the last-resort catch, each counted by reason; the candles of good trades mixed with bad
ones equal the candles of the good trades alone, worked out here from the trades (not by the engine)."""

import logging
import struct
import time

import numpy as np
import orjson
import pytest
from helpers import SIDES, T0, S, control_frame, trade_frame

from market_data_tick_handler.streaming_service.candle_processor import LiveCandleProcessor
from market_data_tick_handler.streaming_service.messages import record_message
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler
from market_data_tick_handler.wire import INT64_MISSING, encode_frame

TF = ("15s", "1m")
MINUTE = 60 * S
DAY = 86_400 * S
YEAR_1970 = 1_000_000  # 1970-01-01T00:00:01Z
YEAR_3000 = 32_503_680_000_000_000  # 3000-01-01
PAST_9999 = 253_402_300_800_000_000 + DAY  # 10000-01-02: no datetime can hold it
NAN = float("nan")


def _handler(**kw):
    return TickHandler(CandleSettings(timeframes=TF, grace_ms=0, **kw))


def _good_trades(start=T0, count=40, step=3 * S):
    """(ts, price, amount, side), in time order, several per 15 s bucket."""
    return [(start + 1 * S + k * step, 100.0 + (k * 7) % 11, 0.5 + (k % 4) * 0.25, "buy" if k % 3 else "sell")
            for k in range(count)]  # fmt: skip


def expected(trades, tf_us, last_ts=None):
    """The candles of ``trades`` on ``tf_us``, worked out directly: (start, o, h, l, c, volume, count) for
    every bucket from the first trade's to ``last_ts``'s (default: the last trade's), empty ones carrying
    the previous close. Trades are given in time order."""
    buckets: dict[int, list] = {}
    for ts, price, amount, _ in trades:
        b = ts - ts % tf_us
        if b not in buckets:
            buckets[b] = [price, price, price, price, 0.0, 0]
        row = buckets[b]
        row[1], row[2], row[3] = max(row[1], price), min(row[2], price), price
        row[4] += amount
        row[5] += 1
    first = min(buckets)
    last = max(buckets) if last_ts is None else last_ts - last_ts % tf_us
    out, close = [], None
    for b in range(first, last + tf_us, tf_us):
        if b in buckets:
            o, h, lo, c, v, n = buckets[b]
            close = c
            out.append((b, o, h, lo, c, pytest.approx(v, rel=1e-12), n))
        else:
            out.append((b, close, close, close, close, 0.0, 0))
    return out


def _ohlcv(candles, tf):
    return [
        (c.timestamp_in, c.open, c.high, c.low, c.close, c.volume, c.trade_count)
        for c in candles
        if c.timeframe == tf
    ]


def _run(handler, frames):
    candles = []
    for data in frames:
        candles += handler.handle_bytes(data).candles
    return candles


def _end(seq, session="test"):
    return control_frame("end", seq, session=session, reason="replay_finished", error=None, counts={})


def _frames(trades, per_frame=10, seq0=0, session="test"):
    rows = [(0, ts, p, a, side) for ts, p, a, side in trades]
    return [
        trade_frame(rows[i : i + per_frame], seq=seq0 + k, session=session)
        for k, i in enumerate(range(0, len(rows), per_frame))
    ]


def _raw_trade_frame(rows, seq=0, session="test", symbols=(("binance", "BTCUSDT"),)):
    """rows: (sym, ts, local_ts, price, amount, side code, id bytes); ids are patched into the blob as
    raw bytes (they may be invalid UTF-8)."""
    header = {
        "type": "trade", "seq": seq, "session": session, "symbols": [list(s) for s in symbols],
        "recv_mono_us": 1, "sent_mono_us": 2,
    }  # fmt: skip
    placeholders = [f"\x01{k:03d}" for k in range(len(rows))]
    names = ("sym", "timestamp", "local_timestamp", "price", "amount", "side")
    cols = {name: [r[k] for r in rows] for k, name in enumerate(names)}
    cols["id"] = [p if len(r[6]) == 4 else "" for p, r in zip(placeholders, rows, strict=True)]
    data = encode_frame(header, cols)
    for p, r in zip(placeholders, rows, strict=True):
        if len(r[6]) == 4:
            data = data.replace(p.encode(), r[6], 1)
    return data


def _balanced(ledger):
    """Every row of every type is applied or dropped by reason; every trade applied is in a candle,
    dropped by the candle engine by reason, or held."""
    for kind, row in ledger.items():
        assert row["received"] == row["applied"] + sum(row["dropped"].values()), kind
    if "trade" in ledger:
        candles = ledger["trade"]["candles"]
        assert candles["received"] == ledger["trade"]["applied"]
        assert candles["received"] == candles["applied"] + sum(candles["dropped"].values()) + candles["held"]


# -- clock jumps and bad timestamps among good trades ---------------------------------------------------
@pytest.mark.parametrize(
    ("bad_ts", "reason"),
    [(YEAR_3000, "timestamp"), (T0 + DAY, "jump"), (PAST_9999, "timestamp")],
    ids=["year-3000", "a-day-ahead", "past-9999"],
)
def test_one_far_future_trade_among_good_ones_changes_nothing(bad_ts, reason, caplog):
    good = _good_trades()
    mixed = [*good[:13], (bad_ts, 1e6, 1.0, "buy"), *good[13:]]  # in the middle of the second frame
    h = _handler()
    start = time.monotonic()
    candles = _run(h, [*_frames(mixed), _end(5)])
    assert time.monotonic() - start < 5  # no walk across the years
    assert _ohlcv(candles, "15s") == expected(good, 15 * S)
    assert _ohlcv(candles, "1m") == expected(good, MINUTE)
    stats = h.get_stats()
    assert stats["late_ticks"] == 0  # the trades after it are not late
    ledger = h.row_ledger()
    _balanced(ledger)
    handed = len(mixed) if reason == "jump" else len(good)  # a bad timestamp stops before the engine
    assert ledger["trade"] == {
        "received": len(mixed), "applied": handed, "dropped": {} if reason == "jump" else {reason: 1},
        "candles": {
            "received": handed, "applied": len(good), "dropped": {reason: 1} if reason == "jump" else {},
            "held": 0,
        },
    }  # fmt: skip
    if reason == "jump":
        assert stats["drops"]["jump"] == 1 and "not confirmed by the trades after them" in caplog.text


def test_a_far_future_trade_through_the_engine_alone_is_held_then_dropped():
    # no range check here (LiveCandleProcessor is the engine's own API): the jump rule alone
    good = _good_trades()
    p = LiveCandleProcessor("BTC-USDT", timeframes=TF)
    candles = []
    for ts, price, amount, side in [*good[:20], (YEAR_3000, 1e6, 1.0, "buy"), *good[20:]]:
        candles += p.add_trade(ts, price, amount, side)
    candles += p.finish()
    assert _ohlcv(candles, "15s") == expected(good, 15 * S)
    stats = p.get_stats()
    assert (stats["jump_dropped"], stats["late_ticks"], stats["drops"]["jump"]) == (1, 0, 1)


def test_a_far_future_trade_at_the_very_end_is_dropped_at_finish():
    good = _good_trades()
    h = _handler()
    candles = _run(h, [*_frames([*good, (T0 + DAY, 1e6, 1.0, "buy")]), _end(5)])
    assert _ohlcv(candles, "15s") == expected(good, 15 * S)
    assert h.row_ledger()["trade"]["candles"]["dropped"] == {"jump": 1}


@pytest.mark.parametrize(
    "stray", [YEAR_1970, T0 - 20 * 365 * DAY, T0 + 40 * 365 * DAY], ids=["1970", "2003", "2063"]
)
def test_a_stray_first_trade_does_not_anchor_the_engine_clock(stray, caplog):
    good = _good_trades()
    p = LiveCandleProcessor("BTC-USDT", timeframes=TF)
    candles = p.add_trade(stray, 5.0, 1.0, "buy")
    for ts, price, amount, side in good:
        candles += p.add_trade(ts, price, amount, side)
    candles += p.finish()
    assert _ohlcv(candles, "15s") == expected(good, 15 * S)  # nothing in 1970, nothing walked
    assert _ohlcv(candles, "1m") == expected(good, MINUTE)
    assert p.get_stats()["jump_dropped"] == 1 and "dropped as a stray anchor" in caplog.text
    assert p.engine.ledger["applied"] == len(good)


def test_a_first_trade_in_1970_is_a_bad_row_and_anchors_nothing():
    good = _good_trades()
    h = _handler()
    first = trade_frame([(0, YEAR_1970, 5.0, 1.0, "buy")], seq=0)
    candles = _run(h, [first, *_frames(good, seq0=1), _end(6)])
    assert _ohlcv(candles, "15s") == expected(good, 15 * S)
    ledger = h.row_ledger()["trade"]
    assert ledger["dropped"] == {"timestamp": 1} and ledger["applied"] == len(good)
    assert ledger["candles"]["applied"] == len(good) and ledger["candles"]["dropped"] == {}
    assert h.engines["binance"].observed_from == good[0][0]


def test_a_legitimate_six_hour_hole_publishes_every_candle_and_drops_nothing():
    before = _good_trades(count=20)
    after = _good_trades(start=T0 + 6 * 3600 * S, count=20)
    h = _handler()
    candles = _run(h, [*_frames(before + after), _end(4)])
    assert _ohlcv(candles, "15s") == expected(before + after, 15 * S)  # 1,440 empty ones in the hole
    assert len(_ohlcv(candles, "15s")) > 1440
    assert h.row_ledger()["trade"] == {
        "received": 40, "applied": 40, "dropped": {},
        "candles": {"received": 40, "applied": 40, "dropped": {}, "held": 0},
    }  # fmt: skip


def test_a_confirmed_jump_of_decades_closes_a_bounded_number_of_buckets():
    before = _good_trades(count=20)
    after = _good_trades(start=T0 + 60 * 365 * DAY, count=20)  # 2083: in range, and confirmed
    h = TickHandler(CandleSettings(grace_ms=0))  # every default timeframe: 15s .. 24h
    start = time.monotonic()
    candles = _run(h, [*_frames(before + after), _end(4)])
    assert time.monotonic() - start < 10
    engine = h.engines["binance"]
    assert engine.max_walk == DAY // (15 * S) == 5760
    fifteen = _ohlcv(candles, "15s")
    assert len(fifteen) <= engine.max_walk + 2 * len(expected(after, 15 * S))
    assert engine.buckets_skipped > 60 * 365 * 5000
    # the trades on both sides are all in candles, none late
    assert sum(c[6] for c in fifteen) == 40 and h.get_stats()["late_ticks"] == 0
    assert fifteen[-len(expected(after, 15 * S)) :] == expected(after, 15 * S)
    assert _ohlcv(candles, "24h")[-1][6] == 20


def test_the_wall_clock_moving_years_closes_a_bounded_number_of_buckets():
    now = [T0 + S]
    h = TickHandler(CandleSettings(timeframes=TF, clock="wall", grace_ms=0), now=lambda: now[0])
    h.handle_bytes(trade_frame([(0, T0 + 2 * S, 100.0, 1.0, "buy")]))
    now[0] = T0 + 30 * 365 * DAY
    start = time.monotonic()
    batches = h.advance()
    assert time.monotonic() - start < 5
    engine = h.engines["binance"]
    assert sum(len(b) for b in batches) <= engine.max_walk + engine.max_walk // 4 + 1
    assert engine.buckets_skipped > 0 and engine.closed_through == now[0] - now[0] % (15 * S)


def test_sparse_trades_are_held_until_confirmed_then_applied():
    # one symbol trading every two minutes: each trade is more than max_jump ahead of the clock
    sparse = [(T0 + k * 120 * S, 100.0 + k, 1.0, "buy") for k in range(8)]
    h = _handler()
    candles = _run(h, [*_frames(sparse, per_frame=1), _end(8)])
    _balanced(h.row_ledger())
    ledger = h.row_ledger()["trade"]["candles"]
    # the last two wait for a confirmation that never comes: dropped at the end, the others applied
    assert (ledger["applied"], ledger["dropped"]) == (6, {"jump": 2})
    assert _ohlcv(candles, "15s") == expected(sparse[:6], 15 * S)


def test_late_trades_in_the_ledger_under_both_policies():
    frames = [
        trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy"), (0, T0 + 16 * S, 101.0, 1.0, "buy")], seq=0),
        trade_frame([(0, T0 + 2 * S, 99.0, 1.0, "sell")], seq=1),  # [0, 15) has closed: late
        trade_frame([(0, T0 + 75 * S, 98.0, 1.0, "sell")], seq=2),  # 59 s ahead: no jump to confirm
        trade_frame([(0, T0 + 3 * S, 97.0, 1.0, "sell")], seq=3),  # late, and 5 buckets back
        _end(4),
    ]
    for policy, candles in (
        ("drop", {"received": 5, "applied": 3, "dropped": {"late": 2}, "held": 0}),
        # revise_window 4: the trade at 2 s revises [0, 15); the one at 3 s is too old for it
        ("revise", {"received": 5, "applied": 4, "dropped": {"late_too_old": 1}, "held": 0}),
    ):
        h = TickHandler(CandleSettings(timeframes=("15s",), grace_ms=0, late_policy=policy))
        _run(h, frames)
        assert h.row_ledger()["trade"]["candles"] == candles, policy
        _balanced(h.row_ledger())


# -- sequence numbers -----------------------------------------------------------------------------------
def test_a_repeated_frame_is_dropped_never_applied_twice(caplog):
    good = _good_trades(count=30)
    frames = _frames(good)  # seq 0, 1, 2
    h = _handler()
    candles = _run(h, [frames[0], frames[1], frames[1], frames[0], frames[2], _end(3)])
    assert sum(c[6] for c in _ohlcv(candles, "15s")) == 30  # the data has 30 trades
    assert _ohlcv(candles, "15s") == expected(good, 15 * S)
    counts = h.get_stats()["counts"]
    assert (counts["frames_duplicate"], counts.get("frames_lost", 0)) == (2, 0)
    assert "frame seq 1 repeats or precedes seq 1: dropped" in caplog.text
    ledger = h.row_ledger()["trade"]
    assert ledger["dropped"] == {"duplicate_frame": 20} and ledger["applied"] == 30
    frames_ledger = h.frame_ledger()
    assert frames_ledger["frames_received"] == 6 == frames_ledger["frames_decoded"]
    assert (frames_ledger["frames_applied"], frames_ledger["frames_duplicate"]) == (4, 2)


def test_skipped_seqs_are_lost_frames_and_an_absurd_seq_is_dropped_unless_followed():
    h = _handler()
    h.handle_bytes(trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy")], seq=0))
    h.handle_bytes(trade_frame([(0, T0 + 2 * S, 100.0, 1.0, "buy")], seq=3))  # 1, 2 lost
    h.handle_bytes(trade_frame([(0, T0 + 3 * S, 100.0, 1.0, "buy")], seq=2**50))  # absurd: dropped
    h.handle_bytes(trade_frame([(0, T0 + 4 * S, 100.0, 1.0, "buy")], seq=4))  # the session goes on
    ledger = h.frame_ledger()
    assert (ledger["frames_lost"], ledger["frames_seq_jump"], ledger["frames_applied"]) == (2, 1, 3)
    # two in a row: a real jump after all (the first of them is still dropped)
    h.handle_bytes(trade_frame([(0, T0 + 5 * S, 100.0, 1.0, "buy")], seq=2**40))
    h.handle_bytes(trade_frame([(0, T0 + 6 * S, 100.0, 1.0, "buy")], seq=2**40 + 1))
    ledger = h.frame_ledger()
    assert (ledger["frames_seq_jump"], ledger["frames_applied"]) == (2, 4)
    assert ledger["frames_lost"] == 2 + (2**40 - 5)
    assert h.engines["binance"].ledger["applied"] == 4


def test_a_storm_of_lost_frames_keeps_the_gap_list_short_and_the_flags_right():
    h = _handler()
    seq, candles = 0, []
    for k in range(600):  # every frame after a lost one: a frames_lost gap for every symbol, each time
        candles += h.handle_bytes(trade_frame([(0, T0 + k * S, 100.0, 1.0, "buy")], seq=seq)).candles
        seq += 2
    candles += h.handle_bytes(_end(seq)).candles
    engine = h.engines["binance"]
    assert h.counts["frames_lost"] == 600 and len(engine._gaps.live) < 40  # the end frame skips one too
    # a frame lost after every second from 0 s on: every 15 s candle overlaps a gap
    assert [c.has_gap for c in candles if c.timeframe == "15s"] == [True] * 40


# -- bad rows -------------------------------------------------------------------------------------------
def test_a_mixed_trade_frame_keeps_its_good_rows(caplog):
    good = _good_trades(count=12)
    ok = [(0, ts, ts + 5, p, a, SIDES[side], b"good") for ts, p, a, side in good]
    t = T0 + 20 * S
    bad = [
        (3, t, t, 100.0, 1.0, 1, b"sym!"),  # sym index beyond the table of one symbol
        (0, YEAR_1970, t, 100.0, 1.0, 1, b""),
        (0, YEAR_3000, t, 100.0, 1.0, 1, b""),
        (0, PAST_9999, t, 100.0, 1.0, 1, b""),
        (0, INT64_MISSING, t, 100.0, 1.0, 1, b""),
        (0, t, 0, 100.0, 1.0, 1, b""),  # local_timestamp
        (0, t, PAST_9999, 100.0, 1.0, 1, b""),
        (0, t, t, NAN, 1.0, 1, b""),
        (0, t, t, -100.0, 1.0, 1, b""),
        (0, t, t, 0.0, 1.0, 1, b""),
        (0, t, t, float("inf"), 1.0, 1, b""),
        (0, t, t, 100.0, NAN, 1, b""),
        (0, t, t, 100.0, -1.0, 1, b""),
        (0, t, t, 100.0, 0.0, 1, b""),
        (0, t, t, 1e200, 1e200, 1, b""),  # each finite, the notional is not
        (0, t, t, 100.0, 1.0, 3, b""),  # side code beyond the enum
        (0, t, t, 100.0, 1.0, 255, b""),
        (0, t, t, 100.0, 1.0, 1, b"\xff\xfe\x80a"),  # id: invalid UTF-8
    ]
    rows = ok[:5] + bad[:9] + ok[5:9] + bad[9:] + ok[9:]
    h = _handler()
    candles = _run(h, [_raw_trade_frame(rows, seq=0), _end(1)])
    assert _ohlcv(candles, "15s") == expected(good, 15 * S)
    ledger = h.row_ledger()["trade"]
    assert ledger["dropped"] == {
        "sym": 1, "timestamp": 4, "local_timestamp": 2, "price": 4, "amount": 4, "side": 2, "id": 1,
    }  # fmt: skip
    assert ledger["applied"] == 12 and ledger["received"] == 12 + 18
    assert h.get_stats()["bad_rows"] == {"trade": 18} and h.counts["bad_trades"] == 18
    assert (
        "trade frame seq=0 row 5 (?:?): sym=3; 18 bad row(s) in this frame dropped, the other 12 kept"
        in caplog.text
    )


def _header(kind, seq, symbols, **extra):
    return {"type": kind, "seq": seq, "session": "s", "symbols": [list(s) for s in symbols],
            "recv_mono_us": 1, "sent_mono_us": 2, **extra}  # fmt: skip


def test_mixed_frames_of_every_other_type_keep_their_good_rows_and_every_record_serializes():
    t = T0 + 5 * S
    h = _handler()
    records = []
    one = (("binance", "BTCUSDT"),)
    book = {
        "sym": [0, 4, 0], "timestamp": [t, t, YEAR_3000], "local_timestamp": [t, t, t],
        "bid_price": [100.0, 100.0, 100.0], "bid_amount": [1.0, 1.0, 1.0],
        "ask_price": [101.0, 101.0, 101.0], "ask_amount": [1.0, 1.0, 1.0],
    }  # fmt: skip
    records += h.handle_bytes(
        encode_frame(_header("book_snapshot", 0, one, depth=1, interval_ms="x"), book)
    ).records
    perp = (("binance-futures", "BTCUSDT"),)
    ticker = {
        "sym": [0, 0, 0], "timestamp": [t, t, t], "local_timestamp": [t, 0, t], "last_price": [1.0, 1.0, 1.0],
        "open_interest": [NAN] * 3, "funding_rate": [1e-4] * 3, "funding_timestamp": [t, t, PAST_9999],
        "predicted_funding_rate": [NAN] * 3, "index_price": [1.0] * 3, "mark_price": [1.0] * 3,
    }  # fmt: skip
    records += h.handle_bytes(encode_frame(_header("derivative_ticker", 1, perp), ticker)).records
    liq = {
        "sym": [0, 0], "timestamp": [t, t], "local_timestamp": [t, t], "price": [1.0, 1.0],
        "amount": [1.0, 0.0], "side": [1, 2], "id": ["a", "b"],
    }  # fmt: skip
    records += h.handle_bytes(encode_frame(_header("liquidation", 2, perp), liq)).records
    floats = (
        "strike_price", "best_bid_price", "best_bid_amount", "best_bid_iv", "best_ask_price",
        "best_ask_amount", "best_ask_iv", "last_price", "open_interest", "mark_price", "mark_iv", "delta",
        "gamma", "vega", "theta", "rho", "underlying_price",
    )  # fmt: skip
    option = {name: [1.0, 1.0, 1.0] for name in floats}
    option |= {
        "sym": [0, 0, 0], "timestamp": [t, t, t], "local_timestamp": [t, t, t], "option_type": [1, 2, 1],
        "expiration": [t + DAY, YEAR_3000, t + DAY], "underlying_index": ["\x01aa", "ok", "\x02bb"],
    }  # fmt: skip
    data = encode_frame(_header("option_summary", 3, (("deribit", "BTC-1JAN24-1-C"),)), option)
    records += h.handle_bytes(data.replace(b"\x01aa", b"\xc3\x28a")).records  # invalid UTF-8 in row 0
    disconnect = {"sym": [0, 1, 0], "local_timestamp": [t, t, PAST_9999]}
    records += h.handle_bytes(encode_frame(_header("disconnect", 4, one), disconnect)).records
    ledger = h.row_ledger()
    _balanced(ledger)
    assert {k: (v["applied"], v["dropped"]) for k, v in ledger.items()} == {
        "book_snapshot": (1, {"sym": 1, "timestamp": 1}),
        "derivative_ticker": (1, {"local_timestamp": 1, "funding_timestamp": 1}),
        "liquidation": (1, {"amount": 1}),
        "option_summary": (1, {"expiration": 1, "underlying_index": 1}),
        "disconnect": (1, {"sym": 1, "local_timestamp": 1}),
    }
    assert [type(r).__name__ for r in records if type(r).__name__ != "Gap"] == [
        "BookSnapshot", "DerivativeTicker", "FundingRate", "Liquidation", "OptionSummary",
    ]  # fmt: skip
    for record in records:
        orjson.dumps(record_message(record))
    assert h.frame_ledger()["frames_failed"] == 0


# -- undecodable frames ---------------------------------------------------------------------------------
def _patch_header(data, **changes):
    (length,) = struct.unpack_from("<I", data, 8)
    header = orjson.loads(data[12 : 12 + length])
    for key, value in changes.items():
        if value is ...:
            header.pop(key)
        else:
            header[key] = value
    head = orjson.dumps(header)
    body = data[12 + length + (-(12 + length) % 8) :]
    return data[:8] + struct.pack("<I", len(head)) + head + b"\0" * (-(12 + len(head)) % 8) + body


def test_undecodable_frames_are_counted_by_reason_and_the_next_good_frame_is_applied(caplog):
    good = trade_frame([(0, T0 + S, 100.0, 1.0, "buy"), (0, T0 + 2 * S, 101.0, 1.0, "sell")], seq=0)
    bad = {
        "short": good[:8],
        "magic": b"XXXX" + good[4:],
        "version": good[:4] + struct.pack("<H", 9) + good[6:],
        "header_length": good[:8] + struct.pack("<I", 10**6) + good[12:],
        "header_json": good[:12] + b"x" + good[13:],
        "unknown_type": _patch_header(good, type="nope"),
        "header_n": _patch_header(good, n=-1),
        "header_seq": _patch_header(good, seq=...),
        "header_session": _patch_header(good, session=5),
        "header_symbols": _patch_header(good, symbols=[["binance"]]),
        "truncated": good[:-8],
        "length": good + b"\0" * 8,
    }
    h = _handler()
    for data in bad.values():
        assert h.handle_bytes(data).candles == []
    h.handle_bytes(_patch_header(good, symbols=[["binance", "BTCUSDT"], ["binance", "BTCUSDT"]]))
    h.handle_bytes(_patch_header(good, type=["trade"]))  # unhashable: still just unknown
    h.handle_bytes(good)
    ledger = h.frame_ledger()
    assert ledger["undecodable"] == {**dict.fromkeys(bad, 1), "header_symbols": 2, "unknown_type": 2}
    assert (ledger["frames_received"], ledger["frames_undecodable"], ledger["frames_decoded"]) == (15, 14, 1)
    assert h.counts["bad_frames"] == 14 and ledger["frames_applied"] == 1
    assert h.engines["binance"].ledger["applied"] == 2
    assert "wire version 9, this processor reads version 1" in caplog.text


# -- the last resort ------------------------------------------------------------------------------------
def test_an_exception_while_applying_a_frame_is_counted_logged_and_the_next_frame_applied(
    caplog, monkeypatch
):
    h = _handler()
    h.handle_bytes(trade_frame([(0, T0 + S, 100.0, 1.0, "buy")], seq=0))
    engine = h.engines["binance"]
    real = engine.on_slots  # what the router hands a frame's trades to

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "on_slots", broken)
    with caplog.at_level(logging.ERROR):
        assert h.handle_bytes(trade_frame([(0, T0 + 2 * S, 100.0, 1.0, "buy")] * 3, seq=1)).candles == []
    assert "frame seq=1 type=trade session=test failed: RuntimeError: boom" in caplog.text
    monkeypatch.setattr(engine, "on_slots", real)
    candles = _run(h, [trade_frame([(0, T0 + 16 * S, 101.0, 1.0, "buy")], seq=2), _end(3)])
    assert [c[6] for c in _ohlcv(candles, "15s")] == [1, 1]
    assert h.frame_ledger()["frames_failed"] == 1 and h.frame_ledger()["failed"] == {"RuntimeError": 1}
    ledger = h.row_ledger()["trade"]
    assert ledger["dropped"] == {"frame_failed": 3} and ledger["applied"] == 2
    _balanced(h.row_ledger())


def test_a_failing_end_frame_still_ends_the_session(monkeypatch):
    h = _handler()
    monkeypatch.setattr(h, "finish", lambda: 1 / 0)
    result = h.handle_bytes(_end(0))
    assert result.ended and h.counts["frames_failed"] == 1


def test_first_tick_ignores_timestamps_out_of_range():
    from market_data_tick_handler.wire import decode_frame

    frame = decode_frame(trade_frame([(0, YEAR_1970, 1.0, 1.0, "buy"), (0, T0, 1.0, 1.0, "buy")]))
    assert TickHandler.first_tick_us(frame) == T0
    assert TickHandler.first_tick_us(decode_frame(trade_frame([(0, YEAR_3000, 1.0, 1.0, "buy")]))) is None


def test_rows_of_a_frame_with_a_bad_sym_are_checked_whole_array(monkeypatch):
    # a thousand bad rows among a thousand good ones: counted by reason without a per-row Python step
    n = 2000
    ts = T0 + np.arange(n) * 1000
    rows = [(0 if k % 2 else 9, int(ts[k]), int(ts[k]) + 5, 100.0, 1.0, 1, b"") for k in range(n)]
    h = _handler()
    h.handle_bytes(_raw_trade_frame(rows))
    assert h.row_ledger()["trade"]["dropped"] == {"sym": 1000}
    assert h.engines["binance"].ledger["applied"] == 1000
