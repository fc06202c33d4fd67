"""Persist mode without BigQuery: its configuration, the table definitions, candles as rows and rows as
the Storage Write API's protos. Expected values are worked out by hand (see the comments)."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import T0, S, trade_frame

from market_data_tick_handler.config import (
    BigQueryConfig,
    ConfigError,
    PartitioningConfig,
    config_from_dict,
    load_config,
)
from market_data_tick_handler.streaming_service import CandleBatch
from market_data_tick_handler.streaming_service.bigquery_client import (
    CANDLE_COLUMNS,
    candle_rows,
    candle_tables,
)
from market_data_tick_handler.streaming_service.bigquery_client.proto_rows import RowEncoder
from market_data_tick_handler.streaming_service.candle_processor import Candle
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler

REPO = Path(__file__).resolve().parents[2]
T_IN = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z
LOCAL, OUT = T_IN + 60_250_123, T_IN + 60_250_456


def _candle(tf="1m", empty=False, features=None):
    if empty:  # an empty candle: OHLC = the previous close, no vwap, no trade times
        return Candle("binance", "BTC-USDT", "BTCUSDT", tf, T_IN, 61_700.5, 61_700.5, 61_700.5, 61_700.5,
                      0.0, 0.0, 0.0, None, 0, None, None, True, False, False, 0, features)  # fmt: skip
    return Candle("binance", "BTC-USDT", "BTCUSDT", tf, T_IN, 61_600.0, 61_800.25, 61_500.0, 61_700.5,
                  2.5, 1.5, 1.0, 61_650.0, 42, T_IN + 1_000, T_IN + 59_999_000, False, True, False, 1,
                  features)  # fmt: skip


def test_the_config_table_defaults_and_the_repository_streaming_yaml():
    bq = BigQueryConfig()
    assert (bq.dataset_live, bq.dataset_historical) == ("market_data_streaming_live", "market_data_streaming")
    assert (bq.batch_size, bq.batch_timeout_ms, bq.target) == (1000, 60_000, "auto")
    assert bq.live_partitioning == PartitioningConfig("HOUR", "timestamp_out", 30)
    assert bq.historical_partitioning == PartitioningConfig("DAY", "timestamp_out", None)
    assert bq.clustering_fields == ("exchange", "symbol") and bq.emulator is None
    repo = load_config(REPO / "streaming.yaml").persist.bigquery
    assert repo.live_partitioning == bq.live_partitioning
    assert repo.historical_partitioning == bq.historical_partitioning
    assert repo.clustering_fields == ("exchange", "symbol") and repo.batch_size == 1000


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"persist\.bigquery: unknown key\(s\) batchsize"):
        config_from_dict({"persist": {"bigquery": {"batchsize": 10}}})
    with pytest.raises(ConfigError, match=r"HOUR .*there are no 5-minute partitions"):
        config_from_dict({"persist": {"bigquery": {"live_partitioning": {"type": "5MIN"}}}})
    with pytest.raises(ConfigError, match="modes: unknown bigquery"):
        config_from_dict({"modes": ["serve", "bigquery"]})
    given = config_from_dict(
        {"modes": ["serve", "persist"], "persist": {"bigquery": {"historical_partitioning": {"ttl_days": 7}}}}
    )
    assert given.modes == ("serve", "persist")
    # the keys left out keep their defaults
    assert given.persist.bigquery.historical_partitioning == PartitioningConfig("DAY", "timestamp_out", 7)


def test_tables_per_timeframe_with_one_nullable_float_column_per_feature():
    specs = candle_tables(BigQueryConfig(), "tardis-realtime", ("15s", "1m", "24h"))
    assert [s.name for s in specs.values()] == ["candles_15s", "candles_1m", "candles_24h"]
    spec = specs["1m"]
    assert spec.dataset == "market_data_streaming_live"  # a live source writes to the live dataset
    assert spec.partitioning.type == "HOUR" and spec.partition_expiration_ms == 30 * 24 * 3600 * 1000
    assert spec.clustering_fields == ("exchange", "symbol")
    names = [c.name for c in spec.columns]
    assert names[:7] == ["symbol", "exchange", "exchange_symbol", "timeframe", "timestamp_in",
                         "local_timestamp", "timestamp_out"]  # fmt: skip
    assert len(names) == len(set(names))
    # every feature of the catalogue as docs/FEATURES.md lists it, nullable FLOAT64, after the candle
    doc = (REPO / "docs" / "FEATURES.md").read_text()
    features = [line.split("|")[1].strip().strip("`") for line in doc.splitlines() if line.startswith("| `")]
    assert names[len(CANDLE_COLUMNS) :] == features
    assert {"sma_5", "ema_5", "rsi_5", "price_volatility_5", "sma_20", "spread_bps"} <= set(features)
    by_name = {c.name: c for c in spec.columns}
    assert all(by_name[f].type == "FLOAT64" and by_name[f].mode == "NULLABLE" for f in features)
    assert [c.name for c in spec.columns if not c.required] == ["vwap", "first_trade_time", "last_trade_time",
                                                                *features]  # fmt: skip
    assert {by_name[n].type for n in ("timestamp_in", "local_timestamp", "timestamp_out")} == {"TIMESTAMP"}
    # the candle columns are the candle's fields (candle.py) and its two wall-clock stamps
    assert set(names[: len(CANDLE_COLUMNS)]) == set(Candle.__dataclass_fields__) - {"hft_features"} | {
        "local_timestamp",
        "timestamp_out",
    }


def test_replays_write_to_the_historical_dataset_unless_told_otherwise():
    replay = candle_tables(BigQueryConfig(), "replay", ("1m",))["1m"]
    assert replay.dataset == "market_data_streaming" and replay.partitioning.type == "DAY"
    assert replay.partition_expiration_ms is None
    live = candle_tables(BigQueryConfig(target="live"), "replay", ("1m",))["1m"]
    assert live.dataset == "market_data_streaming_live"
    with pytest.raises(ValueError, match="not a TIMESTAMP column"):
        candle_tables(
            BigQueryConfig(historical_partitioning=PartitioningConfig(field="close")), "replay", ("1m",)
        )


def test_rows_of_a_candle_with_features_and_of_an_empty_one():
    features = {"sma_5": 61_690.25, "rsi_5": None, "price_volatility_5": 0.0004}
    batch = CandleBatch.from_candles([_candle(features=features), _candle(empty=True)])
    parts = list(candle_rows(batch, LOCAL, OUT))  # from_candles: one part per candle
    assert [tf for tf, _ in parts] == ["1m", "1m"]
    full, empty = (row for _, rows in parts for row in rows)
    assert full == {
        "symbol": "BTC-USDT", "exchange": "binance", "exchange_symbol": "BTCUSDT", "timeframe": "1m",
        "timestamp_in": T_IN, "local_timestamp": LOCAL, "timestamp_out": OUT,
        "open": 61_600.0, "high": 61_800.25, "low": 61_500.0, "close": 61_700.5, "volume": 2.5,
        "buy_volume": 1.5, "sell_volume": 1.0, "vwap": 61_650.0, "trade_count": 42,
        "first_trade_time": T_IN + 1_000, "last_trade_time": T_IN + 59_999_000,
        "is_empty": False, "has_gap": True, "is_partial": False, "revision": 1,
        "sma_5": 61_690.25, "rsi_5": None, "price_volatility_5": 0.0004,
    }  # fmt: skip
    assert empty["vwap"] is None and empty["first_trade_time"] is None and empty["last_trade_time"] is None
    assert empty["is_empty"] is True and empty["trade_count"] == 0
    no_features = next(candle_rows(CandleBatch.from_candles([_candle("5m")]), LOCAL, OUT))[1][0]
    assert "sma_5" not in no_features  # a timeframe without features: its columns stay null


def test_live_rows_have_null_features_until_the_window_is_full():
    # one trade a second after each 15 s bucket starts; closes 100, 101, 103, 102, 104, 105
    closes = [100.0, 101.0, 103.0, 102.0, 104.0, 105.0]
    handler = TickHandler(CandleSettings(timeframes=("15s", "1m"), grace_ms=0, hft_timeframes=("15s",)))
    trades = [(0, T0 + k * 15 * S + S, close, 1.0, "buy") for k, close in enumerate(closes)]
    batches = handler.handle_bytes(trade_frame(trades)).batches + handler.finish()
    rows = [r for b in batches for tf, part in candle_rows(b, LOCAL, OUT) if tf == "15s" for r in part]
    assert [r["timestamp_in"] for r in rows] == [T0 + k * 15 * S for k in range(6)]
    assert [r["close"] for r in rows] == closes
    assert [r["sma_5"] for r in rows[:4]] == [None] * 4 and [r["ema_5"] for r in rows[:4]] == [None] * 4
    assert rows[4]["sma_5"] == pytest.approx((100 + 101 + 103 + 102 + 104) / 5)  # 102.0
    assert rows[4]["ema_5"] == pytest.approx(102.0)  # the first EMA is the SMA
    assert rows[5]["sma_5"] == pytest.approx((101 + 103 + 102 + 104 + 105) / 5)  # 103.0
    assert rows[5]["ema_5"] == pytest.approx((105 - 102) * 2 / 6 + 102)  # 103.0
    assert [r["rsi_5"] for r in rows[:5]] == [None] * 5  # 5 changes need 6 candles
    # changes +1 +2 -1 +2 +1: average gain 6/5, average loss 1/5 -> 100 * 1.2 / 1.4
    assert rows[5]["rsi_5"] == pytest.approx(600 / 7)
    assert rows[5]["sma_10"] is None and rows[5]["price_volatility_20"] is None
    assert rows[1]["log_return"] == pytest.approx(math.log(101 / 100))
    assert all(r["vwap"] == r["close"] for r in rows)  # one trade each
    minute = [r for b in batches for tf, part in candle_rows(b, LOCAL, OUT) if tf == "1m" for r in part]
    assert minute and all("sma_5" not in r for r in minute)  # 1m is not an hft timeframe here


def test_rows_as_protos_leave_nulls_unset_and_keep_microseconds():
    spec = candle_tables(BigQueryConfig(), "replay", ("1m",))["1m"]
    encoder = RowEncoder(spec.columns)
    batch = CandleBatch.from_candles([_candle(features={"sma_5": 1.5, "rsi_5": None}), _candle(empty=True)])
    rows = [row for _, part in candle_rows(batch, LOCAL, OUT) for row in part]
    full, empty = (encoder.message.FromString(data) for data in encoder.encode(rows))
    assert (
        full.timestamp_out == OUT and full.local_timestamp == LOCAL and full.first_trade_time == T_IN + 1_000
    )
    assert full.close == 61_700.5 and full.trade_count == 42 and full.has_gap and full.symbol == "BTC-USDT"
    assert full.sma_5 == 1.5 and not full.HasField("rsi_5") and not full.HasField("ema_20")
    assert not empty.HasField("vwap") and not empty.HasField("first_trade_time") and empty.is_empty
    assert [f.name for f in encoder.descriptor.field] == [c.name for c in spec.columns]


def test_the_repository_streaming_yaml_names_every_persist_key():
    raw = yaml.safe_load((REPO / "streaming.yaml").read_text())["persist"]["bigquery"]
    assert set(raw) | {"emulator"} == set(BigQueryConfig.__dataclass_fields__)
    assert np.isclose(raw["live_partitioning"]["ttl_days"], 30)


def test_the_command_line_runs_the_modes_together_and_refuses_what_is_not_built(capsys):
    from market_data_tick_handler.main import apply_overrides, main, parse_args

    assert main(["--mode", "streaming-ticks-bigquery"]) == 2
    assert "streaming-ticks-bigquery are not available in this version" in capsys.readouterr().err
    assert main(["--mode", "streaming-candles-bigquery", "--bigquery-emulator", "127.0.0.1:9050"]) == 2
    assert "REST_URL,GRPC_HOST:PORT" in capsys.readouterr().err
    args = parse_args(["--bigquery-project", "p", "--bigquery-target", "live",
                       "--bigquery-emulator", "http://127.0.0.1:9050,127.0.0.1:9060"])  # fmt: skip
    bq = apply_overrides(config_from_dict({}), args).persist.bigquery
    assert (bq.project_id, bq.target, bq.emulator.rest_url, bq.emulator.grpc_target) == (
        "p",
        "live",
        "http://127.0.0.1:9050",
        "127.0.0.1:9060",
    )
