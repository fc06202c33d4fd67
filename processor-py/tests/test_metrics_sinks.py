"""The sinks' side of the metrics: persist mode's appends timed by outcome (ok, failed and tried again,
refused) with its retries, refusals and rows counted; the instrument refreshes of the instruments sync.
Figures worked out from what the fake store was made to do."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from market_data_tick_handler.config import BigQueryConfig, config_from_dict
from market_data_tick_handler.streaming_service import CandleBatch, PersistMode
from market_data_tick_handler.streaming_service.bigquery_client import WriteFailed, WriteRefused
from market_data_tick_handler.streaming_service.bigquery_client.sink import MemorySink
from market_data_tick_handler.streaming_service.candle_processor import Candle
from market_data_tick_handler.streaming_service.instrument_service import LiveInstrumentProvider
from market_data_tick_handler.streaming_service.metrics.server import MetricsServer
from support.metrics_text import samples, value

MARKETS = Path(__file__).resolve().parents[3] / "shared" / "data" / "ccxt-markets"
T_IN = 1_723_161_600_000_000
MINUTE = 60_000_000


def _minute(k: int) -> CandleBatch:
    t_in = T_IN + k * MINUTE
    return CandleBatch.from_candles(
        [Candle("binance", "BTC-USDT", "BTCUSDT", "1m", t_in, 1.0, 2.0, 0.5, 1.5, 2.5, 1.5, 1.0, 1.2, 4,
                t_in + 1, t_in + 2, False, False, False, 0, None)]
    )  # fmt: skip


class Flaky(MemorySink):
    """The first append fails (sent again), the third batch is refused, the rest land."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def append(self, batch):
        self.calls += 1
        if self.calls == 1:
            raise WriteFailed("unreachable")
        if batch.rows and self.calls == 4:
            raise WriteRefused("bad rows")
        return super().append(batch)


def test_persist_appends_are_timed_by_outcome_beside_its_retries_refusals_and_rows():
    config = config_from_dict({"metrics": {"address": "127.0.0.1:0"}})
    bq = BigQueryConfig(batch_size=1, batch_timeout_ms=0)

    async def main() -> str:
        mode = PersistMode(bq, ("1m",), "tardis-realtime", Flaky())
        mode.backlog.first_retry_s = 0.01
        server = MetricsServer(config, None, [mode])  # not started: the exposition is read directly
        await mode.start()
        for k in range(4):
            mode.add(_minute(k), T_IN, T_IN)
        assert await mode.flush(10)
        await mode.close()
        return server.close()["exposition"]

    got = samples(asyncio.run(main()))
    # calls: 1 failed (batch 0), 2 ok (batch 0 again), 3 ok (batch 1), 4 refused (batch 2), 5 ok (batch 3)
    assert value(got, "mdth_sink_write_seconds_count", sink="persist", store="memory", outcome="failed") == 1
    assert value(got, "mdth_sink_write_seconds_count", sink="persist", store="memory", outcome="ok") == 3
    assert value(got, "mdth_sink_write_seconds_count", sink="persist", store="memory", outcome="refused") == 1
    assert value(got, "mdth_sink_retries_total", sink="persist") == 1
    assert value(got, "mdth_sink_errors_total", sink="persist") == 1
    assert value(got, "mdth_sink_written_total", sink="persist", what="rows") == 3
    assert value(got, "mdth_sink_refused_total", sink="persist", what="rows") == 1
    assert value(got, "mdth_sink_backlog_bytes", sink="persist", where="memory") == 0


def test_instrument_refreshes_changes_and_loads_are_read_from_the_sync_and_its_provider():
    provider = SimpleNamespace(
        stats={
            "loads": 5,
            "load_failures": 2,
            "exchanges": {
                "binance": {"instruments": 3, "load_seconds": 0.25, "last_load_us": 1_700_000_000_500_000},
                "deribit": {"instruments": 0, "load_seconds": None, "last_load_us": None},
            },
        }
    )
    sync = SimpleNamespace(
        name="instruments",
        provider=provider,
        stats={"changes": {"listed": 1, "changed": 2, "delisted": 0}, "redis_errors": 1},
    )
    server = MetricsServer(config_from_dict({}), None, [sync])
    got = samples(server.close()["exposition"])
    assert value(got, "mdth_instrument_refreshes_total", outcome="ok") == 5
    assert value(got, "mdth_instrument_refreshes_total", outcome="failed") == 2
    assert value(got, "mdth_instrument_changes_total", kind="changed") == 2
    assert value(got, "mdth_instrument_redis_errors_total") == 1
    assert value(got, "mdth_instruments", exchange="binance") == 3
    assert value(got, "mdth_instrument_load_seconds", exchange="binance") == 0.25
    assert value(got, "mdth_instrument_last_load_timestamp_seconds", exchange="binance") == 1_700_000_000.5
    assert ("mdth_instrument_load_seconds", (("exchange", "deribit"),)) not in got  # never loaded


@pytest.mark.skipif(not (MARKETS / "binance.json").is_file(), reason="shared/data/ccxt-markets absent")
def test_each_load_of_the_markets_is_timed_by_ccxt_exchange_and_outcome(tmp_path):
    """binance's market file is there, coinbase's is not: one load each at start, one ok, one failed."""
    shutil.copy(MARKETS / "binance.json", tmp_path / "binance.json")

    async def main() -> str:
        provider = LiveInstrumentProvider(["binance", "coinbase"], 300, markets_dir=str(tmp_path))
        sync = SimpleNamespace(name="instruments", provider=None, stats={}, load_timer=None)
        server = MetricsServer(config_from_dict({}), None, [sync])
        sync.provider = provider  # as InstrumentsSync.start does: made after the metrics, given the timer
        provider.load_timer = sync.load_timer
        await provider.start()
        await provider.stop()
        return server.close()["exposition"]

    got = samples(asyncio.run(main()))
    ok = {"ccxt_exchange": "binance", "outcome": "ok"}
    failed = {"ccxt_exchange": "coinbaseexchange", "outcome": "failed"}
    assert value(got, "mdth_instrument_refresh_seconds_count", **ok) == 1
    assert value(got, "mdth_instrument_refresh_seconds_count", **failed) == 1
    assert (
        "mdth_instrument_refresh_seconds_count",
        tuple(sorted({**ok, "outcome": "failed"}.items())),
    ) not in got
    assert value(got, "mdth_instrument_refreshes_total", outcome="ok") == 1
    assert value(got, "mdth_instrument_refreshes_total", outcome="failed") == 1
