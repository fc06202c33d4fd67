"""``/health`` (``streaming_service/metrics/health.py``): 200 while the pipeline works, 503 naming each of
the three reasons: a subscribed stream stale on the wall clock, a sink's backlog (memory and spill) over
``health.backlog_limit_mb``, the ingester down (spawned: exited without ending its session; standalone:
silent for ``health.ingester_silent_s``). Fakes stand in for the service and the sinks; the clock is the
test's."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from types import SimpleNamespace

from market_data_tick_handler.config import config_from_dict
from market_data_tick_handler.streaming_service.metrics.health import Health
from market_data_tick_handler.streaming_service.metrics.server import MetricsServer


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _config(spawn: bool = True):
    return config_from_dict(
        {
            "ingest": {"source": "tardis-realtime", "exchange": "binance", "symbols": ["btcusdt", "ethusdt"],
                       "spawn": spawn},
            "health": {"stale_after_s": 60, "backlog_limit_mb": 1, "ingester_silent_s": 30},
        }
    )  # fmt: skip


def _service(config, ingester=None):
    handler = SimpleNamespace(ticks_by_symbol={}, counts=Counter())
    streams = config.ingest.streams()
    return SimpleNamespace(handler=handler, streams=streams, ingester=ingester, end_header=None, sinks=[])


def _tick(service, key: str, n: int = 1) -> None:
    service.handler.ticks_by_symbol.setdefault(key, Counter())["trade"] += n
    service.handler.counts["frames_received"] += 1


def test_a_stream_without_a_message_for_stale_after_s_of_wall_time_is_unhealthy_naming_it():
    config, clock = _config(), Clock()
    service = _service(config)
    health = Health(config, service, lambda: [], clock)
    assert health.report().ok
    clock.t += 45
    _tick(service, "binance:BTCUSDT")  # btcusdt heard from at 45 s; ethusdt never
    health.sample()
    clock.t += 16  # 61 s after the start: ethusdt stale, btcusdt silent for 16 s only
    report = health.report()
    assert not report.ok
    assert report.reasons == ["stale_stream: binance ethusdt: no message for 61 s (health.stale_after_s 60)"]
    assert report.silence == {("binance", "btcusdt"): 16.0, ("binance", "ethusdt"): 61.0}
    _tick(service, "binance:ETHUSDT")
    assert health.report().ok  # heard from again


def test_a_sink_holding_more_than_backlog_limit_mb_in_memory_and_spill_is_unhealthy():
    config, clock = _config(), Clock()
    spill = SimpleNamespace(stats={"spilled_bytes": 0})
    sink = SimpleNamespace(name="persist", backlog=SimpleNamespace(nbytes=600_000), spill=spill)
    health = Health(config, _service(config), lambda: [sink], clock)
    assert health.report().ok  # 0.6 MB of a 1 MB limit
    sink.spill.stats["spilled_bytes"] = 400_001  # 1,000,001 bytes in all
    report = health.report()
    assert report.reasons == [
        "backlog: persist holds 1000001 bytes waiting (memory 600000, disk 400001), over"
        " health.backlog_limit_mb 1"
    ]


def test_a_spawned_ingester_that_exited_without_ending_its_session_is_down_one_that_ended_it_is_not():
    config, clock = _config(), Clock()
    ingester = SimpleNamespace(returncode=None)
    service = _service(config, ingester)
    health = Health(config, service, lambda: [], clock)
    assert health.report().ok
    ingester.returncode = 1
    assert health.report().ok  # its end frame may still come: the service reads on for 3 s
    clock.t += 3
    assert health.report().ok
    clock.t += 0.5
    assert health.report().reasons == [
        "ingester_down: the ingester exited with code 1 without ending its session"
    ]
    service.end_header = {"reason": "replay_finished"}
    assert health.report().ok


def test_a_standalone_ingester_silent_for_ingester_silent_s_is_down():
    config, clock = _config(spawn=False), Clock()
    service = _service(config)
    health = Health(config, service, lambda: [], clock)
    clock.t += 20
    service.handler.counts["frames_received"] += 1  # a ledger frame: no ticks, but the ingester is up
    health.sample()
    clock.t += 30
    assert health.report().ok  # 30 s since its last frame: not over 30
    clock.t += 1
    (reason,) = [r for r in health.report().reasons if r.startswith("ingester_down")]
    assert reason == (
        "ingester_down: no frame from the ingester (ingest.spawn: false) for 31 s"
        " (health.ingester_silent_s 30)"
    )


def test_health_over_http_is_503_with_the_reasons_as_json():
    config = config_from_dict({"health": {"backlog_limit_mb": 1}, "metrics": {"address": "127.0.0.1:0"}})
    sink = SimpleNamespace(name="instruments", backlog=SimpleNamespace(nbytes=2_000_000), spill=None,
                           get_stats=lambda: {})  # fmt: skip

    async def main():
        server = MetricsServer(config, None, [sink])
        server.start()
        host, _, port = server.address.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = await reader.read()
        writer.close()
        closed = server.close()
        return raw, closed

    raw, closed = asyncio.run(main())
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Content-Type: application/json" in head
    got = json.loads(body)
    assert got["status"] == "unhealthy"
    assert got["reasons"] == [
        "backlog: instruments holds 2000000 bytes waiting (memory 2000000, disk 0), over"
        " health.backlog_limit_mb 1"
    ]
    assert "mdth_healthy 0.0" in closed["exposition"]
    assert 'mdth_unhealthy{kind="backlog"} 1.0' in closed["exposition"]


def test_with_the_real_service_a_symbol_is_seen_by_its_frames_and_stale_once_they_stop(tmp_path):
    """The service's own counters (its keys as the frames name the instrument, BTCUSDT, against the
    configured btcusdt), a standalone ingester's frames, on the test's clock."""
    from helpers import T0, S, control_frame, trade_frame

    from market_data_tick_handler.streaming_service import ServeMode
    from market_data_tick_handler.streaming_service.service import StreamingService
    from market_data_tick_handler.streaming_service.transport.inmemory import InMemoryBus, InMemoryTransport

    endpoint = f"ipc://{tmp_path}/f.sock"
    config = config_from_dict(
        {
            "serve": {"transport": "inmemory"},
            "ingest": {"source": "replay", "exchange": "binance", "symbols": ["btcusdt"], "spawn": False,
                       "endpoint": endpoint},
            "candles": {"timeframes": ["15s", "1m"], "enable_hft_features": False},
            "health": {"stale_after_s": 60, "ingester_silent_s": 30},
        }
    )  # fmt: skip
    start = {"source": "replay", "exchanges": ["binance"], "data_types": ["trade"], "speed": "max"}
    clock = Clock()

    async def main() -> list:
        import zmq
        import zmq.asyncio

        service = StreamingService(config, [ServeMode(config.serve, InMemoryTransport(InMemoryBus()))])
        health = Health(config, service, lambda: service.sinks, clock)
        run = asyncio.create_task(service.run())
        push = zmq.asyncio.Context.instance().socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(endpoint)
        reports = []

        async def send(data: bytes, frames: int) -> None:
            await push.send(data)
            async with asyncio.timeout(30):
                while service.handler.counts.get("frames_received", 0) < frames:
                    await asyncio.sleep(0.01)

        try:
            await send(control_frame("start", 0, session="s", **start), 1)
            await send(trade_frame([(0, T0 + S, 100.0, 1.0, "buy")], seq=1, session="s"), 2)
            health.sample()
            clock.t += 25
            reports.append(health.report())  # 25 s: fine
            clock.t += 45
            reports.append(health.report())  # 70 s without a frame: stale, and the ingester silent
            await send(trade_frame([(0, T0 + 2 * S, 100.0, 1.0, "buy")], seq=2, session="s"), 3)
            reports.append(health.report())  # heard from again
        finally:
            service.stop()
            push.close()
            await asyncio.wait_for(run, 30)
        return reports

    fine, silent, again = asyncio.run(main())
    assert fine.ok and fine.silence == {("binance", "btcusdt"): 25.0}
    assert silent.reasons == [
        "stale_stream: binance btcusdt: no message for 70 s (health.stale_after_s 60)",
        "ingester_down: no frame from the ingester (ingest.spawn: false) for 70 s"
        " (health.ingester_silent_s 30)",
    ]
    assert again.ok and again.silence == {("binance", "btcusdt"): 0.0}


def test_a_collector_that_fails_is_a_500_and_an_empty_exposition_at_close_never_an_exception(caplog):
    config = config_from_dict({"metrics": {"address": "127.0.0.1:0"}})

    class Broken:
        name = "broken"
        backlog = SimpleNamespace(nbytes=0)
        spill = None

        def get_stats(self):
            raise RuntimeError("a bug")

    async def main():
        server = MetricsServer(config, None, [Broken()])
        server.start()
        host, _, port = server.address.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /metrics HTTP/1.1\r\n\r\n")
        raw = await reader.read()
        writer.close()
        return raw, server.close()

    raw, closed = asyncio.run(main())
    assert raw.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert closed["exposition"] == ""
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "metrics: GET /metrics failed",
        "metrics: the final exposition failed",
    ]
