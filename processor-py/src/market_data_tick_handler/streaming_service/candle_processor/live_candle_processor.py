"""Candles of one instrument on every configured timeframe.

The processor holds bucket state only; *when* a bucket closes is decided by the clock of its
:class:`~.candle_engine.CandleEngine` (the wall clock live, the exchange-time clock in a replay or a
historical batch), which calls :meth:`close_until`. The same object therefore serves live streams and
historical batches.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Literal

from .candle import Candle, CandleBuilder
from .timeframes import Timeframe, parse_timeframes

LatePolicy = Literal["drop", "revise"]
DEFAULT_TIMEFRAMES = ("15s", "1m", "5m", "15m", "4h", "24h")


class LiveCandleProcessor:
    def __init__(
        self,
        symbol: str,
        exchange: str = "binance",
        exchange_symbol: str | None = None,
        timeframes: Iterable[str] = DEFAULT_TIMEFRAMES,
        late_policy: LatePolicy = "drop",
        revise_window: int = 4,
    ) -> None:
        if late_policy not in ("drop", "revise"):
            raise ValueError(f"late_policy must be 'drop' or 'revise', not {late_policy!r}")
        self.symbol = symbol
        self.exchange = exchange
        self.exchange_symbol = exchange_symbol or symbol.replace("-", "").upper()
        self.timeframes: tuple[Timeframe, ...] = parse_timeframes(timeframes)
        self.base = self.timeframes[0]
        self.late_policy = late_policy
        self.revise_window = revise_window
        #: exchange time from which the stream was observed; buckets starting earlier are partial
        self.observed_from: int | None = None
        #: set at end of stream: buckets ending later are partial
        self.observed_until: int | None = None
        self._open: dict[int, CandleBuilder] = {}
        self._rollups: list[CandleBuilder | None] = [None] * (len(self.timeframes) - 1)
        self._cursor: int | None = None  # start of the earliest base bucket not yet closed
        self._closed_through: int | None = None  # base buckets ending at or before this are closed
        self._last_close: float | None = None
        self._gaps: list[list[int | None]] = []  # [start, end or None while open], exchange time
        self._recent: list[OrderedDict[int, tuple[CandleBuilder, bool]]] = [
            OrderedDict() for _ in self.timeframes
        ]
        self.stats = {
            "trades": 0,  # of closed base buckets, and late ones; get_stats() adds the open buckets
            "late_ticks": 0,
            "late_dropped": 0,
            "late_too_old": 0,
            "revisions": 0,
            "candles": dict.fromkeys((tf.name for tf in self.timeframes), 0),
            "empty_candles": 0,
            "gap_candles": 0,
            "gaps": 0,
        }

    # -- input ---------------------------------------------------------------------------------
    def open_builder(self, bucket_start: int) -> CandleBuilder | None:
        """The accumulator of an open base bucket (created on first use); None when the bucket is
        already closed, i.e. its trades are late (see :meth:`add_late`)."""
        builder = self._open.get(bucket_start)
        if builder is not None:  # a bucket in _open is open by definition
            return builder
        if self._closed_through is not None and bucket_start < self._closed_through:
            return None
        builder = self._open[bucket_start] = CandleBuilder(bucket_start)
        if self._cursor is None or bucket_start < self._cursor:
            self._cursor = bucket_start
        return builder

    def add_trade(self, timestamp: int, price: float, amount: float, side: str = "unknown") -> list[Candle]:
        """One trade, for callers outside the batched path (timestamps in microseconds)."""
        buy = amount if side == "buy" else 0.0
        sell = amount if side == "sell" else 0.0
        bucket = self.base.bucket_start(timestamp)
        builder = self.open_builder(bucket)
        one = (price, price, price, price, 1, timestamp, timestamp)  # OHLC, count, first/last time
        if builder is None:
            return self.add_late(bucket, *one, (amount, buy, sell, price * amount))
        v, b, s, n = builder.sums  # sequential, like the batched path
        builder.update(*one, (v + amount, b + buy, s + sell, n + price * amount))
        return []

    def open_gap(self, start: int) -> None:
        """Data may be missing from exchange time ``start`` until :meth:`close_gaps` is called."""
        self._gaps.append([start, None])
        self.stats["gaps"] += 1

    def close_gaps(self, end: int) -> None:
        for gap in self._gaps:
            if gap[1] is None:
                gap[1] = max(end, gap[0])  # type: ignore[type-var]

    # -- clock ---------------------------------------------------------------------------------
    def close_until(self, t: int) -> list[Candle]:
        """Close every base bucket that ends at or before ``t`` (a base boundary), oldest first, with
        empty candles for buckets without trades, and every longer candle that ends with them."""
        out: list[Candle] = []
        if self._closed_through is None or t > self._closed_through:
            self._closed_through = t
        if self._cursor is None:
            return out
        step = self.base.micros
        while self._cursor + step <= t:
            self._close_base(self._cursor, out)
            self._cursor += step
        if self._gaps:
            self._prune_gaps()
        return out

    def finish(self, clock: int) -> list[Candle]:
        """End of stream at exchange time ``clock``: close the bucket holding it and every longer candle
        still open; those end after ``clock`` and are marked partial."""
        self.observed_until = clock
        out = self.close_until(self.base.bucket_start(clock) + self.base.micros)
        for i, acc in enumerate(self._rollups, start=1):
            if acc is not None:
                self._emit(i, acc, out)
                self._rollups[i - 1] = None
        return out

    # -- internals -----------------------------------------------------------------------------
    def _has_gap(self, start: int, end: int) -> bool:
        return any(g0 < end and (g1 is None or g1 > start) for g0, g1 in self._gaps)  # type: ignore[operator]

    def _close_base(self, start: int, out: list[Candle]) -> None:
        builder = self._open.pop(start, None) or CandleBuilder(start)
        self.stats["trades"] += builder.trade_count
        self._emit(0, builder, out)
        end = start + self.base.micros
        for i, tf in enumerate(self.timeframes[1:], start=1):
            acc = self._rollups[i - 1]
            if acc is None:
                acc = self._rollups[i - 1] = CandleBuilder(tf.bucket_start(start))
            acc.merge_builder(builder)
            if end == acc.start + tf.micros:
                self._emit(i, acc, out)
                self._rollups[i - 1] = None

    def _prune_gaps(self) -> None:
        oldest = min((acc.start for acc in self._rollups if acc is not None), default=self._cursor or 0)
        self._gaps = [g for g in self._gaps if g[1] is None or g[1] > oldest]  # type: ignore[operator]

    def _emit(self, tf_index: int, builder: CandleBuilder, out: list[Candle]) -> None:
        tf = self.timeframes[tf_index]
        if builder.trade_count == 0 and self._last_close is None:
            return  # nothing traded yet: no previous close to carry
        end = builder.start + tf.micros
        if self._gaps and not builder.has_gap:
            builder.has_gap = self._has_gap(builder.start, end)
        partial = (self.observed_from is not None and builder.start < self.observed_from) or (
            self.observed_until is not None and end > self.observed_until
        )
        candle = builder.build(
            self.exchange, self.symbol, self.exchange_symbol, tf.name, self._last_close or 0.0, partial
        )
        if tf_index == 0 and not candle.is_empty:
            self._last_close = candle.close
        stats = self.stats
        stats["candles"][tf.name] += 1
        stats["empty_candles"] += candle.is_empty
        stats["gap_candles"] += candle.has_gap
        if self.late_policy == "revise":
            recent = self._recent[tf_index]
            recent[builder.start] = (builder, partial)
            while len(recent) > self.revise_window:
                recent.popitem(last=False)
        out.append(candle)

    def add_late(
        self,
        bucket_start: int,
        open_: float,
        high: float,
        low: float,
        close: float,
        count: int,
        first_ts: int,
        last_ts: int,
        sums: tuple[float, float, float, float],
    ) -> list[Candle]:
        """Trades of an already closed base bucket: counted, then dropped or used to revise every
        candle that contains them (those still open simply take them)."""
        self.stats["trades"] += count
        self.stats["late_ticks"] += count
        if self.late_policy == "drop":
            self.stats["late_dropped"] += count
            return []
        out: list[Candle] = []
        for i, tf in enumerate(self.timeframes):
            start = tf.bucket_start(bucket_start)
            acc = self._rollups[i - 1] if i else None
            entry = None
            if acc is None or acc.start != start:
                entry = self._recent[i].get(start)
                if entry is None:
                    self.stats["late_too_old"] += count
                    continue
                acc = entry[0]
            acc.merge_prices(open_, high, low, close, count, first_ts, last_ts)
            acc.add_sums(*sums)
            if entry is not None:  # it had been published: publish the revision
                acc.revision += 1
                self.stats["revisions"] += 1
                out.append(
                    acc.build(
                        self.exchange,
                        self.symbol,
                        self.exchange_symbol,
                        tf.name,
                        self._last_close or 0.0,
                        entry[1],
                    )
                )
        return out

    def get_stats(self) -> dict:
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timeframes": [tf.name for tf in self.timeframes],
            "open_buckets": len(self._open),
            **self.stats,
            "trades": self.stats["trades"] + sum(b.trade_count for b in self._open.values()),
            "candles": dict(self.stats["candles"]),
        }
