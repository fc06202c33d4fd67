"""The compiled candle JSON writer against the message format, built here from the columns by hand."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from market_data_tick_handler.streaming_service.candle_json import _write, compile_writer, encode_part
from market_data_tick_handler.streaming_service.candle_processor import CandleColumns, ClosedCandles, Stamps
from market_data_tick_handler.streaming_service.candle_processor.feature_columns import FeatureColumns

EPOCH = datetime(1970, 1, 1)
MAX_US = 4_102_444_800_000_000  # 2100-01-01


def iso(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expected(part: CandleColumns, exchange, symbols, exchange_symbols, local_us, out_us) -> list[bytes]:
    """The message of each candle as the docs define it (messages.py), encoded by orjson."""
    out = []
    for k in range(len(part)):
        slot, empty = int(part.slots[k]), bool(part.is_empty[k])
        vwap = float(part.vwap[k])
        candle = {
            "open": float(part.open[k]),
            "high": float(part.high[k]),
            "low": float(part.low[k]),
            "close": float(part.close[k]),
            "volume": float(part.volume[k]),
            "buy_volume": float(part.buy_volume[k]),
            "sell_volume": float(part.sell_volume[k]),
            "vwap": None if empty or math.isnan(vwap) else vwap,
            "trade_count": int(part.trade_count[k]),
            "first_trade_time": None if empty else iso(int(part.first_trade_time[k])),
            "last_trade_time": None if empty else iso(int(part.last_trade_time[k])),
            "is_empty": empty,
            "has_gap": bool(part.has_gap[k]),
            "is_partial": part.is_partial,
            "revision": int(part.revision[k]),
        }
        message = {
            "type": "candle",
            "exchange": exchange,
            "symbol": symbols[slot],
            "exchange_symbol": exchange_symbols[slot],
            "timeframe": part.timeframe,
            "timestamp_in": iso(part.timestamp_in),
            "local_timestamp": iso(local_us),
            "timestamp_out": iso(out_us),
            "candle": candle,
        }
        if part.features is not None:
            row = part.features.values[k].tolist()
            message["hft_features"] = {
                n: None if math.isnan(v) else v for n, v in zip(part.features.names, row, strict=True)
            }
        out.append(orjson.dumps(message))
    return out


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
maybe_nan = st.one_of(finite, st.just(math.nan))
times = st.integers(0, MAX_US)


@st.composite
def parts(draw) -> tuple[CandleColumns, list[str], list[str]]:
    n = draw(st.integers(1, 12))
    symbols = draw(st.lists(st.text(min_size=1, max_size=12), min_size=n, max_size=n, unique=True))
    exchange_symbols = [s.lower().replace("-", "") + "x" for s in symbols]

    def column(strategy, dtype):
        return np.array(draw(st.lists(strategy, min_size=n, max_size=n)), dtype=dtype)

    features = None
    if draw(st.booleans()):
        names = draw(st.lists(st.text(min_size=1, max_size=12), min_size=1,
                              max_size=25, unique=True))  # fmt: skip
        values = np.array(
            draw(
                st.lists(
                    st.lists(maybe_nan, min_size=len(names), max_size=len(names)), min_size=n, max_size=n
                )
            )
        )
        features = FeatureColumns(tuple(names), values.reshape(n, len(names)))
    part = CandleColumns(
        timeframe=draw(st.sampled_from(["15s", "1m", "5m", "15m", "4h", "24h"])),
        timestamp_in=draw(times),
        slots=np.arange(n)[::-1].copy(),
        open=column(maybe_nan, np.float64),
        high=column(maybe_nan, np.float64),
        low=column(maybe_nan, np.float64),
        close=column(maybe_nan, np.float64),
        volume=column(finite, np.float64),
        buy_volume=column(finite, np.float64),
        sell_volume=column(finite, np.float64),
        vwap=column(maybe_nan, np.float64),
        trade_count=column(st.integers(0, 2**62), np.int64),
        first_trade_time=column(times, np.int64),
        last_trade_time=column(times, np.int64),
        is_empty=column(st.booleans(), np.bool_),
        has_gap=column(st.booleans(), np.bool_),
        is_partial=draw(st.booleans()),
        revision=column(st.integers(0, 1000), np.int64),
        features=features,
    )
    return part, symbols, exchange_symbols


@settings(max_examples=300, deadline=None)
@given(parts(), times, times)
def test_every_byte_equals_the_documented_message(generated, local_us, out_us):
    part, symbols, exchange_symbols = generated
    got = encode_part(ClosedCandles(part, "binance", symbols, exchange_symbols, Stamps(local_us, out_us)))
    assert got == expected(part, "binance", symbols, exchange_symbols, local_us, out_us)


def test_a_hand_written_candle():
    """One candle, its JSON written out by hand."""
    part = CandleColumns(
        timeframe="1m",
        timestamp_in=1_723_161_600_000_000,  # 2024-08-09T00:00:00Z
        slots=np.array([0]),
        open=np.array([61_700.5]),
        high=np.array([61_750.0]),
        low=np.array([61_690.25]),
        close=np.array([61_720.0]),
        volume=np.array([1.5]),
        buy_volume=np.array([1.0]),
        sell_volume=np.array([0.5]),
        vwap=np.array([61_710.125]),
        trade_count=np.array([3]),
        first_trade_time=np.array([1_723_161_600_000_001]),
        last_trade_time=np.array([1_723_161_659_999_999]),
        is_empty=np.array([False]),
        has_gap=np.array([True]),
        is_partial=False,
        revision=np.array([0]),
        features=FeatureColumns(("sma_5", "rsi_5"), np.array([[61_700.0, np.nan]])),
    )
    stamps = Stamps(1_723_161_660_000_250, 1_723_161_660_001_000)
    [payload] = encode_part(ClosedCandles(part, "binance", ["BTC-USDT"], ["btcusdt"], stamps))
    assert payload == (
        b'{"type":"candle","exchange":"binance","symbol":"BTC-USDT","exchange_symbol":"btcusdt",'
        b'"timeframe":"1m","timestamp_in":"2024-08-09T00:00:00.000000Z",'
        b'"local_timestamp":"2024-08-09T00:01:00.000250Z","timestamp_out":"2024-08-09T00:01:00.001000Z",'
        b'"candle":{"open":61700.5,"high":61750.0,"low":61690.25,"close":61720.0,"volume":1.5,'
        b'"buy_volume":1.0,"sell_volume":0.5,"vwap":61710.125,"trade_count":3,'
        b'"first_trade_time":"2024-08-09T00:00:00.000001Z","last_trade_time":"2024-08-09T00:00:59.999999Z",'
        b'"is_empty":false,"has_gap":true,"is_partial":false,"revision":0},'
        b'"hft_features":{"sma_5":61700.0,"rsi_5":null}}'
    )


def test_compile_writer_prepares_the_function_a_burst_calls():
    """The service compiles the writer at start; if its arguments' types drifted from encode_part's, numba
    would compile a second version at the first boundary anyway."""
    compile_writer()
    test_a_hand_written_candle()
    assert len(_write.signatures) == 1, _write.signatures


def one_candle(slot: int = 0, **values) -> CandleColumns:
    """A candle of 1m, as ``test_a_hand_written_candle``'s but for ``values`` and without features."""
    columns = {
        "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 3.0, "buy_volume": 1.0,
        "sell_volume": 2.0, "vwap": 1.25, "trade_count": 3, "first_trade_time": 0, "last_trade_time": 0,
        "is_empty": False, "has_gap": False, "revision": 0,
    }  # fmt: skip
    columns.update(values)
    return CandleColumns(
        timeframe="1m",
        timestamp_in=0,
        slots=np.array([slot]),
        is_partial=False,
        features=None,
        **{name: np.array([value]) for name, value in columns.items()},
    )


def test_integers_to_their_extremes_and_times_before_1970():
    """Negative integers (the smallest int64 too, whose negation overflows) and times before the epoch."""
    part = one_candle(
        trade_count=-(2**63), revision=2**63 - 1, first_trade_time=-1, last_trade_time=-86_400_000_001
    )
    [payload] = encode_part(ClosedCandles(part, "binance", ["A"], ["a"], Stamps(0, 0)))
    assert b'"trade_count":-9223372036854775808,' in payload
    assert b'"revision":9223372036854775807}' in payload
    assert b'"first_trade_time":"1969-12-31T23:59:59.999999Z"' in payload
    assert b'"last_trade_time":"1969-12-30T23:59:59.999999Z"' in payload
    assert [payload] == expected(part, "binance", ["A"], ["a"], 0, 0)
    part = one_candle(trade_count=-7, revision=-10)
    [payload] = encode_part(ClosedCandles(part, "binance", ["A"], ["a"], Stamps(0, 0)))
    assert b'"trade_count":-7,' in payload
    assert b'"revision":-10}' in payload


def test_names_of_a_growing_list_and_of_other_lists():
    """The heads by slot are kept per exchange for the engine's lists, which only grow: a slot added to the
    same list gets its names, and other lists (same exchange, other names) get theirs."""
    symbols, exchange_symbols = ["A-USDT"], ["ausdt"]

    def head(part, symbols, exchange_symbols, exchange="binance"):
        [payload] = encode_part(ClosedCandles(part, exchange, symbols, exchange_symbols, Stamps(0, 0)))
        return payload.split(b',"timeframe"')[0]

    assert head(one_candle(0), symbols, exchange_symbols) == (
        b'{"type":"candle","exchange":"binance","symbol":"A-USDT","exchange_symbol":"ausdt"'
    )
    symbols.append("B-USDT")
    exchange_symbols.append("busdt")
    assert head(one_candle(1), symbols, exchange_symbols).endswith(
        b'"symbol":"B-USDT","exchange_symbol":"busdt"'
    )
    assert head(one_candle(0), symbols, exchange_symbols).endswith(
        b'"symbol":"A-USDT","exchange_symbol":"ausdt"'
    )
    assert head(one_candle(0), ["C-USDT"], ["cusdt"]).endswith(b'"symbol":"C-USDT","exchange_symbol":"cusdt"')
    assert head(one_candle(1), symbols, exchange_symbols).endswith(
        b'"symbol":"B-USDT","exchange_symbol":"busdt"'
    )
    assert head(one_candle(0), ["A"], ["a"], "okx").startswith(
        b'{"type":"candle","exchange":"okx","symbol":"A"'
    )
