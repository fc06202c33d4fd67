"""Sinks as peers (streaming_service/sinks/): the registry, the service stamping a frame's output once
and handing the same output to every sink in order, serve and persist writing those very stamps, each
sink's ledger lines, summary and progress lines, and the console table as a sink."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from market_data_tick_handler.config import BigQueryConfig, ServeConfig, StreamingConfig
from market_data_tick_handler.streaming_service.bigquery_client import MemorySink
from market_data_tick_handler.streaming_service.bigquery_client.proto_rows import RowEncoder
from market_data_tick_handler.streaming_service.candle_processor import Candle, CandleBatch, Stamps
from market_data_tick_handler.streaming_service.console import CandleTable, summary_lines
from market_data_tick_handler.streaming_service.data_types import Gap
from market_data_tick_handler.streaming_service.ledger import Entry, as_dict, sink_entry
from market_data_tick_handler.streaming_service.modes import PersistMode, ServeMode
from market_data_tick_handler.streaming_service.service import StreamingService
from market_data_tick_handler.streaming_service.sinks import FrameOutput
from market_data_tick_handler.streaming_service.sinks.registry import SINKS, make_sinks
from market_data_tick_handler.streaming_service.transport import InMemoryBus, InMemoryTransport
from market_data_tick_handler.timeutil import now_us

T_IN = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z
LOCAL, OUT = T_IN + 60_250_123, T_IN + 60_250_456  # 00:01:00.250123, 00:01:00.250456


def _candle(tf: str = "1m", close: float = 61_700.5, t_in: int = T_IN) -> Candle:
    return Candle("binance", "BTC-USDT", "BTCUSDT", tf, t_in, 61_600.0, 61_800.25, 61_500.0, close, 2.5, 1.5,
                  1.0, 61_650.0, 42, t_in + 1_000, t_in + 59_999_000, False, False, False, 0)  # fmt: skip


def _gap() -> Gap:
    return Gap(exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T_IN,
               local_timestamp=T_IN + 5, reason="stale", start=T_IN, end=None)  # fmt: skip


def _inmemory() -> tuple[ServeMode, InMemoryBus]:
    bus = InMemoryBus()
    return ServeMode(ServeConfig(transport="inmemory"), transport=InMemoryTransport(bus)), bus


class Recorder:
    """A sink that keeps what it was handed, and says in which order it was called (``calls``)."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.calls = calls
        self.got: list[FrameOutput] = []

    async def start(self) -> None:
        self.calls.append(f"start {self.name}")

    async def accept(self, output: FrameOutput) -> None:
        self.calls.append(f"accept {self.name}")
        self.got.append(output)

    async def close(self) -> None:
        self.calls.append(f"close {self.name}")

    def get_stats(self) -> dict[str, Any]:
        return {"outputs": len(self.got)}

    def progress_line(self) -> str | None:
        return None

    def summary_lines(self) -> list[str]:
        return [f"{self.name} took {len(self.got)} outputs"]

    def ledger_entries(self, handed: Mapping[str, int]) -> list[Entry]:
        taken = sum(o.candles for o in self.got)
        return [sink_entry(self.name, "candles", handed["candles"], {"taken": taken})]


def test_the_registry_makes_the_sinks_named_in_its_own_order():
    assert list(SINKS) == ["serve", "persist", "ticks", "console"]
    assert SINKS["persist"] == PersistMode.from_config
    config = StreamingConfig(serve=ServeConfig(transport="inmemory"))
    serve, console = make_sinks({"console", "serve"}, config, {"console": "15s,1m"})
    assert isinstance(serve, ServeMode) and serve.config.transport == "inmemory"
    assert isinstance(console, CandleTable) and console.timeframes == {"15s", "1m"}
    (every,) = make_sinks(["console"], config, {"console": "all"})
    assert every.timeframes is None
    assert make_sinks([], config) == []
    with pytest.raises(ValueError, match="no sink named kafka"):
        make_sinks(["serve", "kafka"], config)


async def test_the_service_stamps_once_and_hands_the_same_output_to_every_sink_in_order():
    calls: list[str] = []
    first, second = Recorder("first", calls), Recorder("second", calls)
    service = StreamingService(StreamingConfig(), [first, second])
    batch = CandleBatch.from_candles([_candle("15s"), _candle("1m")])
    await service.publish([], [], LOCAL)  # nothing closed: nothing handed
    before = now_us()
    await service.publish([batch], [_gap()], LOCAL)
    after = now_us()
    assert calls == ["accept first", "accept second"]
    (output,) = first.got
    assert second.got[0] is output  # the same object: no sink reads another's state
    assert list(output.batches) == [batch] and [r.reason for r in output.records] == ["stale"]
    assert output.stamps.local_us == LOCAL and before <= output.stamps.out_us <= after
    assert output.candles == 2 and [b.columns.timeframe for b in output.blocks()] == ["15s", "1m"]
    assert service.handed == {"candles": 2, "records": 1}
    stats = service.get_stats()
    assert stats["first"] == stats["second"] == {"outputs": 1}
    # each sink's lines of the ledger, with what the service handed it
    service._close_ledger(0)
    sinks = [e for e in service.ledger if e.stage == "sinks"]
    assert [(e.what, e.expected, dict(e.parts)) for e in sinks] == [
        ("candles to first", 2, {"taken": 2}),
        ("candles to second", 2, {"taken": 2}),
    ]


async def test_serve_and_persist_write_the_stamps_of_the_output():
    serve, bus = _inmemory()
    rows = MemorySink()
    persist = PersistMode(BigQueryConfig(), ("1m",), "replay", rows)
    await serve.start()
    await persist.start()
    output = FrameOutput([CandleBatch.from_candles([_candle()])], [_gap()], Stamps(LOCAL, OUT))
    for sink in (serve, persist):
        await sink.accept(output)
    assert await persist.flush(5)
    ((_, payload),) = bus.xrange_after("candles:stream:binance:BTC-USDT:1m", (0, 0))
    message = orjson.loads(payload)
    assert message["local_timestamp"] == "2024-08-09T00:01:00.250123Z"
    assert message["timestamp_out"] == "2024-08-09T00:01:00.250456Z"
    assert (serve.stats["candles_published"], serve.stats["records_published"]) == (1, 1)
    ((data,),) = [batch.rows for batch in rows.batches]
    row = _row_class(persist)().FromString(data)
    assert (row.local_timestamp, row.timestamp_out, row.close) == (LOCAL, OUT, 61_700.5)
    assert persist.stats["rows_written"] == 1  # the records are not persisted
    await serve.close()
    await persist.close()


def _row_class(persist: PersistMode) -> Any:
    """The protobuf library's message class of the 1m table's rows (what BigQuery parses with)."""
    file = descriptor_pb2.FileDescriptorProto(name="row.proto", package="mdth", syntax="proto2")
    file.message_type.add().CopyFrom(RowEncoder(persist.tables["1m"].columns).descriptor)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return lambda: message_factory.GetMessageClass(pool.FindMessageTypeByName("mdth.Row"))


class Flaky(InMemoryTransport):
    """The in-memory bus behind a connection that is down until ``up``."""

    up = False

    async def publish_many(self, chunks):  # type: ignore[override]
        if not self.up:
            raise ConnectionError("Connection refused")
        return await super().publish_many(chunks)


async def test_serves_ledger_lines_add_up_while_redis_is_down_and_after():
    transport = Flaky(InMemoryBus())
    serve = ServeMode(ServeConfig(transport="inmemory", backlog_mb=0, close_timeout_s=5), transport=transport)
    await serve.start()
    minute = 60_000_000
    for k in range(3):
        batch = CandleBatch.from_candles([_candle(t_in=T_IN + k * minute)])
        await serve.accept(FrameOutput([batch], [], Stamps(LOCAL + k * minute, OUT + k * minute)))
    handed = {"candles": 3, "records": 0}
    candles, records = serve.ledger_entries(handed)
    assert (candles.what, candles.expected, dict(candles.parts)) == (
        "candles to inmemory",
        3,
        {"published": 0, "waiting": 1, "lost": 2, "refused": 0},
    )
    assert candles.ok and records.ok and records.expected == 0
    transport.up = True
    assert await serve.flush(5)
    candles, _ = serve.ledger_entries(handed)
    assert dict(candles.parts) == {"published": 1, "waiting": 0, "lost": 2, "refused": 0} and candles.ok
    await serve.close()


async def test_the_console_sink_prints_the_candles_of_its_timeframes_and_owes_no_ledger_line():
    out = io.StringIO()
    table = CandleTable(out=out, timeframes={"1m"})
    await table.start()
    batch = CandleBatch.from_candles([_candle("15s"), _candle("1m", close=7.25)])
    await table.accept(FrameOutput([batch], [_gap()], Stamps(LOCAL, OUT)))
    await table.close()
    printed = out.getvalue().splitlines()
    assert printed[0].startswith("exchange") and len(printed) == 2
    assert printed[1].split()[:4] == ["binance", "BTC-USDT", "1m", "2024-08-09T00:00:00.000000Z"]
    assert printed[1].split()[7] == "7.25" and printed[1].split()[9] == "42"
    assert table.get_stats() == {"candles_printed": 1}
    assert table.ledger_entries({"candles": 2, "records": 1}) == [] and table.summary_lines() == []


def test_each_sink_says_its_own_summary_and_progress_lines():
    serve, _ = _inmemory()
    serve.stats.update(candles_published=26, round_trips=4, messages_published=78, publish_retries=1,
                       candles_lost=2, records_published=3, stream_duplicates=1, backlog_candles=5,
                       candles_refused=1)  # fmt: skip
    assert serve.summary_lines() == [
        "published           26 candles in 4 round trips (78 messages; retries 1, lost 2)",
        "  while publishing  backlog_max_frames 0, stream_duplicates 1, publish_errors 0",
        "  and records       3 (lost 0)",
    ]
    assert serve.progress_line() == "published candles=26 records=3 backlog=5 retries=1 lost=2 refused=1"
    persist = PersistMode(BigQueryConfig(), ("1m",), "replay", MemorySink())
    persist.stats.update(rows_written=40, batches_written=3, write_retries=2, rows_lost=1, backlog_rows=7)
    assert persist.summary_lines() == ["persisted           40 rows in 3 batches (retries 2, lost 1)"]
    persist.stats["duplicate_appends"] = 1
    assert persist.summary_lines()[1] == (
        "  while persisting  write_errors 0, rows_refused 0, duplicate_appends 1"
    )
    assert persist.progress_line() == "persisted rows=40 batches=3 backlog=7 retries=2 lost=1 refused=0"
    # in the run's summary: after the service's own lines, before the ledger
    stats = {
        "counts": {"frames": 9},
        "ticks_by_type": {"trade": 12},
        "late_ticks": 0,
        "ledger": [as_dict(sink_entry("bigquery", "candles", 48, {"written": 40, "waiting": 7, "lost": 1}))],
    }
    lines = summary_lines(stats, [serve, persist])
    assert lines[0] == "frames received     9 (lost 0, undecodable 0)"
    at = lines.index(serve.summary_lines()[0])
    assert lines[at : at + 5] == serve.summary_lines() + persist.summary_lines()
    assert lines[at + 5 :][:2] == ["", "ledger: every input accounted for"]
