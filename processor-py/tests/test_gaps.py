"""Gaps (data_types/gaps.py): stale streams on the wall and event clocks, disconnects and lost frames,
through TickHandler and on GapProcessor alone; see docs/DATA_TYPES.md. Every start and end in µs is
worked out by hand."""

from helpers import T0, S, control_frame, trade_frame

from market_data_tick_handler.streaming_service.data_types import Gap, GapProcessor
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler
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
