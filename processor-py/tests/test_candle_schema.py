"""The candle schema (candle_processor/schema.py) is the one list of the candle's fields: every form of a
closed candle follows it, and both compiled writers give, for a part with every kind of null, the bytes of
their references (orjson of the message dict, the protobuf library's serialisation of the row), built
here from the schema's own rules."""

import math
from datetime import datetime, timedelta

import numpy as np
import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from market_data_tick_handler.streaming_service.bigquery_client import CANDLE_COLUMNS, Column
from market_data_tick_handler.streaming_service.bigquery_client.proto_rows import RowEncoder
from market_data_tick_handler.streaming_service.bigquery_client.recent_candles import (
    CANDLE_FIELDS as WARM_UP_COLUMNS,
)
from market_data_tick_handler.streaming_service.candle_json import encode_part
from market_data_tick_handler.streaming_service.candle_processor import (
    Candle,
    CandleBatch,
    CandleColumns,
    ClosedCandles,
    FeatureColumns,
    Stamps,
    candles_to_frame,
)
from market_data_tick_handler.streaming_service.candle_processor.schema import (
    BOOL,
    CANDLE_FIELDS,
    FEATURE_INPUTS,
    FIELD_NAMES,
    FLOAT,
    INT,
    KEY_COLUMNS,
    TIME,
    WARM_UP,
)
from market_data_tick_handler.streaming_service.hft_features.inputs import (
    CandleInputs,
    candle_fields,
    inputs_from_columns,
)

T_IN = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z
LOCAL, OUT = T_IN + 60_000_250, T_IN + 60_001_000
EPOCH = datetime(1970, 1, 1)


def iso(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_the_schema_is_the_candle_tables_and_consumers_know():
    """The order and the rules existing tables, messages and their readers rely on, written out."""
    assert FIELD_NAMES == (
        "open", "high", "low", "close", "volume", "buy_volume", "sell_volume", "vwap", "trade_count",
        "first_trade_time", "last_trade_time", "is_empty", "has_gap", "is_partial", "revision",
    )  # fmt: skip
    assert [f.name for f in CANDLE_FIELDS if f.null_when_empty] == [
        "vwap",
        "first_trade_time",
        "last_trade_time",
    ]
    assert [f.name for f in CANDLE_FIELDS if f.per_part] == ["is_partial"]
    kinds = {f.name: f.kind for f in CANDLE_FIELDS}
    assert [n for n, k in kinds.items() if k is FLOAT] == list(FIELD_NAMES[:8])
    assert [n for n, k in kinds.items() if k is INT] == ["trade_count", "revision"]
    assert [n for n, k in kinds.items() if k is TIME] == ["first_trade_time", "last_trade_time"]
    assert [n for n, k in kinds.items() if k is BOOL] == ["is_empty", "has_gap", "is_partial"]
    assert FEATURE_INPUTS == (
        "high",
        "low",
        "close",
        "volume",
        "buy_volume",
        "sell_volume",
        "vwap",
        "trade_count",
    )
    assert ("open", *FEATURE_INPUTS) == WARM_UP


def test_candle_and_candle_columns_follow_the_schema():
    names = ("exchange", "symbol", "exchange_symbol", "timeframe", "timestamp_in")
    assert tuple(Candle.__dataclass_fields__) == (*names, *FIELD_NAMES, "hft_features")
    for f in CANDLE_FIELDS:
        want = f.kind.python | None if f.null_when_empty else f.kind.python
        assert Candle.__dataclass_fields__[f.name].type == want, f.name
    assert tuple(CandleColumns.__dataclass_fields__) == (
        "timeframe",
        "timestamp_in",
        "slots",
        *FIELD_NAMES,
        "features",
    )
    for f in CANDLE_FIELDS:
        want = f.kind.python if f.per_part else np.ndarray
        assert CandleColumns.__dataclass_fields__[f.name].type == want, f.name


def test_table_columns_follow_the_schema():
    assert tuple((c.name, c.type) for c in CANDLE_COLUMNS[: len(KEY_COLUMNS)]) == KEY_COLUMNS
    assert [c.name for c in CANDLE_COLUMNS] == [
        "symbol", "exchange", "exchange_symbol", "timeframe", "timestamp_in", "local_timestamp",
        "timestamp_out", *FIELD_NAMES,
    ]  # fmt: skip
    types = {FLOAT: "FLOAT64", INT: "INT64", TIME: "TIMESTAMP", BOOL: "BOOL"}
    assert CANDLE_COLUMNS[len(KEY_COLUMNS) :] == tuple(
        Column(f.name, types[f.kind], required=not f.null_when_empty) for f in CANDLE_FIELDS
    )


def test_the_warm_up_and_the_feature_inputs_follow_the_schema():
    assert ("exchange", "exchange_symbol", "timeframe", "timestamp_in", *WARM_UP) == WARM_UP_COLUMNS
    assert tuple(CandleInputs.__dataclass_fields__) == ("timestamp_in", *FEATURE_INPUTS, "context")
    part = _part()
    x = inputs_from_columns(part)
    assert len(x) == 3 and x.timestamp_in.tolist() == [T_IN] * 3
    for name in FEATURE_INPUTS:
        assert np.array_equal(getattr(x, name), getattr(part, name), equal_nan=True), name
    fields = candle_fields(CandleBatch.from_candles([_candle()])[0])
    assert set(FEATURE_INPUTS) <= set(fields)


def test_candles_and_from_candles_are_each_others_inverse():
    candles = [_candle(), _candle(empty=True, features={"sma_5": None, "rsi_5": 50.0})]
    batch = CandleBatch.from_candles(candles)
    assert list(batch) == candles
    assert list(CandleBatch.from_candles(list(batch))) == candles
    frame = candles_to_frame(candles)
    assert list(frame.columns) == [*Candle.__dataclass_fields__]
    assert str(frame["first_trade_time"][0]) == "2024-08-09 00:00:00.001000+00:00"


def _candle(empty: bool = False, features=None) -> Candle:
    values = {f.name: f.kind.python(1) for f in CANDLE_FIELDS}
    values["first_trade_time"], values["last_trade_time"] = T_IN + 1_000, T_IN + 59_000_000
    values["is_empty"] = empty
    if empty:
        values |= {f.name: None for f in CANDLE_FIELDS if f.null_when_empty}
    return Candle("binance", "BTC-USDT", "BTCUSDT", "1m", T_IN, **values, hft_features=features)


def _part() -> CandleColumns:
    """Three candles with every kind of null: 0 has trades, a NaN open (a float that is not nullable) and
    negative integers; 1 is empty, with values in its nullable columns that must not show; 2 has trades
    but a NaN vwap. Features: one NaN per row."""
    columns = {}
    for f in CANDLE_FIELDS:
        if f.per_part:
            columns[f.name] = True
        elif f.kind is FLOAT:
            columns[f.name] = np.array([61_700.25, 61_701.5, 61_702.75]) + len(columns)
        elif f.kind is BOOL:
            columns[f.name] = np.array([False, True, False])
        else:
            columns[f.name] = np.array([-3 - len(columns), 7, 2**40 + len(columns)], dtype=np.int64)
    columns["open"][0] = columns["vwap"][2] = math.nan
    columns["is_empty"] = np.array([False, True, False])
    columns["first_trade_time"] = np.array([T_IN + 1, T_IN + 2, T_IN + 3])
    columns["last_trade_time"] = np.array([T_IN + 59_999_999, T_IN + 5, T_IN + 6])
    features = FeatureColumns(
        ("sma_5", "rsi_5"), np.array([[1.5, math.nan], [math.nan, 2.5], [math.nan, 0.0]])
    )
    return CandleColumns("1m", T_IN, np.array([2, 0, 1]), **columns, features=features)


SYMBOLS, NATIVES = ["BTC-USDT", "ETH-USDT", "SOL-USDT"], ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def _value(f, part: CandleColumns, k: int):
    """Candle ``k``'s value of ``f`` by the schema's rules, None for null."""
    if f.per_part:
        return getattr(part, f.name)
    if f.null_when_empty and part.is_empty[k]:
        return None
    return getattr(part, f.name)[k].item()


def test_the_json_writer_equals_orjson_of_the_message_for_every_kind_of_null():
    part = _part()
    got = encode_part(ClosedCandles(part, "binance", SYMBOLS, NATIVES, Stamps(LOCAL, OUT)))
    expected = []
    for k, slot in enumerate(part.slots.tolist()):
        candle = {}
        for f in CANDLE_FIELDS:
            value = _value(f, part, k)
            if value is not None and f.kind is TIME:
                value = iso(value)
            candle[f.name] = None if isinstance(value, float) and math.isnan(value) else value
        features = dict(zip(part.features.names, part.features.values[k].tolist(), strict=True))
        message = {
            "type": "candle", "exchange": "binance", "symbol": SYMBOLS[slot],
            "exchange_symbol": NATIVES[slot], "timeframe": "1m", "timestamp_in": iso(T_IN),
            "local_timestamp": iso(LOCAL), "timestamp_out": iso(OUT), "candle": candle,
            "hft_features": {n: None if math.isnan(v) else v for n, v in features.items()},
        }  # fmt: skip
        expected.append(orjson.dumps(message))
    assert got == expected
    [first, empty, _] = (orjson.loads(m) for m in got)
    assert list(first["candle"]) == list(FIELD_NAMES)
    assert first["candle"]["open"] is None and first["candle"]["trade_count"] < 0
    assert [k for k, v in empty["candle"].items() if v is None] == [
        "vwap",
        "first_trade_time",
        "last_trade_time",
    ]


def test_the_row_writer_equals_the_protobuf_librarys_row_for_every_kind_of_null():
    part = _part()
    encoder = RowEncoder(
        (*CANDLE_COLUMNS, Column("rsi_5", "FLOAT64", False), Column("sma_5", "FLOAT64", False))
    )
    got = encoder.encode(ClosedCandles(part, "binance", SYMBOLS, NATIVES, Stamps(LOCAL, OUT)))
    file = descriptor_pb2.FileDescriptorProto(name="row.proto", package="mdth", syntax="proto2")
    file.message_type.add().CopyFrom(encoder.descriptor)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    message = message_factory.GetMessageClass(pool.FindMessageTypeByName("mdth.Row"))
    expected = []
    for k, slot in enumerate(part.slots.tolist()):
        row = {
            "symbol": SYMBOLS[slot], "exchange": "binance", "exchange_symbol": NATIVES[slot],
            "timeframe": "1m", "timestamp_in": T_IN, "local_timestamp": LOCAL, "timestamp_out": OUT,
        }  # fmt: skip
        row |= {f.name: _value(f, part, k) for f in CANDLE_FIELDS}
        row |= dict(zip(part.features.names, part.features.values[k].tolist(), strict=True))
        kept = {
            n: v for n, v in row.items() if v is not None and not (n in ("sma_5", "rsi_5") and math.isnan(v))
        }
        expected.append(message(**kept).SerializeToString())
    assert got == expected
    first, empty = message.FromString(got[0]), message.FromString(got[1])
    assert math.isnan(first.open) and first.HasField("open")  # a NaN that is not a null is kept
    assert not empty.HasField("vwap") and not empty.HasField("first_trade_time") and empty.is_partial
