"""The processor's metrics (``streaming_service/metrics``, docs/OPERATIONS.md): a StreamingService fed
wire frames by the test (no ingester, ``ingest.spawn: false``) with serve mode on the in-memory bus and
metrics on a free port; scraped over HTTP mid-run and read at close, parsed with prometheus_client's own
parser. Every figure is worked out by hand from the frames (the session of test_service.py: six trades,
seven candles)."""

from __future__ import annotations

import asyncio
import logging
import socket
import tempfile
from collections.abc import Iterable

import pytest
import zmq
import zmq.asyncio
from helpers import T0, S, control_frame, end_frame, replay_config, trade_frame

from market_data_tick_handler.streaming_service import ServeMode
from market_data_tick_handler.streaming_service.latency import Latencies
from market_data_tick_handler.streaming_service.metrics import start_metrics
from market_data_tick_handler.streaming_service.metrics.collectors import RecorderCollector
from market_data_tick_handler.streaming_service.metrics.recorders import CloseLag, Histo
from market_data_tick_handler.streaming_service.service import StreamingService
from market_data_tick_handler.streaming_service.transport.inmemory import InMemoryBus, InMemoryTransport
from support.metrics_text import samples, value

START = {"source": "replay", "exchanges": ["binance"], "data_types": ["trade"], "speed": "max"}
TIMEOUT_S = 30


@pytest.fixture
def endpoint():
    with tempfile.TemporaryDirectory(prefix="i18m-", dir="/tmp") as tmp:
        yield f"ipc://{tmp}/frames.sock"


FRAMES = [
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
]


async def _push(endpoint: str, frames: Iterable[bytes]) -> zmq.asyncio.Socket:
    push = zmq.asyncio.Context.instance().socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(endpoint)
    for data in frames:
        await push.send(data)
    return push


async def http_get(address: str, path: str) -> tuple[int, dict[str, str], str]:
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body.decode()


async def _until(condition, timeout: float = TIMEOUT_S) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_scraped_mid_run_and_at_close_the_counters_are_the_frames_and_the_ledger(endpoint):
    config = replay_config(endpoint, metrics={"enabled": True, "address": "127.0.0.1:0"})
    service = StreamingService(config, [ServeMode(config.serve, InMemoryTransport(InMemoryBus()))])
    metrics = start_metrics(config, service)
    assert metrics.address is not None and metrics.address.startswith("127.0.0.1:")
    run = asyncio.create_task(service.run())
    push = await _push(endpoint, FRAMES)
    try:
        await _until(lambda: service.handler.counts.get("frames_received", 0) == 4)
        status, headers, body = await http_get(metrics.address, "/metrics")
        assert status == 200
        assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        mid = samples(body)
        # 4 frames so far (start + 3 trade frames), 6 trades; closed: 4 of 15 s ([0,15) .. [45,60)), 1 of 1 m
        assert value(mid, "mdth_frames_received_total") == 4
        assert value(mid, "mdth_rows_received_total", type="trade") == 6
        assert value(mid, "mdth_symbol_rows_total", exchange="binance", symbol="BTCUSDT", type="trade") == 6
        assert value(mid, "mdth_candles_closed_total", exchange="binance", timeframe="15s") == 4
        assert value(mid, "mdth_candles_closed_total", exchange="binance", timeframe="1m") == 1
        assert value(mid, "mdth_sink_published_total", sink="serve", what="candles") == 5
        # the trade at 61 s is in the open [60, 75): the live candle line balances with it
        in_open = value(mid, "mdth_ledger_accounted", stage="candles", what="trades", part="in open candles")
        assert in_open == 1
        assert value(mid, "mdth_ledger_difference", stage="candles", what="trades") == 0
        assert value(mid, "mdth_ledger_final") == 0
        status, _, body = await http_get(metrics.address, "/health")
        assert status == 200 and '"status": "ok"' in body
        status, _, _ = await http_get(metrics.address, "/nothing")
        assert status == 404
        await push.send(end_frame(4, "s1", trades=6))  # closes [60, 75) and [60, 120) as partial
        code = await asyncio.wait_for(run, TIMEOUT_S)
    finally:
        push.close()
    assert code == 0
    closed = metrics.close()
    assert closed["address"] == metrics.address and closed["bind_errors"] == 0 and closed["scrapes"] == 1
    host, _, port = metrics.address.rpartition(":")
    with pytest.raises(ConnectionRefusedError):  # closed: the port is free again
        await asyncio.open_connection(host, int(port))
    end = samples(closed["exposition"])
    assert value(end, "mdth_frames_received_total") == 5
    assert value(end, "mdth_frames_total", outcome="applied") == 5
    assert value(end, "mdth_candles_closed_total", exchange="binance", timeframe="15s") == 5
    assert value(end, "mdth_candles_closed_total", exchange="binance", timeframe="1m") == 2
    assert value(end, "mdth_sink_published_total", sink="serve", what="candles") == 7
    assert value(end, "mdth_handed_to_sinks_total", what="candles") == 7
    assert value(end, "mdth_ledger_final") == 1
    # the exposition's ledger is the run's, line by line
    stats_ledger = service.get_stats()["ledger"]
    # normalize, wire frames, wire trade rows, apply, candles, sinks candles and records (no source line:
    # the end frame's counts have no raw frames)
    assert len(stats_ledger) == 7
    for line in stats_ledger:
        assert value(end, "mdth_ledger_in", stage=line["stage"], what=line["what"]) == line["in"]
        for part, n in line["parts"].items():
            assert value(end, "mdth_ledger_accounted", stage=line["stage"], what=line["what"], part=part) == n
        assert value(end, "mdth_ledger_difference", stage=line["stage"], what=line["what"]) == 0
    # close lag on the event clock, bucket end -> the clock when its publish returned:
    # 15 s: [0,15) and [15,30) at 44 s: 29 and 14; [30,45) and [45,60) at 61 s: 16 and 1; [60,75) at the
    # end (61 s, before its end): 0. 1 m: [0,60) at 61 s: 1; [60,120) at the end: 0
    assert value(end, "mdth_candle_close_lag_seconds_count", timeframe="15s") == 5
    assert value(end, "mdth_candle_close_lag_seconds_sum", timeframe="15s") == 29 + 14 + 16 + 1 + 0
    assert value(end, "mdth_candle_close_lag_seconds_bucket", timeframe="15s", le="1.0") == 2
    assert value(end, "mdth_candle_close_lag_seconds_bucket", timeframe="15s", le="10.0") == 2
    assert value(end, "mdth_candle_close_lag_seconds_bucket", timeframe="15s", le="30.0") == 5
    assert value(end, "mdth_candle_close_lag_seconds_sum", timeframe="1m") == 1
    # one round trip per output that had candles: frames 2, 3 and the end frame
    assert value(end, "mdth_sink_write_seconds_count", sink="serve", store="inmemory", outcome="ok") == 3
    assert value(end, "mdth_sink_round_trips_total", sink="serve") == 3
    # every frame carried recv_mono_us (1): each is a latency sample, the five of them
    assert value(end, "mdth_frame_latency_seconds_count", stage="handled") == 5
    # each frame's size as the test encoded it
    sizes = [len(f) for f in [*FRAMES, end_frame(4, "s1", trades=6)]]
    assert value(end, "mdth_frame_size_bytes_count") == 5
    assert value(end, "mdth_frame_size_bytes_sum") == sum(sizes)
    assert value(end, "mdth_frame_size_bytes_bucket", le="1024.0") == sum(1 for n in sizes if n <= 1024)


def test_a_port_in_use_is_a_warning_naming_it_counted_and_the_run_goes_on(endpoint, caplog):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    address = f"127.0.0.1:{taken.getsockname()[1]}"
    config = replay_config(endpoint, metrics={"enabled": True, "address": address})

    async def main() -> dict:
        service = StreamingService(config, [ServeMode(config.serve, InMemoryTransport(InMemoryBus()))])
        with caplog.at_level(logging.WARNING):
            metrics = start_metrics(config, service)
        assert metrics.address is None
        run = asyncio.create_task(service.run())
        push = await _push(endpoint, [*FRAMES, end_frame(4, "s1", trades=6)])
        try:
            assert await asyncio.wait_for(run, TIMEOUT_S) == 0
        finally:
            push.close()
        return metrics.close()

    try:
        closed = asyncio.run(main())
    finally:
        taken.close()
    assert closed["bind_errors"] == 1 and closed["address"] is None
    (warning,) = [r for r in caplog.records if r.name.endswith("metrics.server")]
    assert warning.levelno == logging.WARNING
    assert address in warning.getMessage() and "Address already in use" in warning.getMessage()
    # the pipeline ran: its counters are there all the same, in the exposition at close
    end = samples(closed["exposition"])
    assert value(end, "mdth_sink_published_total", sink="serve", what="candles") == 7


def test_histo_buckets_are_cumulative_with_a_count_per_observation():
    h = Histo((1.0, 5.0))
    h.observe(0.5)
    h.observe(1.0)  # le: on the bound is in it
    h.observe(3.0, n=4)  # four candles of one bucket, one lag
    h.observe(9.0)
    assert h.cumulative() == [("1.0", 2), ("5.0", 6), ("+Inf", 7)]
    assert (h.count, h.sum) == (7, 0.5 + 1.0 + 12.0 + 9.0)


class _FakeService:
    def __init__(self, window: int) -> None:
        self.latencies = Latencies(window)


def test_frame_latencies_are_folded_from_the_ring_once_each_and_only_those_still_in_it():
    service = _FakeService(window=4)
    collector = RecorderCollector(lambda: [], CloseLag(lambda x: None), Histo((1.0,)), Histo((1.0,)), service)
    lat = service.latencies
    for us in (1_000, 2_000_000, 3_000):  # 1 ms, 2 s, 3 ms
        lat.record(us, us, 1, 0)
    collector.fold_latencies()
    handled = collector.frame_latency["handled"]
    assert handled.count == 3 and handled.sum == pytest.approx(2.004)
    collector.fold_latencies()  # nothing new: nothing added
    assert handled.count == 3
    for us in (10, 20, 30, 40, 50, 60):  # six more through a ring of four: the first two fell out
        lat.record(us, us, 1, 0)
    collector.fold_latencies()
    assert handled.count == 3 + 4
    assert handled.sum == pytest.approx(2.004 + (30 + 40 + 50 + 60) / 1e6)
