"""The ledger (streaming_service/ledger.py) and the session gate (ingest/sessions.py), on hand-made counts
and frames. The end-to-end ledger of real runs is checked in tests/test_nothing_lost.py."""

from market_data_tick_handler.streaming_service import ledger
from market_data_tick_handler.streaming_service.ingest import Sessions
from market_data_tick_handler.wire import decode_frame, encode_frame


def test_an_entry_adds_up_only_when_its_parts_sum_to_its_input():
    assert ledger.Entry("wire", "frames", 10, {"received": 10}).ok
    short = ledger.Entry("wire", "trade rows", 8020, {"received": 408})
    assert not short.ok
    assert short.describe() == "wire trade rows: 8020 in, 408 accounted for = received 408"


def test_the_ingester_entries_hold_the_replay_server_against_tardis_dev_and_types_against_rows_and_drops():
    counts = {
        "raw": {"read": 8020, "sent": 8020, "received": 408, "skipped": 0},
        "normalized": {"trade": 410, "book_snapshot": 5, "disconnect": 2},
        "rows": {"trade": 408, "book_snapshot": 5, "disconnect": 6},  # a row per symbol of each
        "frames_by_type": {"trade": 3, "book_snapshot": 1, "disconnect": 2},
        "dropped": {"unknown_type:trade": 2},
    }
    source, trades, books, disconnects = ledger.ingester_entries(counts)
    assert (source.stage, source.expected, source.accounted, source.ok) == ("source", 8020, 408, False)
    assert (trades.expected, dict(trades.parts), trades.ok) == (
        410,
        {"rows": 408, "unknown_type:trade": 2},
        True,
    )
    assert (books.expected, books.accounted, books.ok) == (5, 5, True)
    assert (disconnects.expected, dict(disconnects.parts), disconnects.ok) == (2, {"frames": 2}, True)


def test_the_wire_entries_compare_every_row_type_either_side_has():
    counts = {"frames": 12, "rows": {"trade": 100}}
    frames, disconnects, trades = ledger.wire_entries(counts, 11, {"trade": 100, "disconnect": 1})
    assert not frames.ok and (frames.expected, frames.accounted) == (12, 11)
    assert (disconnects.what, disconnects.expected, disconnects.accounted) == ("disconnect rows", 0, 1)
    assert trades.ok


def test_the_candle_entry_accounts_for_late_ahead_jumped_and_held_trades():
    candles = {"received": 100, "dropped": {"ahead": 2, "jump": 1}, "held": 3}
    entry = ledger.candle_entry(candles, late=4, trades_in_candles=90, base="15s")
    assert entry.ok
    assert dict(entry.parts) == {
        "in 15s candles": 90,
        "late": 4,
        "ahead of the clock": 2,
        "clock jump": 1,
        "held": 3,
    }
    assert not ledger.candle_entry(candles, late=4, trades_in_candles=89, base="15s").ok


def test_the_table_marks_the_lines_that_do_not_add_up_and_reads_back_from_stats():
    entries = [
        ledger.Entry("wire", "frames", 3, {"received": 3}),
        ledger.Entry("wire", "trade rows", 9, {"received": 7}),
    ]
    lines = ledger.table(entries)
    assert len(lines) == 3 and "MISMATCH" not in lines[1] and lines[2].endswith("<- MISMATCH")
    assert [ledger.from_dict(ledger.as_dict(e)) for e in entries] == entries


def _frame(kind: str, session: str, seq: int, n: int = 0):
    header = {"type": kind, "seq": seq, "session": session, "symbols": [["binance", "BTCUSDT"]]}
    columns = {}
    if kind == "trade":
        columns = {
            "sym": [0] * n, "timestamp": [1] * n, "local_timestamp": [1] * n, "price": [1.0] * n,
            "amount": [1.0] * n, "side": [1] * n, "id": [""] * n,
        }  # fmt: skip
    return decode_frame(encode_frame(header, columns))


def test_a_processor_that_started_its_ingester_takes_only_that_session():
    sessions = Sessions()
    mine = sessions.expect_new()
    assert not sessions.accept(_frame("start", "0ld5e55i0n", 0))
    assert not sessions.accept(_frame("trade", "0ld5e55i0n", 7, 3))
    assert sessions.accept(_frame("start", mine, 0))
    assert sessions.accept(_frame("trade", mine, 1, 5))
    assert dict(sessions.refused) == {"foreign_session": 2}
    assert (sessions.current.frames, dict(sessions.current.rows)) == (2, {"trade": 5})


def test_without_a_session_to_expect_the_first_start_frame_picks_it():
    sessions = Sessions()
    assert not sessions.accept(_frame("trade", "orphan", 41, 2))  # an orphan's frames: no start frame
    assert sessions.accept(_frame("start", "fresh", 0))
    assert not sessions.accept(_frame("trade", "orphan", 42, 2))
    assert sessions.accept(_frame("trade", "fresh", 1, 2))
    assert dict(sessions.refused) == {"before_start": 1, "foreign_session": 1}
