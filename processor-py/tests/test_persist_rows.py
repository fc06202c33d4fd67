"""Persist mode without BigQuery: its configuration, the table definitions, and candles as rows in the
Storage Write API's wire form: against the protobuf library's serialisation of the row dict the old
per-row path built (kept here as the reference), and against values worked out by hand (see the
comments)."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from helpers import T0, S, trade_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from market_data_tick_handler.config import (
    BigQueryConfig,
    ConfigError,
    PartitioningConfig,
    config_from_dict,
    load_config,
)
from market_data_tick_handler.streaming_service import CandleBatch, PersistMode
from market_data_tick_handler.streaming_service.bigquery_client import (
    CANDLE_COLUMNS,
    Column,
    MemorySink,
    candle_tables,
    feature_columns,
)
from market_data_tick_handler.streaming_service.bigquery_client.proto_rows import (
    RowEncoder,
    _write,
    compile_row_writer,
)
from market_data_tick_handler.streaming_service.candle_processor import (
    Candle,
    CandleColumns,
    ClosedCandles,
    Stamps,
)
from market_data_tick_handler.streaming_service.candle_processor.feature_columns import FeatureColumns
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


# -- the reference: rows as the old per-row path made them, serialised by the protobuf library ---------
_CANDLE_FIELDS = tuple(c.name for c in CANDLE_COLUMNS if c.name not in ("local_timestamp", "timestamp_out"))


def reference_rows(part, exchange, symbols, exchange_symbols, local_us, out_us) -> list[dict]:
    """A dict per candle, keyed by column, None for null: the candle's own nulls (``candles()``), NaN
    features as None (``records()``), features the part does not carry left out."""
    rows = []
    for candle in part.candles(exchange, symbols, exchange_symbols):
        row = {name: getattr(candle, name) for name in _CANDLE_FIELDS}
        row["local_timestamp"], row["timestamp_out"] = local_us, out_us
        if candle.hft_features is not None:
            row.update(candle.hft_features)
        rows.append(row)
    return rows


def message_class(encoder: RowEncoder):
    """The protobuf library's message class of the encoder's descriptor (what BigQuery parses with)."""
    file = descriptor_pb2.FileDescriptorProto(name="row.proto", package="mdth", syntax="proto2")
    file.message_type.add().CopyFrom(encoder.descriptor)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("mdth.Row"))


def serialised(message, row: dict) -> bytes:
    return message(**{k: v for k, v in row.items() if v is not None}).SerializeToString()


FEATURES = feature_columns()
NAMES = tuple(c.name for c in FEATURES)
ENCODER = RowEncoder(CANDLE_COLUMNS + FEATURES)
MESSAGE = message_class(ENCODER)
#: a table with field numbers past 2047 (3-byte tags) for the features
WIDE = RowEncoder(CANDLE_COLUMNS + tuple(Column(f"x{k}", "FLOAT64", False) for k in range(2100)) + FEATURES)
WIDE_MESSAGE = message_class(WIDE)


def block_of(part: CandleColumns, exchange: str, symbols: list[str], natives: list[str]) -> ClosedCandles:
    return ClosedCandles(part, exchange, symbols, natives, Stamps(LOCAL, OUT))


def decoded(data: bytes) -> dict:
    """The fields set in a row: a null is not there."""
    return {f.name: value for f, value in MESSAGE.FromString(data).ListFields()}


def encoded_rows(batch: CandleBatch) -> list[tuple[str, dict]]:
    return [
        (block.columns.timeframe, decoded(data))
        for block in batch.blocks(Stamps(LOCAL, OUT))
        for data in ENCODER.encode(block)
    ]


# -- random parts -----------------------------------------------------------------------------------
INT64 = st.one_of(st.integers(0, 300), st.integers(-(2**63), 2**63 - 1))
FLOATS = st.one_of(st.floats(width=64), st.sampled_from([math.nan, -math.nan, -0.0, math.inf]))
TEXT = st.text(max_size=50)  # non-ASCII, empty, and over 127 bytes (a 2-byte length)


@st.composite
def parts(draw) -> tuple[CandleColumns, str, list[str], list[str]]:
    instruments = draw(st.integers(1, 8))
    symbols = draw(st.lists(TEXT, min_size=instruments, max_size=instruments))
    exchange_symbols = draw(st.lists(TEXT, min_size=instruments, max_size=instruments))
    n = draw(st.integers(1, 10))

    def column(strategy, dtype):
        return np.array(draw(st.lists(strategy, min_size=n, max_size=n)), dtype=dtype)

    features = None
    if draw(st.booleans()):  # a subset of the table's features, in any order
        names = draw(st.lists(st.sampled_from(NAMES), min_size=0, max_size=12, unique=True))
        values = np.array(draw(st.lists(st.lists(st.one_of(FLOATS, st.just(math.nan)), min_size=len(names),
                                                 max_size=len(names)), min_size=n, max_size=n)))  # fmt: skip
        values = values.reshape(n, len(names))
        if draw(st.booleans()):
            values = np.asfortranarray(values)
        features = FeatureColumns(tuple(names), values)
    part = CandleColumns(
        timeframe=draw(TEXT),
        timestamp_in=draw(INT64),
        slots=column(st.integers(0, instruments - 1), np.int64),
        open=column(FLOATS, np.float64),
        high=column(FLOATS, np.float64),
        low=column(FLOATS, np.float64),
        close=column(FLOATS, np.float64),
        volume=column(FLOATS, np.float64),
        buy_volume=column(FLOATS, np.float64),
        sell_volume=column(FLOATS, np.float64),
        vwap=column(FLOATS, np.float64),
        trade_count=column(INT64, np.int64),
        first_trade_time=column(INT64, np.int64),
        last_trade_time=column(INT64, np.int64),
        is_empty=column(st.booleans(), np.bool_),
        has_gap=column(st.booleans(), np.bool_),
        is_partial=draw(st.booleans()),
        revision=column(INT64, np.int64),
        features=features,
    )
    start = draw(st.integers(0, n - 1))  # sometimes a slice of it (views), as ServeMode cuts parts
    part = part.rows(start, draw(st.integers(start + 1, n)))
    return part, draw(TEXT), symbols, exchange_symbols


@settings(max_examples=400, deadline=None)
@given(parts(), INT64, INT64, st.booleans())
def test_every_row_is_the_protobuf_librarys_serialisation_of_the_old_row(generated, local_us, out_us, wide):
    part, exchange, symbols, exchange_symbols = generated
    encoder, message = (WIDE, WIDE_MESSAGE) if wide else (ENCODER, MESSAGE)
    got = encoder.encode(ClosedCandles(part, exchange, symbols, exchange_symbols, Stamps(local_us, out_us)))
    rows = reference_rows(part, exchange, symbols, exchange_symbols, local_us, out_us)
    assert got == [serialised(message, row) for row in rows]


def test_a_hand_written_row_decoded_field_by_field():
    part = CandleColumns(
        timeframe="1m",
        timestamp_in=T_IN,
        slots=np.array([1]),
        open=np.array([61_600.0]),
        high=np.array([61_800.25]),
        low=np.array([61_500.0]),
        close=np.array([61_700.5]),
        volume=np.array([2.5]),
        buy_volume=np.array([1.5]),
        sell_volume=np.array([1.0]),
        vwap=np.array([61_650.0]),
        trade_count=np.array([42]),
        first_trade_time=np.array([T_IN + 1_000]),
        last_trade_time=np.array([T_IN + 59_999_000]),
        is_empty=np.array([False]),
        has_gap=np.array([True]),
        is_partial=True,
        revision=np.array([3]),
        features=FeatureColumns(("rsi_5", "sma_5"), np.array([[np.nan, 61_690.25]])),
    )
    [data] = ENCODER.encode(block_of(part, "binance", ["ETH-USDT", "BTC-USDT"], ["ETHUSDT", "BTCUSDT"]))
    row = MESSAGE.FromString(data)
    assert row.symbol == "BTC-USDT" and row.exchange == "binance" and row.exchange_symbol == "BTCUSDT"
    assert row.timeframe == "1m" and row.timestamp_in == T_IN
    assert row.local_timestamp == LOCAL and row.timestamp_out == OUT
    assert (row.open, row.high, row.low, row.close) == (61_600.0, 61_800.25, 61_500.0, 61_700.5)
    assert (row.volume, row.buy_volume, row.sell_volume, row.vwap) == (2.5, 1.5, 1.0, 61_650.0)
    assert row.trade_count == 42 and row.revision == 3
    assert row.first_trade_time == T_IN + 1_000 and row.last_trade_time == T_IN + 59_999_000
    assert row.is_empty is False and row.has_gap is True and row.is_partial is True
    assert row.HasField("is_empty")  # false is a value, not a null
    assert row.sma_5 == 61_690.25
    assert not row.HasField("rsi_5")  # NaN: null
    assert not row.HasField("ema_5")  # not carried: null
    assert [f.name for f, _ in row.ListFields()] == [c.name for c in CANDLE_COLUMNS] + ["sma_5"]
    # the head, by hand: field 1 (tag 0x0a) "BTC-USDT", field 2 (0x12) "binance", field 3 (0x1a) ...
    assert data.startswith(b"\x0a\x08BTC-USDT\x12\x07binance\x1a\x07BTCUSDT\x22\x021m\x28")


def test_rows_of_a_candle_with_features_and_of_an_empty_one():
    features = {"sma_5": 61_690.25, "rsi_5": None, "price_volatility_5": 0.0004}
    batch = CandleBatch.from_candles([_candle(features=features), _candle(empty=True)])
    (tf_full, full), (tf_empty, empty) = encoded_rows(batch)  # from_candles: one part per candle
    assert (tf_full, tf_empty) == ("1m", "1m")
    assert full == {
        "symbol": "BTC-USDT",
        "exchange": "binance",
        "exchange_symbol": "BTCUSDT",
        "timeframe": "1m",
        "timestamp_in": T_IN,
        "local_timestamp": LOCAL,
        "timestamp_out": OUT,
        "open": 61_600.0,
        "high": 61_800.25,
        "low": 61_500.0,
        "close": 61_700.5,
        "volume": 2.5,
        "buy_volume": 1.5,
        "sell_volume": 1.0,
        "vwap": 61_650.0,
        "trade_count": 42,
        "first_trade_time": T_IN + 1_000,
        "last_trade_time": T_IN + 59_999_000,
        "is_empty": False,
        "has_gap": True,
        "is_partial": False,
        "revision": 1,
        "sma_5": 61_690.25,
        "price_volatility_5": 0.0004,
    }  # fmt: skip  (rsi_5: null)
    assert "vwap" not in empty and "first_trade_time" not in empty and "last_trade_time" not in empty
    assert empty["is_empty"] is True and empty["trade_count"] == 0
    [(_, no_features)] = encoded_rows(CandleBatch.from_candles([_candle("5m")]))
    assert "sma_5" not in no_features  # a timeframe without features: its columns stay null


def test_live_rows_have_null_features_until_the_window_is_full():
    # one trade a second after each 15 s bucket starts; closes 100, 101, 103, 102, 104, 105
    closes = [100.0, 101.0, 103.0, 102.0, 104.0, 105.0]
    handler = TickHandler(CandleSettings(timeframes=("15s", "1m"), grace_ms=0, hft_timeframes=("15s",)))
    trades = [(0, T0 + k * 15 * S + S, close, 1.0, "buy") for k, close in enumerate(closes)]
    batches = handler.handle_bytes(trade_frame(trades)).batches + handler.finish()
    rows = [r for b in batches for tf, r in encoded_rows(b) if tf == "15s"]
    assert [r["timestamp_in"] for r in rows] == [T0 + k * 15 * S for k in range(6)]
    assert [r["close"] for r in rows] == closes
    assert not any("sma_5" in r or "ema_5" in r for r in rows[:4])
    assert rows[4]["sma_5"] == pytest.approx((100 + 101 + 103 + 102 + 104) / 5)  # 102.0
    assert rows[4]["ema_5"] == pytest.approx(102.0)  # the first EMA is the SMA
    assert rows[5]["sma_5"] == pytest.approx((101 + 103 + 102 + 104 + 105) / 5)  # 103.0
    assert rows[5]["ema_5"] == pytest.approx((105 - 102) * 2 / 6 + 102)  # 103.0
    assert not any("rsi_5" in r for r in rows[:5])  # 5 changes need 6 candles
    # changes +1 +2 -1 +2 +1: average gain 6/5, average loss 1/5 -> 100 * 1.2 / 1.4
    assert rows[5]["rsi_5"] == pytest.approx(600 / 7)
    assert "sma_10" not in rows[5] and "price_volatility_20" not in rows[5]
    assert rows[1]["log_return"] == pytest.approx(math.log(101 / 100))
    assert all(r["vwap"] == r["close"] for r in rows)  # one trade each
    minute = [r for b in batches for tf, r in encoded_rows(b) if tf == "1m"]
    assert minute and all("sma_5" not in r for r in minute)  # 1m is not an hft timeframe here


def test_instrument_names_follow_the_batchs_lists():
    """The encoded names are kept per exchange for the engine's lists (which only grow); a batch made
    elsewhere, with lists of its own, gets its own names for the same slot."""
    encoder = RowEncoder(CANDLE_COLUMNS + FEATURES)
    eth = CandleBatch.from_candles([_candle()])
    part = eth.parts[0]
    symbols, natives = ["BTC-USDT"], ["BTCUSDT"]
    assert decoded(encoder.encode(block_of(part, "binance", symbols, natives))[0])["symbol"] == "BTC-USDT"
    symbols.append("ÉTH-USDT")
    natives.append("ETHUSDT")  # the engine's lists grew: slot 1 is new
    moved = CandleColumns(
        **{**{f: getattr(part, f) for f in part.__dataclass_fields__}, "slots": np.array([1])}
    )
    row = decoded(encoder.encode(block_of(moved, "binance", symbols, natives))[0])
    assert (row["symbol"], row["exchange_symbol"]) == ("ÉTH-USDT", "ETHUSDT")
    other = decoded(encoder.encode(block_of(part, "binance", ["SOL-USDT"], ["SOLUSDT"]))[0])
    assert other["symbol"] == "SOL-USDT"  # other lists, slot 0: not the cached BTC-USDT
    assert decoded(encoder.encode(block_of(part, "okx", ["SOL-USDT"], ["SOLUSDT"]))[0])["exchange"] == "okx"


def test_a_feature_without_a_column_and_a_table_that_is_not_a_candle_table_are_refused():
    part = CandleBatch.from_candles([_candle(features={"sma_5": 1.0, "no_such_feature": 2.0})]).parts[0]
    with pytest.raises(ValueError, match="no_such_feature"):
        ENCODER.encode(block_of(part, "binance", ["BTC-USDT"], ["BTCUSDT"]))
    with pytest.raises(ValueError, match="not a candle table"):
        RowEncoder((Column("symbol", "STRING"),))


def test_the_descriptor_has_a_field_per_column_in_table_order():
    spec = candle_tables(BigQueryConfig(), "replay", ("1m",))["1m"]
    descriptor = RowEncoder(spec.columns).descriptor
    assert [f.name for f in descriptor.field] == [c.name for c in spec.columns]
    assert [f.number for f in descriptor.field] == list(range(1, len(spec.columns) + 1))


async def test_persist_mode_queues_the_old_paths_bytes_for_a_boundary_of_many_instruments():
    symbols = [("binance", f"S{k}USDT") for k in range(50)]
    handler = TickHandler(CandleSettings(timeframes=("15s", "1m"), grace_ms=0, hft_timeframes=("15s", "1m")))
    trades = [(k % 50, T0 + (k // 50) * S + S, 100.0 + k % 7, 1.0, "buy") for k in range(50 * 70)]
    batches = handler.handle_bytes(trade_frame(trades, symbols=symbols)).batches + handler.finish()
    sink = MemorySink()
    mode = PersistMode(BigQueryConfig(batch_size=64), ("15s", "1m"), "replay", sink)
    await mode.start()
    for batch in batches:
        mode.add(batch, LOCAL, OUT)
    assert await mode.flush(5)
    await mode.close()
    want: dict[str, list[bytes]] = {"candles_15s": [], "candles_1m": []}
    for b in batches:
        for part in b.parts:
            rows = reference_rows(part, b.exchange, b.symbols, b.exchange_symbols, LOCAL, OUT)
            want[f"candles_{part.timeframe}"] += [serialised(MESSAGE, row) for row in rows]
    got: dict[str, list[bytes]] = {"candles_15s": [], "candles_1m": []}
    for batch in sink.batches:
        got[batch.table.name] += batch.rows
        assert batch.nbytes == sum(map(len, batch.rows)) and len(batch.rows) <= 64
    assert got == want and (len(got["candles_15s"]), len(got["candles_1m"])) == (250, 100)
    assert sum("sma_5" in decoded(r) for r in got["candles_15s"]) == 50  # each symbol's fifth 15s candle
    assert mode.stats["rows_written"] == 350 and mode.stats["batches_written"] == len(sink.batches)


def test_compile_row_writer_prepares_the_function_a_burst_calls():
    """The service compiles the writer at start; if its arguments' types drifted from encode's, numba
    would compile a second version at the first boundary anyway."""
    compile_row_writer()
    test_a_hand_written_row_decoded_field_by_field()
    test_rows_of_a_candle_with_features_and_of_an_empty_one()
    assert len(_write.signatures) == 1, _write.signatures


def test_the_repository_streaming_yaml_names_every_persist_key():
    raw = yaml.safe_load((REPO / "streaming.yaml").read_text())["persist"]["bigquery"]
    assert set(raw) | {"emulator"} == set(BigQueryConfig.__dataclass_fields__)
    assert np.isclose(raw["live_partitioning"]["ttl_days"], 30)


def test_the_command_line_checks_the_persist_flags(capsys):
    from market_data_tick_handler.main import apply_overrides, main, parse_args

    # (every mode is built now: live-instruments-sync in tests/test_instruments_sync.py)
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
