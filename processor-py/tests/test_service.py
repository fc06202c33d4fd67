"""StreamingService end to end inside one process: no ingester (``ingest.spawn: false``), wire frames pushed
by the test on a real ZeroMQ PUSH socket, serve mode on an in-memory bus. Only public behaviour is used:
the constructor, ``run()`` and its exit code, ``get_stats()`` and the published messages (and the stop
event a signal would set). Every candle and ledger number below is worked out by hand from the trades.
See docs/ARCHITECTURE.md "Sessions: start, end, and the hand-shake", "Candles" and "The ledger"."""

import asyncio
import dataclasses
import logging
import tempfile
from collections.abc import Iterable
from typing import Any

import orjson
import pytest
import zmq
import zmq.asyncio
from helpers import T0, S, control_frame, end_frame, replay_config, trade_frame

from market_data_tick_handler.config import ConfigError, StreamingConfig, config_from_dict
from market_data_tick_handler.streaming_service import ServeMode
from market_data_tick_handler.streaming_service.service import StreamingService
from market_data_tick_handler.streaming_service.tick_processor.frame_router import ExchangeAsk
from market_data_tick_handler.streaming_service.transport.inmemory import InMemoryBus, InMemoryTransport

START = {"source": "replay", "exchanges": ["binance"], "data_types": ["trade"], "speed": "max"}
TIMEOUT_S = 30


@pytest.fixture
def endpoint():
    """A private ipc:// endpoint (a short path: a socket path has at most ~100 characters)."""
    with tempfile.TemporaryDirectory(prefix="h6svc-", dir="/tmp") as tmp:
        yield f"ipc://{tmp}/frames.sock"


def _service(config: StreamingConfig, bus: InMemoryBus) -> StreamingService:
    """The service with serve mode publishing on ``bus`` (the one place that wires a sink by hand)."""
    return StreamingService(config, [ServeMode(config.serve, InMemoryTransport(bus))])


async def _push(endpoint: str, frames: Iterable[bytes]) -> zmq.asyncio.Socket:
    ctx = zmq.asyncio.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(endpoint)
    for data in frames:
        await push.send(data)
    return push


def _drain(queue: asyncio.Queue) -> list[dict[str, Any]]:
    out = []
    while not queue.empty():
        channel, payload = queue.get_nowait()
        out.append({"channel": channel, **orjson.loads(payload)})
    return out


def _row(m: dict[str, Any]) -> tuple:
    """A published candle as (timeframe, start - T0 in s, OHLC, volumes, vwap, count, first/last trade
    time - T0 in s, is_empty, has_gap, is_partial, revision)."""
    c = m["candle"]

    def sec(iso: str | None) -> float | None:
        if iso is None:
            return None
        # "2023-11-14T22:14:SS.ffffffZ" and T0 = 22:14:00 (a whole minute): seconds past T0
        hh, mm, ss = iso[11:-1].split(":")
        return (int(hh) - 22) * 3600 + (int(mm) - 14) * 60 + float(ss)

    return (
        m["timeframe"], sec(m["timestamp_in"]), c["open"], c["high"], c["low"], c["close"], c["volume"],
        c["buy_volume"], c["sell_volume"], c["vwap"], c["trade_count"], sec(c["first_trade_time"]),
        sec(c["last_trade_time"]), c["is_empty"], c["has_gap"], c["is_partial"], c["revision"],
    )  # fmt: skip


def _ledger(stats: dict[str, Any]) -> dict[tuple[str, str], tuple[int, dict[str, int]]]:
    return {(line["stage"], line["what"]): (line["in"], line["parts"]) for line in stats["ledger"]}


async def test_a_session_start_trades_end_gives_the_candles_worked_out_by_hand_and_a_ledger_that_adds_up(
    endpoint,
):
    bus = InMemoryBus()
    candles = bus.subscribe("candles:binance:*")  # the per-exchange channel: one message per candle
    service = _service(replay_config(endpoint), bus)
    run = asyncio.create_task(service.run())
    frames = [
        control_frame("start", 0, session="s1", **START),
        trade_frame(
            [
                (0, T0 + 1 * S, 100.0, 1.0, "buy"),
                (0, T0 + 5 * S, 102.0, 2.0, "sell"),
                (0, T0 + 14 * S, 101.0, 1.0, "buy"),
            ],
            seq=1,
            session="s1",
        ),
        # the exchange clock reaches 44 s: [0, 15) and [15, 30) close
        trade_frame([(0, T0 + 16 * S, 103.0, 0.5, "buy"), (0, T0 + 44 * S, 99.0, 1.0, "sell")], 2, "s1"),
        # 61 s: [30, 45), the empty [45, 60) and the minute [0, 60) close
        trade_frame([(0, T0 + 61 * S, 100.0, 2.0, "buy")], seq=3, session="s1"),
        end_frame(4, "s1", trades=6),  # closes what is open, as partial: [60, 75) and [60, 120)
    ]
    push = await _push(endpoint, frames)
    try:
        code = await asyncio.wait_for(run, TIMEOUT_S)
    finally:
        push.close()
    assert code == 0
    got = [_row(m) for m in _drain(candles)]
    # the stream began with the trade at 1 s: the buckets that began before (at 0 s) are partial;
    # it ended at 61 s (the end frame), before [60, 75) and [60, 120) did: partial too
    # [0, 15): 100 x 1 buy, 102 x 2 sell, 101 x 1 buy; vwap (100 + 204 + 101) / 4 = 101.25
    # [45, 60): no trade: OHLC the previous close (99), volumes 0, no vwap, no trade times
    # [0, 60): the five trades before 60 s; vwap (100 + 204 + 101 + 51.5 + 99) / 5.5 = 555.5 / 5.5 = 101
    assert sorted(got, key=lambda r: (r[1], r[0] != "15s")) == [
        ("15s", 0, 100.0, 102.0, 100.0, 101.0, 4.0, 2.0, 2.0, 101.25, 3, 1, 14, False, False, True, 0),
        ("1m", 0, 100.0, 103.0, 99.0, 99.0, 5.5, 2.5, 3.0, 101.0, 5, 1, 44, False, False, True, 0),
        ("15s", 15, 103.0, 103.0, 103.0, 103.0, 0.5, 0.5, 0.0, 103.0, 1, 16, 16, False, False, False, 0),
        ("15s", 30, 99.0, 99.0, 99.0, 99.0, 1.0, 0.0, 1.0, 99.0, 1, 44, 44, False, False, False, 0),
        ("15s", 45, 99.0, 99.0, 99.0, 99.0, 0.0, 0.0, 0.0, None, 0, None, None, True, False, False, 0),
        ("15s", 60, 100.0, 100.0, 100.0, 100.0, 2.0, 2.0, 0.0, 100.0, 1, 61, 61, False, False, True, 0),
        ("1m", 60, 100.0, 100.0, 100.0, 100.0, 2.0, 2.0, 0.0, 100.0, 1, 61, 61, False, False, True, 0),
    ]
    stats = service.get_stats()
    assert all(line["ok"] for line in stats["ledger"]), stats["ledger"]
    ledger = _ledger(stats)
    # the end frame is the 5th frame received (start, 3 trade frames, end); its counts cover the 4 before
    assert ledger[("wire", "frames")] == (4, {"received": 4})
    assert ledger[("wire", "trade rows")] == (6, {"received": 6})
    assert ledger[("normalize", "trade")] == (6, {"rows": 6})
    assert ledger[("apply", "trade rows")] == (6, {"applied": 6})
    # every trade is in the first version of a 15 s candle: 3 + 1 + 1 + 0 + 1
    trades_in, trades_parts = ledger[("candles", "trades")]
    assert (trades_in, trades_parts["in 15s candles"], sum(trades_parts.values())) == (6, 6, 6)
    sinks = {what: v for (stage, what), v in ledger.items() if stage == "sinks"}
    (candle_line,) = [v for what, v in sinks.items() if what.startswith("candles")]
    (record_line,) = [v for what, v in sinks.items() if what.startswith("records")]
    assert (candle_line[0], candle_line[1]["published"]) == (7, 7)  # 5 of 15 s, 2 of 1 m
    assert (record_line[0], sum(record_line[1].values())) == (0, 0)  # no gap, no other data type
    assert stats["sessions_refused"] == {}
    assert stats["gaps"] == {
        "disconnect": 0,
        "stale": 0,
        "frames_lost": 0,
        "ingester_exit": 0,
        "processor_restart": 0,
        "journal_missing": 0,
        "open": 0,
    }
    assert stats["ticks_by_type"] == {"trade": 6}


async def test_frames_of_a_foreign_session_are_refused_counted_and_never_reach_the_candles(endpoint):
    bus = InMemoryBus()
    candles = bus.subscribe("candles:binance:*:15s")
    service = _service(replay_config(endpoint), bus)
    run = asyncio.create_task(service.run())
    frames = [
        trade_frame([(0, T0 + 2 * S, 500.0, 9.0, "buy")], seq=41, session="orphan"),  # before any start
        control_frame("start", 0, session="s1", **START),
        trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy")], seq=1, session="s1"),
        control_frame("start", 0, session="orphan", **START),  # a second ingester on the endpoint
        trade_frame([(0, T0 + 3 * S, 500.0, 9.0, "sell")], seq=1, session="orphan"),
        trade_frame([(0, T0 + 16 * S, 101.0, 2.0, "sell")], seq=2, session="s1"),
        end_frame(3, "s1", trades=2),
    ]
    push = await _push(endpoint, frames)
    try:
        code = await asyncio.wait_for(run, TIMEOUT_S)
    finally:
        push.close()
    assert code == 0
    stats = service.get_stats()
    assert stats["sessions_refused"] == {"before_start": 1, "foreign_session": 2}
    # only s1's two trades: [0, 15) holds the one at 1 s (partial: the stream began at 1 s), [15, 30)
    # the one at 16 s (partial: the session ended at 16 s)
    got = [_row(m) for m in _drain(candles)]
    assert got == [
        ("15s", 0, 100.0, 100.0, 100.0, 100.0, 1.0, 1.0, 0.0, 100.0, 1, 1, 1, False, False, True, 0),
        ("15s", 15, 101.0, 101.0, 101.0, 101.0, 2.0, 0.0, 2.0, 101.0, 1, 16, 16, False, False, True, 0),
    ]
    assert stats["ticks_by_type"] == {"trade": 2}
    assert all(line["ok"] for line in stats["ledger"]), stats["ledger"]
    ledger = _ledger(stats)
    assert ledger[("wire", "frames")] == (3, {"received": 3})  # s1's own frames only
    assert ledger[("wire", "trade rows")] == (2, {"received": 2})


async def test_the_stop_event_ends_the_run_with_exit_0_and_the_open_candle_in_the_ledger(endpoint):
    bus = InMemoryBus()
    candles = bus.subscribe("candles:binance:*")
    service = _service(replay_config(endpoint), bus)
    run = asyncio.create_task(service.run())
    frames = [
        control_frame("start", 0, session="s1", **START),
        trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy"), (0, T0 + 16 * S, 103.0, 1.0, "sell")], 1, "s1"),
    ]
    push = await _push(endpoint, frames)
    try:
        for _ in range(TIMEOUT_S * 20):
            if service.get_stats()["counts"].get("frames", 0) == 2:
                break
            await asyncio.sleep(0.05)
        assert not run.done()  # no end frame: it runs until stopped
        service.stop()  # what SIGINT and SIGTERM do
        code = await asyncio.wait_for(run, TIMEOUT_S)
    finally:
        push.close()
    assert code == 0
    # the clock reached 16 s: [0, 15) closed; [15, 30) and the minute are still open, never published
    assert [_row(m) for m in _drain(candles)] == [
        ("15s", 0, 100.0, 100.0, 100.0, 100.0, 1.0, 1.0, 0.0, 100.0, 1, 1, 1, False, False, True, 0),
    ]
    stats = service.get_stats()
    assert all(line["ok"] for line in stats["ledger"]), stats["ledger"]
    ledger = _ledger(stats)
    assert not any(stage == "wire" for stage, _ in ledger)  # no end frame: no counts of the ingester
    trades_in, parts = ledger[("candles", "trades")]
    assert (trades_in, parts["in 15s candles"], parts["in open candles"]) == (2, 1, 1)


def test_several_exchanges_each_asked_for_its_own_data_types_and_warned_about_its_own(caplog):
    """``ingest.exchanges``: each exchange is asked for the frames of the enabled types it can have (its
    ``data_types`` narrowing them), warned about alone, and its candles carry its own feature groups
    (docs/DATA_TYPES.md: binance spot has no liquidations from trades; deribit has all five frames)."""
    caplog.set_level(logging.WARNING)
    config = config_from_dict(
        {
            "ingest": {
                "source": "replay",
                "spawn": False,
                "exchanges": {
                    "binance": {"symbols": ["btcusdt"], "files": ["b.gz"]},
                    "deribit": {
                        "symbols": ["BTC-PERPETUAL"],
                        "files": ["d.txt"],
                        "data_types": ["trades", "derivative_ticker", "funding_rates"],
                    },
                },
            },
        }
    )
    service = StreamingService(config)
    assert service.asked == {
        "binance": ExchangeAsk(
            ("trade", "book_snapshot", "derivative_ticker", "option_summary"), ("book", "derivative")
        ),
        "deribit": ExchangeAsk(("trade", "derivative_ticker"), ("derivative",)),
    }
    assert service.handler.settings.feature_groups == ("book", "derivative")
    warned = [r.getMessage() for r in caplog.records]
    assert [m.split(":")[0] for m in warned] == [
        "liquidations (trade_transformation) not available for binance"
    ]
    # one exchange, as ever: no data_types of its own
    one = StreamingService(
        dataclasses.replace(config, ingest=dataclasses.replace(config.ingest, exchanges=()))
    )
    assert one.asked == {"binance": service.asked["binance"]}
    # nothing an exchange can stream: a configuration error naming its key
    nothing = config_from_dict(
        {
            "data_types": {"liquidations": {"source": "tardis_realtime"}},
            "ingest": {"exchanges": {"binance": {"symbols": ["btcusdt"], "data_types": ["liquidations"]}}},
        }
    )
    with pytest.raises(
        ConfigError, match=r"^ingest\.exchanges\.binance\.data_types: nothing enabled that binance"
    ):
        StreamingService(nothing)
