"""The BigQuery warm-up's read (``bigquery_client/recent_candles.py``) against a real BigQuery endpoint
(bqemulator): rows written by PersistMode, read back through the official client with the anchor rule,
the count per series, the highest revision once, the configured exchange and symbols; what it says when
a table, the dataset or BigQuery itself is missing; and the rows it returns warming a TickHandler up, the
derivative group's open interest included. Expected values are the test's own inputs, worked out here."""

import asyncio
import dataclasses
import math
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.api_core import exceptions as api_errors

from market_data_tick_handler.config import (
    BigQueryConfig,
    CandlesConfig,
    EmulatorConfig,
    IngestConfig,
    IngestExchangeConfig,
    PartitioningConfig,
    PersistConfig,
    StreamingConfig,
)
from market_data_tick_handler.devtools.local_redis import free_port
from market_data_tick_handler.streaming_service import CandleBatch, PersistMode
from market_data_tick_handler.streaming_service.bigquery_client.recent_candles import (
    bounds,
    read_recent_candles,
    warmup_candle,
)
from market_data_tick_handler.streaming_service.candle_processor import Candle
from market_data_tick_handler.streaming_service.service import StreamingService
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler
from market_data_tick_handler.timeutil import now_us, parse_iso_us

T0 = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z
M = 60_000_000  # one minute in µs
OUT = T0 + 10 * M  # when the candles were "published"


def _candle(minute, close, symbol="BTC-USDT", exchange="binance", revision=0, features=None, empty=False):
    t_in = T0 + minute * M
    native = symbol.replace("-", "")
    first, last, vwap = (None, None, None) if empty else (t_in + 1_000, t_in + 59_000_000, close - 0.5)
    volume = 0.0 if empty else 2.0
    half = volume / 2
    trades = 0 if empty else 3
    return Candle(exchange, symbol, native, "1m", t_in, close, close + 1, close - 1, close, volume, half,
                  half, vwap, trades, first, last, empty, False, False, revision, features)  # fmt: skip


def _config(endpoint, partition_field="timestamp_out", count=3, rest_url=None, dataset=None):
    dataset = dataset or f"w_{uuid.uuid4().hex[:10]}"
    bq = BigQueryConfig(
        project_id=endpoint.project,
        dataset_live=dataset,
        live_partitioning=PartitioningConfig(type="HOUR", field=partition_field, ttl_days=None),
        request_timeout_s=5.0,
        emulator=EmulatorConfig(rest_url or endpoint.rest_url, endpoint.grpc_target),
    )
    return StreamingConfig(
        persist=PersistConfig(bq),
        candles=CandlesConfig(hft_timeframes=("15s", "1m"), hft_warmup_candles=count),
        ingest=IngestConfig(source="tardis-realtime", exchange="binance", symbols=("btcusdt", "ethusdt")),
    )


async def _write(config, batches):
    """Each (batch, timestamp_out) through PersistMode into the 1m table of the live dataset (the 15s
    table is not made: no history on 15s)."""
    mode = PersistMode(config.persist.bigquery, ("1m",), "tardis-realtime")
    await mode.start()
    for batch, out in batches:
        mode.add(batch, out - 100, out)
    assert await mode.flush(30)
    await mode.close()
    assert mode.stats["rows_written"] == sum(len(b) for b, _ in batches)


def _of(candles):
    return CandleBatch.from_candles(candles)


@pytest.mark.parametrize("partition_field", ["timestamp_out", "timestamp_in", "first_trade_time"])
async def test_the_last_candles_closed_by_the_anchor_latest_revision_once_per_series(
    bigquery_emulator, partition_field
):
    config = _config(bigquery_emulator, partition_field)
    oi = {"open_interest": 12_345.5, "funding_rate": 0.0001}
    await _write(
        config,
        [
            # BTC minutes 0-5; minute 4 carries the derivative context
            (_of([_candle(k, 100.0 + k, features=oi if k == 4 else None) for k in range(6)]), OUT),
            # minute 3 revised (a late trade), minute 4 written again by a later run with another close
            (_of([_candle(3, 203.0, revision=1)]), OUT + M),
            (_of([_candle(4, 104.5, features=oi)]), OUT + 2 * M),
            # ETH minute 4: an empty candle (no vwap, no trade times); SOL is not configured
            (_of([_candle(4, 2_600.0, "ETH-USDT", empty=True), _candle(4, 150.0, "SOL-USDT")]), OUT),
            # the same symbol on another exchange
            (_of([_candle(4, 999.0, exchange="binance-futures")]), OUT),
        ],
    )
    until = T0 + 5 * M  # 00:05:00: minute 4 closed at the anchor, minute 5 not yet; count 3 = minutes 2-4
    got = read_recent_candles(config, bigquery_emulator.project, until)
    assert got.error is None, got.error
    assert got.missing == ["candles_15s"] and set(got.candles) == {"1m"}
    rows = got.candles["1m"]
    assert [(r["exchange_symbol"], (r["timestamp_in"] - T0) // M, r["close"]) for r in rows] == [
        ("BTCUSDT", 2, 102.0),
        ("BTCUSDT", 3, 203.0),  # the highest revision
        ("BTCUSDT", 4, 104.5),  # of two rows of revision 0, the one written last
        ("ETHUSDT", 4, 2_600.0),
    ]
    btc4, eth4 = rows[2], rows[3]
    assert btc4 == {
        "exchange": "binance", "exchange_symbol": "BTCUSDT", "timeframe": "1m", "timestamp_in": T0 + 4 * M,
        "open": 104.5, "high": 105.5, "low": 103.5, "close": 104.5, "volume": 2.0, "buy_volume": 1.0,
        "sell_volume": 1.0, "vwap": 104.0, "trade_count": 3, "open_interest": 12_345.5,
        "funding_rate": 0.0001,
    }  # fmt: skip
    assert eth4["vwap"] is None and eth4["trade_count"] == 0
    assert "open_interest" not in rows[0] and "funding_rate" not in eth4  # null: left out
    # one µs before minute 4 closes it is not there yet
    early = read_recent_candles(config, bigquery_emulator.project, until - 1).candles["1m"]
    assert [((r["timestamp_in"] - T0) // M) for r in early if r["exchange_symbol"] == "BTCUSDT"] == [1, 2, 3]


async def test_a_missing_dataset_or_an_unreachable_bigquery_is_an_error_a_missing_table_is_not(
    bigquery_emulator,
):
    config = _config(bigquery_emulator)
    await _write(config, [(_of([_candle(4, 100.0)]), OUT)])  # the dataset, and candles_1m only
    got = read_recent_candles(config, bigquery_emulator.project, T0 + 5 * M)
    assert got.error is None and got.missing == ["candles_15s"] and len(got.candles["1m"]) == 1

    missing = _config(bigquery_emulator, dataset=f"nope_{uuid.uuid4().hex[:8]}")
    got = read_recent_candles(missing, bigquery_emulator.project, T0 + 5 * M)
    assert isinstance(got.error, api_errors.NotFound) and got.failed_table == "candles_15s"
    assert got.candles == {} and got.missing == []

    nobody = _config(bigquery_emulator, rest_url=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    got = read_recent_candles(nobody, bigquery_emulator.project, T0 + 5 * M)
    assert isinstance(got.error, OSError), repr(got.error)  # connection refused, no retries
    assert got.failed_table == "candles_15s" and time.monotonic() - started < 5


async def test_several_exchanges_each_read_with_its_own_symbols(bigquery_emulator):
    config = _config(bigquery_emulator)
    config = dataclasses.replace(
        config,
        ingest=IngestConfig(
            source="tardis-realtime",
            exchanges=(
                IngestExchangeConfig("binance", ("btcusdt",)),
                IngestExchangeConfig("binance-futures", ("ethusdt",)),
            ),
        ),
    )
    await _write(
        config,
        [
            (_of([_candle(4, 100.0), _candle(4, 200.0, "ETH-USDT")]), OUT),  # binance: BTC only
            (  # binance-futures: ETH only
                _of([_candle(4, 999.0, exchange="binance-futures"),
                     _candle(4, 300.0, "ETH-USDT", exchange="binance-futures")]),
                OUT,
            ),
        ],
    )  # fmt: skip
    got = read_recent_candles(config, bigquery_emulator.project, T0 + 5 * M)
    assert got.error is None, got.error
    assert got.missing == ["candles_15s"]  # once, not once per exchange
    assert [(r["exchange"], r["exchange_symbol"], r["close"]) for r in got.candles["1m"]] == [
        ("binance", "BTCUSDT", 100.0),
        ("binance-futures", "ETHUSDT", 300.0),
    ]


def test_bounds_give_count_bucket_starts_ending_with_the_candle_closed_by_the_anchor():
    tf = 15_000_000
    anchor = T0 + 1_271_000  # 00:00:01.271, inside the 00:00:00 bucket
    since, last = bounds(anchor, tf, 4)
    assert (since, last) == (T0 - 4 * tf, anchor - tf)  # starts 23:59:00 .. 23:59:45
    assert [s for s in range(since, last + 1, tf)] == [T0 - k * tf for k in (4, 3, 2, 1)]
    since, last = bounds(T0, tf, 4)  # on a boundary: the candle ending at the anchor counts
    assert [s for s in range(since, last + 1, tf)] == [T0 - k * tf for k in (4, 3, 2, 1)]


def test_a_row_becomes_a_flat_candle_with_exact_microseconds():
    row = {
        "exchange": "binance", "exchange_symbol": "BTCUSDT", "timeframe": "15s",
        "timestamp_in": datetime(2024, 8, 8, 23, 59, 45, 123_456, tzinfo=UTC), "open": 1.0, "high": 2.0,
        "low": 0.5, "close": 1.5, "volume": 3.0, "buy_volume": 1.0, "sell_volume": 2.0, "vwap": None,
        "trade_count": 0, "funding_rate": None, "open_interest": 0.0,
    }  # fmt: skip
    candle = warmup_candle(row)
    assert candle["timestamp_in"] == T0 - 15_000_000 + 123_456
    assert candle["vwap"] is None and candle["open_interest"] == 0.0 and "funding_rate" not in candle
    # another zone, and a naive value (UTC), give the same instant
    plus2 = timezone(timedelta(hours=2))
    assert warmup_candle({**row, "timestamp_in": row["timestamp_in"].astimezone(plus2)}) == candle
    naive = row["timestamp_in"].replace(tzinfo=None)
    assert warmup_candle({**row, "timestamp_in": naive})["timestamp_in"] == candle["timestamp_in"]


async def test_warmed_up_rows_carry_open_interest_into_the_first_live_candle():
    """The derivative group's open_interest_change of the first live candle is against the last stored
    candle's open interest; rows without it (a null left out) leave it unknown."""
    stored = [
        {"exchange": "binance-futures", "exchange_symbol": "BTCUSDT", "timeframe": "1m",
         "timestamp_in": T0 + k * M, "close": 100.0 + k, "high": 101.0 + k, "low": 99.0 + k, "volume": 1.0,
         "buy_volume": 0.5, "sell_volume": 0.5, "vwap": 100.0 + k, "trade_count": 2}
        for k in range(3)
    ]  # fmt: skip
    stored[2]["open_interest"] = 1_000.0  # only the last one has it: the first row lacks the key

    async def first_live(rows):
        settings = CandleSettings(
            timeframes=("1m",), grace_ms=0, hft_timeframes=("1m",), feature_groups=("derivative",)
        )
        h = TickHandler(settings)
        assert h.warm_up(rows) == len(rows)
        ticker = {"type": "derivative_ticker", "exchange": "binance-futures", "symbol": "BTCUSDT",
                  "timestamp": T0 + 3 * M + 5_000_000, "open_interest": 1_012.5, "funding_rate": 0.0001,
                  "mark_price": 103.0, "index_price": 103.0, "last_price": 103.0}  # fmt: skip
        assert await h.process_tick(ticker)
        for ts, price in ((T0 + 3 * M + 6_000_000, 103.0), (T0 + 4 * M + 1, 104.0)):
            trade = {"type": "trade", "exchange": "binance-futures", "symbol": "BTCUSDT", "timestamp": ts,
                     "price": price, "amount": 1.0, "side": "buy", "id": "1"}  # fmt: skip
            assert await h.process_tick(trade)
        candle = h.last_result.candles[0]
        assert candle.timestamp_in == T0 + 3 * M
        return candle.hft_features

    warm = await first_live(stored)
    assert warm["open_interest"] == 1_012.5 and warm["open_interest_change"] == 12.5
    assert warm["sma_5"] is None  # 4 candles: not full yet
    assert warm["log_return"] == math.log(103.0 / 102.0)  # continues the stored series
    cold = await first_live([])
    assert cold["open_interest_change"] is None and cold["log_return"] is None


async def test_a_live_service_warms_up_before_its_ingester_starts_anchored_now(bigquery_emulator):
    """Wall clock: the candles that closed before now are read when the service starts, before any frame
    (no ingester here: nothing ever arrives)."""
    config = _config(bigquery_emulator, count=500)
    config = dataclasses.replace(
        config,
        candles=dataclasses.replace(config.candles, hft_warmup_bigquery=True),
        ingest=dataclasses.replace(config.ingest, spawn=False),
    )
    this_minute = now_us() // M * M
    candles = [_candle(0, 100.0 + k) for k in range(5)]  # minutes -5 .. -1 before this one, and this one
    candles = [dataclasses.replace(c, timestamp_in=this_minute + (k - 5) * M) for k, c in enumerate(candles)]
    candles.append(dataclasses.replace(candles[-1], timestamp_in=this_minute))  # not closed yet
    await _write(config, [(_of(candles), this_minute)])
    service = StreamingService(config)
    before = now_us()
    task = asyncio.create_task(service.run())
    for _ in range(200):
        if service.warmup_stats is not None:
            break
        await asyncio.sleep(0.05)
    service.stop()
    assert await task == 0
    stats = service.warmup_stats
    anchor = parse_iso_us(stats["anchor"])
    assert before <= anchor <= now_us()
    closed = sum(c.timestamp_in + M <= anchor for c in candles)  # 5; 6 if a minute began meanwhile
    assert stats["candles_by_timeframe"] == {"15s": 0, "1m": closed} and stats["errors"] == 0
    assert stats["missing_tables"] == ["candles_15s"]
    assert service.handler.counts["warmup_candles"] == closed >= 5


def test_the_warm_up_settings_and_which_store_it_reads():
    from market_data_tick_handler.config import ConfigError, config_from_dict
    from market_data_tick_handler.main import apply_overrides, parse_args

    assert (CandlesConfig().hft_warmup_bigquery, CandlesConfig().hft_warmup_candles) == (False, 500)
    with pytest.raises(ConfigError, match="hft_warmup_candles: must be positive"):
        config_from_dict({"candles": {"hft_warmup_candles": 0}})
    config = apply_overrides(StreamingConfig(), parse_args(["--warmup-bigquery"]))
    assert config.candles.hft_warmup_bigquery is True
    # no project and no emulator: persist mode's tables are the local store's, and so is the warm-up
    assert StreamingService(config)._warm_from == f"the local store at {config.persist.local.path}"
    with_emulator = dataclasses.replace(
        config.persist.bigquery, emulator=EmulatorConfig("http://127.0.0.1:9050", "127.0.0.1:9060")
    )
    config = dataclasses.replace(config, persist=dataclasses.replace(config.persist, bigquery=with_emulator))
    with pytest.raises(ConfigError, match=r"--warmup-bigquery.*project_id is not set.*GCP_PROJECT_ID"):
        StreamingService(config)  # an emulator but no project: said at start, before anything runs
