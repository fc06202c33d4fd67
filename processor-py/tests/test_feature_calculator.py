"""HFTFeatureCalculator.compute_batch refuses candles off the timeframe's grid or out of order, naming the
first bad row, instead of computing (nulls) from them."""

import asyncio

import pytest

from market_data_tick_handler.streaming_service import HFTFeatureCalculator

M = 60_000_000  # 1m in microseconds


def batch(calc: HFTFeatureCalculator, timestamps: list, timeframe: str = "1m") -> list:
    frame = {"timestamp_in": timestamps, "close": [100.0 + i for i in range(len(timestamps))]}
    return asyncio.run(calc.compute_batch(frame, timeframe=timeframe))


def test_a_timestamp_off_the_grid_is_refused_with_its_row_and_time():
    calc = HFTFeatureCalculator("BTC-USDT")
    with pytest.raises(ValueError) as info:
        batch(calc, [0, M, M + 30_000_000, 3 * M])
    assert str(info.value) == (
        "candle row 2: timestamp_in 1970-01-01T00:01:30.000000Z (90000000 us) is not on the 1m grid"
        " (a multiple of 1m from the epoch, e.g. 1970-01-01T00:01:00.000000Z or 1970-01-01T00:02:00.000000Z);"
        " timestamp_in is the start of the candle's bucket"
    )


def test_a_timestamp_not_after_the_one_before_is_refused_with_its_row_and_time():
    calc = HFTFeatureCalculator("BTC-USDT")
    with pytest.raises(ValueError) as info:
        batch(calc, [0, 2 * M, M])
    assert str(info.value) == (
        "candle row 2: timestamp_in is not after row 1's (1970-01-01T00:01:00.000000Z = 60000000 us; row 1:"
        " 1970-01-01T00:02:00.000000Z); sort the candles by time"
    )
    with pytest.raises(ValueError, match=r"candle row 1: timestamp_in is not after row 0's"):
        batch(calc, [M, M])


def test_the_first_bad_row_is_named_whichever_its_fault():
    calc = HFTFeatureCalculator("BTC-USDT")
    with pytest.raises(ValueError, match=r"^candle row 1: timestamp_in .* is not on the 1m grid"):
        batch(calc, [0, 1, 0])  # row 1 off the grid comes before row 2 out of order
    with pytest.raises(ValueError, match=r"^candle row 1: timestamp_in is not after row 0's"):
        batch(calc, [M, 0, 1])


def test_grid_of_other_timeframes_and_datetime_timestamps():
    calc = HFTFeatureCalculator("BTC-USDT")
    on_grid = ["2024-08-09T00:00:00Z", "2024-08-09T04:00:00Z", "2024-08-09T12:00:00Z"]  # a gap is fine
    assert [r.timestamp_in for r in batch(calc, on_grid, "4h")][1] == 1_723_176_000_000_000
    with pytest.raises(
        ValueError, match=r"candle row 0: timestamp_in 2024-08-09T16:00:15.000000Z .* 4h grid"
    ):
        batch(calc, ["2024-08-09T16:00:15Z"], "4h")
    with pytest.raises(ValueError, match="not on the 15s grid"):
        batch(HFTFeatureCalculator("BTC-USDT"), [0, 15_000_000, 20_000_000], "15s")


def test_a_refused_batch_leaves_the_series_as_it_was():
    calc, fresh = HFTFeatureCalculator("BTC-USDT"), HFTFeatureCalculator("BTC-USDT")
    with pytest.raises(ValueError):
        batch(calc, [0, M, M + 1])
    assert batch(calc, [k * M for k in range(8)]) == batch(fresh, [k * M for k in range(8)])
