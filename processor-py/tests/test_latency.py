"""The processor's latency record: fixed memory, the percentiles of the recent window equal to those of
every trade repeated, the counts exact over the whole run."""

from __future__ import annotations

import numpy as np

from market_data_tick_handler.streaming_service.latency import Latencies, _pct


def _record(lat: Latencies, rows: np.ndarray) -> None:
    for handled, done, trades, candles in rows.tolist():
        lat.record(handled, done, trades, candles)


def _rows(rng: np.random.Generator, n: int) -> np.ndarray:
    handled = rng.integers(0, 10_000, n)
    return np.column_stack(
        [
            handled,
            handled + rng.integers(0, 5_000, n),
            rng.integers(0, 40, n) * (rng.random(n) < 0.9),  # some frames carry no trade
            rng.choice([0, 0, 0, 3, 100, 200], n),
        ]
    )


def test_summary_is_that_of_every_trade_when_the_run_fits_the_window() -> None:
    rows = _rows(np.random.default_rng(1), 5_000)
    lat = Latencies(window=10_000)
    _record(lat, rows)
    handled, done, trades, candles = rows.T
    per_trade = np.repeat(done, trades)
    s = lat.summary()
    assert (s["trade_p50"], s["trade_p99"]) == (_pct(per_trade, 50), _pct(per_trade, 99))
    assert (s["frame_p50"], s["frame_p99"]) == (_pct(handled, 50), _pct(handled, 99))
    assert (s["trade_samples"], s["frame_samples"], s["window_frames"]) == (int(trades.sum()), 5_000, 5_000)
    assert set(s["bursts"]) == {3, 100, 200}
    for size, burst in s["bursts"].items():
        mine = done[candles == size]
        assert burst == {
            "p50": _pct(mine, 50),
            "p99": _pct(mine, 99),
            "max": int(mine.max()),
            "samples": len(mine),
        }


def test_a_long_run_keeps_the_last_window_and_exact_counts() -> None:
    rows = _rows(np.random.default_rng(2), 7_000)
    lat = Latencies(window=1_000)
    arrays = [lat._handled, lat._done, lat._trades, lat._candles]
    _record(lat, rows)
    assert all(
        a is b for a, b in zip(arrays, [lat._handled, lat._done, lat._trades, lat._candles], strict=True)
    )
    _, done, trades, candles = rows.T
    recent = rows[-1_000:]
    s = lat.summary()
    assert s["trade_p99"] == _pct(np.repeat(recent[:, 1], recent[:, 2]), 99)
    assert s["frame_p50"] == _pct(recent[:, 0], 50)
    assert (s["trade_samples"], s["frame_samples"], s["window_frames"]) == (int(trades.sum()), 7_000, 1_000)
    assert s["bursts"][200]["samples"] == int((candles == 200).sum())
    assert s["bursts"][200]["max"] == int(done[candles == 200].max())


def test_a_burst_size_seen_only_before_the_window_keeps_its_count() -> None:
    lat = Latencies(window=4)
    lat.record(10, 50, 5, 7)
    for _ in range(4):
        lat.record(1, 2, 3, 0)
    assert lat.summary()["bursts"] == {7: {"p50": None, "p99": None, "max": 50, "samples": 1}}


def test_empty() -> None:
    assert Latencies().summary() == {}
    lat = Latencies()
    lat.record(5, 6, 0, 0)  # a frame of records only: no trade to count
    s = lat.summary()
    assert (s["trade_p50"], s["trade_samples"], s["frame_p50"]) == (None, 0, 5.0)
