"""The processor's latencies per frame, in fixed memory (issue 14: a long run must not grow).

The percentiles are over a **bounded recent window**: the last ``window`` frames (default 131,072, about
two minutes at the ~1,000 frames/s of 20k trades/s), kept in preallocated numpy ring buffers of 24 bytes a
frame (3 MB, committed at start, so the process does not grow while the ring fills). A run shorter than
the window (``make bench``) gets the percentiles of every frame, as before. The sample counts
(``trade_samples``, ``frame_samples``, each burst size's ``samples``) and each burst size's ``max`` are
over the whole run, exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

WINDOW = 131_072  # frames


class Latencies:
    """Per frame, from the ingester's receipt of its oldest tick (microseconds): ``handled`` = until the
    processor has handled it, ``done`` = until the candles it closed are published too; with the
    number of trades it carried and of candles it closed. Percentiles over the last ``window`` frames,
    counts and maxima over the whole run (see the module's docstring)."""

    def __init__(self, window: int = WINDOW) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1 frame, got {window}")
        self.window = window
        self._handled = _committed(window, np.int64)
        self._done = _committed(window, np.int64)
        self._trades = _committed(window, np.int32)
        self._candles = _committed(window, np.int32)
        self.frames = 0  # every frame recorded
        self.trades = 0  # every trade of those frames
        self._bursts: dict[int, list[int]] = {}  # candles closed -> [frames, max done]; sizes are few

    def record(self, handled: int, done: int, trades: int, candles: int) -> None:
        i = self.frames % self.window
        self._handled[i] = handled
        self._done[i] = done
        self._trades[i] = trades
        self._candles[i] = candles
        self.frames += 1
        self.trades += trades
        if candles:
            burst = self._bursts.get(candles)
            if burst is None:
                self._bursts[candles] = [1, done]
            else:
                burst[0] += 1
                if done > burst[1]:
                    burst[1] = done

    def summary(self) -> dict[str, Any]:
        """``trade_*``: every trade counts once (receipt -> its frame handled and what it closed
        published); ``frame_*``: every frame once; ``burst_*``: frames that closed candles, by how
        many they closed (``p50``/``p99`` None for a size not seen in the window). ``window_frames``:
        the frames the percentiles are over."""
        if not self.frames:
            return {}
        n = min(self.frames, self.window)
        done, handled = self._done[:n], self._handled[:n]
        trades, candles = self._trades[:n], self._candles[:n]
        out: dict[str, Any] = {
            "trade_p50": _weighted_pct(done, trades, 50),
            "trade_p99": _weighted_pct(done, trades, 99),
            "trade_samples": self.trades,
            "frame_p50": _pct(handled, 50),
            "frame_p99": _pct(handled, 99),
            "frame_samples": self.frames,
            "window_frames": n,
            "bursts": {},
        }
        for size in sorted(self._bursts):
            samples, top = self._bursts[size]
            sample = done[candles == size]
            out["bursts"][size] = {
                "p50": _pct(sample, 50),
                "p99": _pct(sample, 99),
                "max": top,
                "samples": samples,
            }
        return out


def _committed(n: int, dtype: type) -> np.ndarray:
    """A zeroed array whose pages are touched now (``np.zeros`` would map them as the ring fills)."""
    array = np.empty(n, dtype=dtype)
    array.fill(0)
    return array


def _pct(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q, method="higher")) if len(values) else None


def _weighted_pct(values: np.ndarray, weights: np.ndarray, q: float) -> float | None:
    """``_pct(np.repeat(values, weights), q)`` without building the repeated array (a frame of 1,000
    trades would otherwise be 1,000 entries)."""
    total = int(weights.sum())
    if not total:
        return None
    order = np.argsort(values, kind="stable")
    # numpy's "higher": the element at ceil((total - 1) * q/100) of the sorted repeated values
    k = int(np.ceil((total - 1) * (q / 100)))
    at = int(np.searchsorted(np.cumsum(weights[order]), k, side="right"))
    return float(values[order[at]])
