"""The budget of gap lines in the log (``tick_processor/log_budget.py``): 20 a minute, the rest counted
in one line, and a checkpointed frame router of the format before it gets one."""

from __future__ import annotations

import logging
import pickle

from helpers import T0, S, trade_frame

from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler
from market_data_tick_handler.streaming_service.tick_processor.log_budget import LogBudget

log = logging.getLogger("test.log_budget")


def test_the_first_lines_of_a_window_pass_the_rest_are_counted_and_said_once_the_window_is_over(caplog):
    now = [0.0]
    budget = LogBudget(log, "gap", lines=3, window_s=60.0, now=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger=log.name):
        got = [
            budget.allow(kind) for kind in ("stale", "stale", "disconnect", "stale", "stale", "disconnect")
        ]
        assert got == [True, True, True, False, False, False]
        assert caplog.records == []  # nothing said of them yet
        now[0] = 59.9
        assert budget.allow("stale") is False  # still the same window
        now[0] = 60.0
        assert budget.allow("stale") is True  # a new window: its first line passes, after the count
    (record,) = caplog.records
    assert record.getMessage() == (
        "4 more gap lines not logged in the last 60 s (disconnect 1, stale 3): 3 a window at most;"
        " all are counted"
    )


def test_a_router_of_many_quiet_symbols_logs_twenty_gap_lines_then_counts_the_rest(caplog):
    symbols = tuple(("binance", f"S{k}USDT") for k in range(30))
    h = TickHandler(CandleSettings(clock="event"))
    # each symbol silent from 1 s + k ms to 46 s + k ms (stale after 30 s): thirty gaps, a line each
    first = [(k, T0 + S + 1000 * k, 1.0, 1.0, "buy") for k in range(30)]
    again = [(k, T0 + 46 * S + 1000 * k, 1.0, 1.0, "buy") for k in range(30)]
    with caplog.at_level(logging.WARNING):
        h.handle_bytes(trade_frame(first, 0, "g", symbols))
        h.handle_bytes(trade_frame(again, 1, "g", symbols))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("gap (stale)")]
    assert len(lines) == 20
    assert h.get_stats()["gaps"]["stale"] == 30  # every one counted


def test_a_checkpointed_router_without_a_gap_budget_gets_one():
    h = TickHandler()
    state = h.__dict__.copy()
    del state["gap_log"]  # as pickled before the budget existed
    old = TickHandler.__new__(TickHandler)
    old.__setstate__(state)
    assert old.gap_log.allow("stale") is True
    again = pickle.loads(pickle.dumps(h))
    assert (again.gap_log.what, again.gap_log.lines) == ("gap", 20)
