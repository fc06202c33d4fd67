"""A stop in one process (the cheap SIGINT variant of tests/test_clean_stop.py): a real SIGINT to this
process while ``StreamingService.run`` runs stops it with exit code 0 within ``shutdown.timeout_s``, and
each sink's own close timeout is cut to the time left before that deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import tempfile
import time

import pytest
import zmq
import zmq.asyncio
from helpers import T0, S, control_frame, trade_frame

from market_data_tick_handler.config import ShutdownConfig, config_from_dict
from market_data_tick_handler.streaming_service import ServeMode
from market_data_tick_handler.streaming_service.service import StreamingService
from market_data_tick_handler.streaming_service.transport.inmemory import InMemoryBus, InMemoryTransport

START = {"source": "replay", "exchanges": ["binance"], "data_types": ["trade"], "speed": "max"}


@pytest.fixture
def endpoint():
    with tempfile.TemporaryDirectory(prefix="clistop-", dir="/tmp") as tmp:
        yield f"ipc://{tmp}/frames.sock"


def _config(endpoint: str, timeout_s: float):
    config = config_from_dict(
        {
            "serve": {"transport": "inmemory", "close_timeout_s": 10},
            "ingest": {"source": "replay", "symbols": ["btcusdt"], "spawn": False, "endpoint": endpoint},
            "candles": {"timeframes": ["15s", "1m"], "grace_ms": 0, "enable_hft_features": False},
            "data_types": {
                name: {"enabled": False}
                for name in ("book_snapshots", "derivative_ticker", "options_chain", "funding_rates")
            },
        }
    )
    return dataclasses.replace(config, shutdown=ShutdownConfig(timeout_s))


async def test_sigint_stops_the_run_with_0_and_cuts_each_close_to_the_time_left(endpoint):
    bus = InMemoryBus()
    candles = bus.subscribe("candles:binance:*")
    config = _config(endpoint, 3.0)
    sink = ServeMode(config.serve, InMemoryTransport(bus))
    service = StreamingService(config, [sink])
    run = asyncio.create_task(service.run())
    ctx = zmq.asyncio.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(endpoint)
    try:
        await push.send(control_frame("start", 0, session="s1", **START))
        trades = [(0, T0 + 1 * S, 100.0, 1.0, "buy"), (0, T0 + 16 * S, 103.0, 2.0, "sell")]
        await push.send(trade_frame(trades, 1, "s1"))
        for _ in range(200):
            if service.get_stats()["counts"].get("frames", 0) == 2:
                break
            await asyncio.sleep(0.02)
        sent = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)  # the loop's handler takes it, as in the command line
        code = await asyncio.wait_for(run, 10)
        took = time.monotonic() - sent
    finally:
        push.close()
        ctx.term()
    assert code == 0
    assert service.signals == 1
    assert took <= 3.0
    assert service.stop_deadline is not None
    assert sink.config.close_timeout_s <= 3.0  # its own 10 s, cut to what the deadline left
    assert service.unwritten == {}
    published = []
    while not candles.empty():
        published.append(candles.get_nowait())
    assert len(published) == 1  # [0, 15 s) closed by the trade at 16 s; the ingester runs on its own:
    # its open candles stay open for it (test_service.py), nothing else was lost
