"""Gaps (data_types/gaps.py): stale streams on the wall and event clocks, disconnects and lost frames,
through TickHandler and on GapProcessor alone; see docs/DATA_TYPES.md. Every start and end in µs is
worked out by hand."""

from collections.abc import Callable

import numpy as np
from helpers import T0, S, control_frame, trade_frame

from market_data_tick_handler.config import config_from_dict
from market_data_tick_handler.streaming_service import DataTypeRouter
from market_data_tick_handler.streaming_service.clock import EventClock
from market_data_tick_handler.streaming_service.data_types import Gap, GapProcessor
from market_data_tick_handler.streaming_service.data_types.gaps import moves_clock
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, FrameResult, TickHandler
from market_data_tick_handler.wire import decode_frame, encode_frame

TF = ("15s", "1m")


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
        "processor_restart": 0,
        "journal_missing": 0,
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
    p = GapProcessor(stale_after_ms=10_000, clock=EventClock(now=lambda: 42))
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


# -- the gap tracker on its own settings: stale_after_ms from the config, both clocks ----------------------
def _handler(
    stale_after_ms: int, clock: str = "event", now: Callable[[], int] | None = None, gaps_enabled: bool = True
) -> TickHandler:
    """A TickHandler whose data types come from the config (``data_types.gaps``), on ``clock``."""
    data_types = config_from_dict(
        {"data_types": {"gaps": {"stale_after_ms": stale_after_ms, "enabled": gaps_enabled}}}
    ).data_types
    kwargs = {} if now is None else {"now": now}
    router = DataTypeRouter(data_types, clock=clock, **kwargs)
    return TickHandler(CandleSettings(timeframes=TF, clock=clock, grace_ms=0), router=router, **kwargs)


BTC_ETH = (("binance", "BTCUSDT"), ("binance", "ETHUSDT"))


def _gaps(result: FrameResult) -> list[tuple]:
    """(symbol, reason, start - T0, end - T0 or None) of a result's gap records, in µs."""
    return [
        (g.exchange_symbol, g.reason, g.start - T0, None if g.end is None else g.end - T0)
        for g in result.records
        if g.TYPE == "gap"
    ]


def test_event_clock_a_symbol_is_stale_exactly_stale_after_ms_after_its_last_message():
    h = _handler(5_000)
    h.handle_bytes(
        trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy"), (1, T0 + 1 * S, 10.0, 1.0, "buy")], 0, "g", BTC_ETH)
    )
    assert _gaps(h.handle_bytes(trade_frame([(1, T0 + 4 * S, 10.0, 1.0, "buy")], 1, "g", BTC_ETH))) == []
    # the exchange clock at 6 s - 1 µs: BTC silent for 4.999999 s, not yet stale
    early = h.handle_bytes(trade_frame([(1, T0 + 6 * S - 1, 10.0, 1.0, "buy")], 2, "g", BTC_ETH))
    assert _gaps(early) == []
    # at 6 s: silent for 5 s = stale_after_ms; the gap starts at its last message (1 s), still open
    at = h.handle_bytes(trade_frame([(1, T0 + 6 * S, 10.0, 1.0, "buy")], 3, "g", BTC_ETH))
    assert _gaps(at) == [("BTCUSDT", "stale", 1 * S, None)]
    # BTC is back at 8 s: the same gap, ended
    back = h.handle_bytes(
        trade_frame([(0, T0 + 8 * S, 101.0, 1.0, "buy"), (1, T0 + 8 * S, 10.0, 1.0, "buy")], 4, "g", BTC_ETH)
    )
    assert _gaps(back) == [("BTCUSDT", "stale", 1 * S, 8 * S)]
    ended = h.handle_bytes(control_frame("end", 5, session="g", reason="replay_finished", counts={}))
    # [0, 15) overlaps BTC's gap (1 s, 8 s), not ETH's (none)
    flags = {(c.exchange_symbol, c.timeframe): c.has_gap for c in ended.candles}
    assert flags == {
        ("BTCUSDT", "15s"): True,
        ("ETHUSDT", "15s"): False,
        ("BTCUSDT", "1m"): True,
        ("ETHUSDT", "1m"): False,
    }
    assert h.get_stats()["gaps"] == {
        "disconnect": 0, "stale": 1, "frames_lost": 0, "ingester_exit": 0, "processor_restart": 0,
        "journal_missing": 0, "open": 0,
    }  # fmt: skip


def test_event_clock_a_subscribed_symbol_never_heard_from_is_stale_from_the_first_clock():
    h = _handler(5_000)
    # ETH is in the symbol table (subscribed) but has no row; the exchange clock starts at 2 s
    h.handle_bytes(trade_frame([(0, T0 + 2 * S, 100.0, 1.0, "buy")], 0, "g", BTC_ETH))
    assert _gaps(h.handle_bytes(trade_frame([(0, T0 + 7 * S - 1, 100.0, 1.0, "buy")], 1, "g", BTC_ETH))) == []
    result = h.handle_bytes(trade_frame([(0, T0 + 7 * S, 100.0, 1.0, "buy")], 2, "g", BTC_ETH))
    assert _gaps(result) == [("ETHUSDT", "stale", 2 * S, None)]


def test_a_silence_between_two_rows_of_one_frame_is_a_closed_stale_gap_and_flags_the_candles_it_closes():
    h = _handler(30_000)
    rows = [
        (0, T0 + 1 * S, 100.0, 1.0, "buy"),
        (0, T0 + 2 * S, 100.0, 1.0, "buy"),
        (0, T0 + 40 * S, 101.0, 1.0, "buy"),
    ]
    result = h.handle_bytes(trade_frame(rows, 0, "g"))
    # 2 s -> 40 s: 38 s without a message, more than 30 s: one gap, reported closed
    assert _gaps(result) == [("BTCUSDT", "stale", 2 * S, 40 * S)]
    # the clock at 40 s closes [0, 15) and [15, 30), both overlapping (2 s, 40 s)
    assert [((c.timestamp_in - T0) // S, c.has_gap) for c in result.candles] == [(0, True), (15, True)]


def test_a_silence_inside_a_one_symbol_frame_is_found_in_time_order_when_the_rows_are_not():
    h = _handler(30_000)
    rows = [
        (0, T0 + 1 * S, 100.0, 1.0, "buy"),
        (0, T0 + 40 * S, 101.0, 1.0, "buy"),
        (0, T0 + 2 * S, 100.0, 1.0, "buy"),  # late: in time order the silence is 2 s -> 40 s, not 1 s -> 40 s
    ]
    assert _gaps(h.handle_bytes(trade_frame(rows, 0, "g"))) == [("BTCUSDT", "stale", 2 * S, 40 * S)]


def test_the_clock_moves_with_a_confirmed_jump_and_not_with_a_stray_or_an_unconfirmed_one():
    def moves(ts, clock=0):  # the jump rule of candle_engine.py: 60 s, two more trades to confirm
        return moves_clock(np.array(ts, dtype=np.int64) * S, clock * S, 60 * S, 2).tolist()

    assert moves([10, 20, 200, 201, 202, 203]) == [True] * 6  # a hole of 180 s, confirmed
    assert moves([10, 500, 20, 30]) == [True, False, True, True]  # a stray, refuted by the trade after
    assert moves([10, 500, 501]) == [True, False, False]  # not confirmed by the end of the frame
    assert moves([170, 171, 172], clock=100) == [True] * 3  # a hole right after the clock
    assert moves([10, 70, 130, 190]) == [True] * 4  # each within 60 s of the one before


def test_a_silence_longer_than_the_clock_jump_ends_at_the_first_trade_after_it():
    h = _handler(30_000)
    h.handle_bytes(
        trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy"), (0, T0 + 2 * S, 100.0, 1.0, "buy")], 0, "g")
    )
    # 298 s without a trade (more than the clock's 60 s jump): the trades after it confirm the jump
    back = [(0, T0 + 300 * S + k * 500_000, 101.0, 1.0, "buy") for k in range(4)]
    resumed = h.handle_bytes(trade_frame(back, 1, "g"))
    assert _gaps(resumed) == [("BTCUSDT", "stale", 2 * S, 300 * S)]  # not at a later frame's first trade
    later = h.handle_bytes(trade_frame([(0, T0 + 320 * S, 101.0, 1.0, "buy")], 2, "g"))
    flags = {
        (c.timestamp_in - T0) // S: c.has_gap for c in resumed.candles + later.candles if c.timeframe == "15s"
    }
    assert flags[285] is True and flags[300] is False  # the candle the trades came back in has no gap


def test_a_long_silence_flags_the_same_candles_however_the_trades_are_cut_into_frames():
    # a trade a second from 0 s to 199 s, none for 241 s (more than the 60 s jump), then 440 s to 539 s
    times = [*range(0, 200), *range(440, 540)]
    trades = [(0, T0 + t * S, 100.0 + t % 7, 1.0, "buy") for t in times]

    def candles(size: int) -> list[tuple]:
        h = _handler(30_000)
        out = []
        for seq, at in enumerate(range(0, len(trades), size)):
            out += h.handle_bytes(trade_frame(trades[at : at + size], seq, "g")).candles
        out += [c for batch in h.finish() for c in batch]
        return [(c.timeframe, (c.timestamp_in - T0) // S, c.trade_count, c.has_gap) for c in out]

    one = candles(len(trades))
    for size in (7, 100, 250):  # a frame ends before, inside or after the hole
        assert candles(size) == one
    # the silence runs from 199 s to 440 s: the 15 s candles [195, 210) ... [435, 450) overlap it, no other
    flagged = [start for tf, start, _, gap in one if tf == "15s" and gap]
    assert flagged == list(range(195, 450, 15))


def test_event_clock_a_disconnect_starts_at_the_exchange_clock_and_ends_for_all_at_the_next_message():
    h = _handler(30_000)
    h.handle_bytes(
        trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy"), (1, T0 + 2 * S, 10.0, 1.0, "buy")], 0, "g", BTC_ETH)
    )
    # the disconnect's own local time (3 s) is the ingester's; the exchange clock is at 2 s (ETH's trade)
    opened = h.handle_bytes(
        control_frame("disconnect", 1, session="g", symbols=BTC_ETH, rows=[(0, T0 + 3 * S), (1, T0 + 3 * S)])
    )
    assert _gaps(opened) == [("BTCUSDT", "disconnect", 2 * S, None), ("ETHUSDT", "disconnect", 2 * S, None)]
    # the exchange's next message, an ETH trade at 20 s, ends both
    resumed = h.handle_bytes(trade_frame([(1, T0 + 20 * S, 10.0, 1.0, "buy")], 2, "g", BTC_ETH))
    assert sorted(_gaps(resumed)) == [
        ("BTCUSDT", "disconnect", 2 * S, 20 * S),
        ("ETHUSDT", "disconnect", 2 * S, 20 * S),
    ]
    gaps = h.get_stats()["gaps"]
    assert (gaps["disconnect"], gaps["open"]) == (2, 0)


def test_wall_clock_a_disconnect_starts_at_its_local_time_and_a_stale_symbol_at_stale_after_ms():
    now = [T0 + 1 * S]
    h = _handler(5_000, clock="wall", now=lambda: now[0])
    h.handle_bytes(trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy")], 0, "g"))  # heard from at 1 s (wall)
    # the next symbol to become stale: BTC, 5 s after 1 s; before any candle closes (the first at 15 s)
    assert h.next_deadline_us() == T0 + 6 * S
    now[0] = T0 + 6 * S - 1
    assert _gaps(h.poll()) == []
    now[0] = T0 + 6 * S
    assert _gaps(h.poll()) == [("BTCUSDT", "stale", 1 * S, None)]
    now[0] = T0 + 7 * S
    back = h.handle_bytes(trade_frame([(0, T0 + 7 * S, 100.0, 1.0, "buy")], 1, "g"))
    assert _gaps(back) == [("BTCUSDT", "stale", 1 * S, 7 * S)]  # ended by the message at 7 s (wall)
    # live, a disconnect starts at its own local time, 8 s, and ends at the next message, received at 9 s
    now[0] = T0 + 8 * S + 500
    opened = h.handle_bytes(
        control_frame("disconnect", 2, session="g", symbols=BTC_ETH[:1], rows=[(0, T0 + 8 * S)])
    )
    assert _gaps(opened) == [("BTCUSDT", "disconnect", 8 * S, None)]
    now[0] = T0 + 9 * S
    resumed = h.handle_bytes(trade_frame([(0, T0 + 9 * S, 100.0, 1.0, "buy")], 3, "g"))
    assert _gaps(resumed) == [("BTCUSDT", "disconnect", 8 * S, 9 * S)]


def test_lost_frames_give_every_symbol_seen_a_gap_from_the_exchange_clock_to_its_next_message():
    h = _handler(30_000)
    h.handle_bytes(
        trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy"), (1, T0 + 3 * S, 10.0, 1.0, "buy")], 0, "g", BTC_ETH)
    )
    # seq 1 and 2 never arrive: two frames lost; the exchange clock was at 3 s
    result = h.handle_bytes(trade_frame([(0, T0 + 12 * S, 100.0, 1.0, "buy")], 3, "g", BTC_ETH))
    # one exchange: its next message (BTC at 12 s) ends the gaps of both symbols
    assert sorted(_gaps(result)) == [
        ("BTCUSDT", "frames_lost", 3 * S, 12 * S),
        ("ETHUSDT", "frames_lost", 3 * S, 12 * S),
    ]
    stats = h.get_stats()
    assert (stats["counts"]["frames_lost"], stats["gaps"]["frames_lost"], stats["gaps"]["open"]) == (2, 2, 0)


def test_with_gaps_disabled_a_stale_symbol_still_flags_its_candles_but_no_gap_record_is_made():
    h = _handler(5_000, gaps_enabled=False)
    h.handle_bytes(
        trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy"), (1, T0 + 1 * S, 10.0, 1.0, "buy")], 0, "g", BTC_ETH)
    )
    result = h.handle_bytes(trade_frame([(1, T0 + 16 * S, 10.0, 1.0, "buy")], 1, "g", BTC_ETH))
    assert result.records == []
    # BTC silent from 1 s (stale at 6 s, noticed at 16 s): its [0, 15) overlaps; ETH's 1 s -> 16 s silence,
    # noticed only now, is one too
    flags = {(c.exchange_symbol, (c.timestamp_in - T0) // S): c.has_gap for c in result.candles}
    assert flags == {("BTCUSDT", 0): True, ("ETHUSDT", 0): True}
    stats = h.get_stats()
    assert stats["gaps"]["stale"] == 2 and stats["records_by_type"].get("gaps", 0) == 0
