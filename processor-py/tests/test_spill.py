"""The spill (streaming_service/sinks/spill.py): batches that wait for an unreachable store beyond
persist.spill_mb go to files, in order, come back in order, survive a stop, are written first at the next
start, and are bounded and counted; the processor's loop never waits for the disk. Persist mode runs
here against a stand-in store that is up or down (``Store``); the same against the real emulator, across
processes, is tests/test_persist_outage.py."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from market_data_tick_handler.config import BigQueryConfig, PersistConfig
from market_data_tick_handler.streaming_service.bigquery_client import (
    MemorySink,
    RowBatch,
    WriteFailed,
    candle_tables,
)
from market_data_tick_handler.streaming_service.bigquery_client.proto_rows import (
    RowEncoder,
    compile_row_writer,
)
from market_data_tick_handler.streaming_service.candle_processor import Candle, CandleBatch
from market_data_tick_handler.streaming_service.modes import PersistMode
from market_data_tick_handler.streaming_service.sinks import spill as spill_module
from market_data_tick_handler.streaming_service.sinks.spill import SpillError, columns_id, decode, encode

T_IN = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z
MINUTE = 60_000_000
LOCAL, OUT = T_IN + 60_250_123, T_IN + 60_250_456


class Store(MemorySink):
    """A store that is up (keeps what it is sent, in order) or down (every append fails as an unreachable
    BigQuery's does). ``tries``: every append, up or down; as BigQuery's sink, the first try of a batch
    fixes its stream and offset."""

    def __init__(self, up: bool = True, name: str = "store A") -> None:
        super().__init__()
        self.up = up
        self.name = name
        self.tries: list[RowBatch] = []

    def describe(self) -> str:
        return self.name

    def append(self, batch: RowBatch) -> bool:
        self.tries.append(batch)
        if batch.stream is None:
            batch.stream, batch.offset = "stream-1", sum(len(b.rows) for b in self.batches)
        if not self.up:
            raise WriteFailed("unreachable")
        return super().append(batch)


def _candle(k: int, tf: str = "1m") -> Candle:
    t_in = T_IN + k * MINUTE
    return Candle("binance", "BTC-USDT", "BTCUSDT", tf, t_in, 61_600.0, 61_800.25, 61_500.0, 100.0 + k,
                  2.5, 1.5, 1.0, 61_650.0, 42, t_in + 1_000, t_in + 59_999_000, False, False, False,
                  0)  # fmt: skip


def _mode(tmp_path: Path, store: Store, *, spill_mb: int = 0, backlog_mb: int = 64, tf=("1m",), **kw):
    """Persist mode writing to ``store``, one candle a batch; ``spill_mb=0``: only the batch being sent
    waits in memory, every other one goes to disk."""
    config = BigQueryConfig(batch_size=1, backlog_mb=backlog_mb, close_timeout_s=0.2, **kw)
    spill = PersistConfig(spill_mb=spill_mb, spill_dir=str(tmp_path / "spill"))
    return PersistMode(config, tf, "tardis-realtime", store, spill=spill)


def _add(mode: PersistMode, ks, tf: str = "1m") -> None:
    for k in ks:
        mode.add(CandleBatch.from_candles([_candle(k, tf)]), LOCAL, OUT)


def _closes(batches: list[RowBatch], mode: PersistMode) -> list[float]:
    """The close of each row written, in the order written, as the protobuf library (BigQuery) parses
    the rows."""
    file = descriptor_pb2.FileDescriptorProto(name="row.proto", package="mdth", syntax="proto2")
    file.message_type.add().CopyFrom(RowEncoder(mode.tables["1m"].columns).descriptor)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    row = message_factory.GetMessageClass(pool.FindMessageTypeByName("mdth.Row"))
    return [row.FromString(r).close for b in batches for r in b.rows]


async def _until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return predicate()


def _files(mode: PersistMode) -> list[Path]:
    assert mode.spill is not None and mode.spill.dir is not None
    return sorted(mode.spill.dir.glob("*.batch"))


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    compile_row_writer()


# -- the file format --------------------------------------------------------------------------------------
def test_a_batch_file_keeps_the_rows_byte_for_byte_with_table_columns_and_stream():
    table = candle_tables(BigQueryConfig(), "replay", ("1m",))["1m"]
    rows = [b"", b"\x00\x01\xff" * 7, bytes(range(256)), b"row"]
    batch = RowBatch(table, rows, sum(map(len, rows)), stream="projects/p/streams/s1", offset=1234)
    header, back = decode(b"".join(encode(batch)))
    assert back == rows and all(type(r) is bytes for r in back)
    assert (header["table"], header["dataset"], header["rows"], header["nbytes"]) == (
        "candles_1m",
        table.dataset,
        4,
        sum(map(len, rows)),
    )
    assert (header["stream"], header["offset"]) == ("projects/p/streams/s1", 1234)
    assert header["columns"] == columns_id(table)
    untried = RowBatch(table, rows, sum(map(len, rows)))
    assert decode(b"".join(encode(untried)))[0]["stream"] is None


def test_a_torn_or_altered_file_is_refused():
    table = candle_tables(BigQueryConfig(), "replay", ("1m",))["1m"]
    data = b"".join(encode(RowBatch(table, [b"abc", b"de"], 5)))
    with pytest.raises(SpillError, match="CRC"):
        decode(data[:-7] + data[-6:])  # a byte gone
    altered = bytearray(data)
    altered[-6] ^= 1
    with pytest.raises(SpillError, match="CRC"):
        decode(bytes(altered))
    with pytest.raises(SpillError, match="not a spill file"):
        decode(b"PAR1" + data[4:])


# -- persist mode with a spill -----------------------------------------------------------------------------
async def test_while_the_store_is_down_batches_go_to_files_in_order_and_are_written_in_order_once_back(
    tmp_path,
):
    store = Store(up=False)
    mode = _mode(tmp_path, store)
    await mode.start()
    _add(mode, range(6))
    assert await _until(lambda: len(store.tries) >= 2 and len(_files(mode)) == 5)
    # the head waits in memory (it is being retried); the five behind it are files, named in order
    stats = mode.get_stats()
    assert (stats["buffered_rows"], stats["spilled_rows"], stats["backlog_rows"]) == (1, 5, 6)
    assert stats["spilled_rows_total"] == 5 and stats["spill_files"] == 5 and stats["write_retries"] >= 2
    names = [int(p.stem) for p in _files(mode)]
    assert names == sorted(names) and len(set(names)) == 5
    assert {b.rows[0] for b in store.tries} == {store.tries[0].rows[0]}  # only the head was tried
    _add(mode, range(6, 8))  # more while down: behind the files, on disk too
    assert await _until(lambda: len(_files(mode)) == 7)
    store.up = True
    assert await mode.flush(30)
    assert _closes(store.batches, mode) == [100.0 + k for k in range(8)]  # once each, in order
    await mode.spill.drain()
    assert _files(mode) == []  # a batch's file goes once it is written (deleted by the writer's thread)
    stats = mode.get_stats()
    assert (stats["rows_written"], stats["backlog_rows"], stats["rows_lost"]) == (8, 0, 0)
    assert stats["spill_files"] == 0 and stats["spill_disk_bytes"] == 0
    await mode.close()
    entry = mode.ledger_entries({"candles": 8})[0]
    assert entry.ok and entry.expected == 8


async def test_within_spill_mb_nothing_goes_to_disk(tmp_path):
    store = Store(up=False)
    mode = _mode(tmp_path, store, spill_mb=1)  # 1 MB: the six rows (~400 bytes each) fit in memory
    await mode.start()
    _add(mode, range(6))
    assert await _until(lambda: len(store.tries) >= 2)
    stats = mode.get_stats()
    assert (stats["buffered_rows"], stats["spilled_rows"], stats["spilled_rows_total"]) == (6, 0, 0)
    assert _files(mode) == []
    store.up = True
    assert await mode.flush(30)
    await mode.close()
    assert _closes(store.batches, mode) == [100.0 + k for k in range(6)]
    assert not mode.spill.dir.exists()  # a run that leaves nothing on disk leaves no folder either


async def test_a_stop_with_the_store_down_spills_the_rest_and_the_next_start_writes_it_first(tmp_path):
    down = Store(up=False)
    first = _mode(tmp_path, down)
    await first.start()
    _add(first, range(4))
    assert await _until(lambda: len(down.tries) >= 1)
    await first.close()  # close_timeout_s 0.2: still down, so the head too goes to disk
    stats = first.get_stats()
    assert (stats["rows_lost"], stats["spilled_rows"], stats["spilled_at_close_rows"]) == (0, 4, 1)
    assert stats["backlog_rows"] == 4  # waiting, on disk: the ledger adds up
    assert first.ledger_entries({"candles": 4})[0].ok
    assert len(_files(first)) == 4

    up = Store(up=True)  # the same store (its describe()), reachable again
    second = _mode(tmp_path, up)
    await second.start()
    assert second.spill.dir == first.spill.dir
    _add(second, range(4, 6))
    assert await second.flush(30)
    await second.close()
    assert _closes(up.batches, second) == [100.0 + k for k in range(6)]  # the spilled ones first, in order
    stats = second.get_stats()
    assert (stats["spill_reloaded_rows"], stats["spill_reloaded_batches"], stats["rows_written"]) == (4, 4, 6)
    # the head had been sent once, unanswered: at restart it goes on a new stream, so it may show twice
    assert stats["rows_maybe_twice"] == 1
    assert _files(second) == []
    entry = second.ledger_entries({"candles": 2})[0]
    assert entry.ok and entry.expected == 6 and "4 reloaded" in entry.note


async def test_a_spilled_batch_for_a_table_no_longer_written_is_kept_and_counted(tmp_path, caplog):
    down = Store(up=False)
    first = _mode(tmp_path, down, tf=("1m", "5m"))
    await first.start()
    _add(first, range(2))
    _add(first, range(1), "5m")
    await first.close()
    assert first.get_stats()["spilled_rows"] == 3
    up = Store(up=True)
    second = _mode(tmp_path, up, tf=("1m",))
    await second.start()
    assert await second.flush(30)
    await second.close()
    stats = second.get_stats()
    assert (stats["spill_orphan_batches"], stats["spill_orphan_rows"], stats["spill_reloaded_rows"]) == (
        1,
        1,
        2,
    )
    assert [b.table.name for b in up.batches] == ["candles_1m", "candles_1m"]
    left = _files(second)
    assert len(left) == 1 and decode(left[0].read_bytes())[0]["table"] == "candles_5m"  # still on disk
    assert "1 rows) of table candles_5m which this run does not write: kept on disk" in caplog.text
    assert second.ledger_entries({"candles": 0})[0].ok  # not this run's rows, and said so


async def test_over_backlog_mb_on_disk_the_oldest_spilled_batch_is_deleted_and_counted(tmp_path, caplog):
    store = Store(up=False)
    mode = _mode(tmp_path, store, backlog_mb=0)  # 0 bytes on disk: only the newest spilled batch stays
    await mode.start()
    _add(mode, range(5))
    assert await _until(lambda: len(_files(mode)) == 1 and mode.get_stats()["spilled_rows"] == 1)
    stats = mode.get_stats()
    assert (stats["rows_lost"], stats["buffered_rows"], stats["spilled_rows"]) == (3, 1, 1)
    assert "spill over persist.bigquery.backlog_mb=0" in caplog.text
    store.up = True
    assert await mode.flush(30)
    await mode.close()
    assert _closes(store.batches, mode) == [100.0, 104.0]  # the head, and the newest
    assert mode.ledger_entries({"candles": 5})[0].ok


async def test_two_processes_of_one_sink_never_share_a_folder_and_a_later_one_takes_both(tmp_path):
    a_store, b_store = Store(up=False), Store(up=False)
    a, b = _mode(tmp_path, a_store), _mode(tmp_path, b_store)
    await a.start()
    await b.start()
    assert a.spill.dir != b.spill.dir and b.spill.dir.name == a.spill.dir.name + ".1"
    _add(a, range(0, 2))
    _add(b, range(10, 13))
    await a.close()
    await b.close()
    other = _mode(tmp_path, Store(name="store B"))  # the same sink and dataset, another store
    await other.start()
    assert other.spill.dir.name != a.spill.dir.name and other.get_stats()["spill_reloaded_rows"] == 0
    await other.close()
    up = Store(up=True)
    later = _mode(tmp_path, up)
    await later.start()
    assert later.spill.dir == a.spill.dir and later.get_stats()["spill_reloaded_rows"] == 5
    assert await later.flush(30)
    await later.close()
    assert _closes(up.batches, later) == [100.0, 101.0, 110.0, 111.0, 112.0]  # a's first, then b's
    assert list(b.spill.dir.glob("*.batch")) == []


async def test_a_crash_while_writing_leaves_a_tmp_file_that_is_deleted_and_a_bad_file_is_kept(tmp_path):
    mode = _mode(tmp_path, Store(up=False))
    await mode.start()
    _add(mode, range(3))
    await mode.close()
    files = _files(mode)
    files[1].write_bytes(files[1].read_bytes()[:-3])  # torn
    files[0].with_suffix(".tmp").write_bytes(b"partial")  # a write a crash cut short
    up = Store(up=True)
    again = _mode(tmp_path, up)
    await again.start()
    assert await again.flush(30)
    await again.close()
    stats = again.get_stats()
    assert stats["spill_errors"] == 2 and stats["spill_reloaded_rows"] == 3
    assert _closes(up.batches, again) == [100.0, 102.0]
    assert [p.suffix for p in sorted(again.spill.dir.iterdir()) if p.stem.isdigit()] == [".bad"]
    assert not again.ledger_entries({"candles": 0})[0].ok  # a row unreadable: the ledger says so


async def test_handing_over_rows_is_not_slowed_while_the_store_is_down_and_spilling(tmp_path, monkeypatch):
    """add() (accept) costs the same with the store down and every batch going to disk as with the
    store up; a disk as slow as 50 ms a write holds the loop up at no moment (the files are written by a
    thread)."""
    real_do = spill_module.Spill._do

    def slow_do(ops):
        time.sleep(0.05)
        return real_do(ops)

    monkeypatch.setattr(spill_module.Spill, "_do", staticmethod(slow_do))

    async def timed(store: Store, path: Path) -> tuple[list[float], float]:
        mode = _mode(path, store)
        await mode.start()
        gaps, took = [], []
        last = time.perf_counter()
        for k in range(300):
            started = time.perf_counter()
            _add(mode, [k])
            took.append(time.perf_counter() - started)
            await asyncio.sleep(0)  # the loop goes on with other work between frames
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
        store.up = True
        assert await mode.flush(60)
        await mode.close()
        assert _closes(store.batches, mode) == [100.0 + k for k in range(300)]
        return took, max(gaps)

    up_took, up_gap = await timed(Store(up=True), tmp_path / "up")
    down_took, down_gap = await timed(Store(up=False), tmp_path / "down")
    up_us, down_us = statistics.median(up_took) * 1e6, statistics.median(down_took) * 1e6
    print(f"add() median: store up {up_us:.1f} us, down and spilling {down_us:.1f} us;"
          f" longest loop turn: {up_gap * 1e3:.2f} ms up, {down_gap * 1e3:.2f} ms down")  # fmt: skip
    assert down_us < 3 * up_us + 50
    assert down_gap < 0.04  # a write takes 50 ms here: the loop never waited for one


async def test_a_batch_whose_file_cannot_be_written_waits_in_memory_and_is_counted(tmp_path, monkeypatch):
    def full_disk(ops):
        return [(op, target[0] if op == "write" else target, OSError(28, "No space left on device"))
                for op, target in ops]  # fmt: skip

    monkeypatch.setattr(spill_module.Spill, "_do", staticmethod(full_disk))
    store = Store(up=False)
    mode = _mode(tmp_path, store)
    await mode.start()
    _add(mode, range(4))
    assert await _until(lambda: mode.get_stats()["spill_errors"] == 3)
    assert mode.get_stats()["spill_files"] == 0 and mode.stats["backlog_rows"] == 4
    store.up = True
    assert await mode.flush(30)
    assert _closes(store.batches, mode) == [100.0 + k for k in range(4)]  # nothing lost meanwhile
    await mode.close()
    assert mode.ledger_entries({"candles": 4})[0].ok
