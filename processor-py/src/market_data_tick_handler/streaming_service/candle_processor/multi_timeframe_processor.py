"""``MultiTimeframeProcessor``: candles on several timeframes, from ticks, for any number of symbols of one
exchange (the seeds' name; the engine behind :class:`~.live_candle_processor.LiveCandleProcessor`).

It is a thin public face over a :class:`~.candle_engine.CandleEngine` (which keeps every instrument as
arrays and closes them together on its clock): ticks go in one at a time as the seeds' dicts
(:meth:`process_tick`) or as arrays (:meth:`add_trades`); closed candles come out as
:class:`~.candle.Candle` records (a :class:`~.candle_batch.CandleBatch` from ``add_trades``: a sequence
of them, with columns). ``processor(symbol)`` is the :class:`LiveCandleProcessor` view of one symbol.

On the ``event`` clock (the default: replays, history) the highest exchange timestamp seen closes the
buckets; on the ``wall`` clock (live) call :meth:`advance` from a timer. Late trades are dropped or
revise their candles (``late_policy``). The candle definition is docs/ARCHITECTURE.md "Candles".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ...timeutil import parse_iso_us
from ..instrument_service import InstrumentMapper
from .candle import Candle
from .candle_batch import CandleBatch
from .candle_engine import DEFAULT_TIMEFRAMES, CandleEngine, LatePolicy
from .trade_groups import SIDE_CODES

if TYPE_CHECKING:
    from .live_candle_processor import LiveCandleProcessor

__all__ = ["MultiTimeframeProcessor"]

#: a tick's ``type`` that is a trade (the seeds write ``trades``; tardis ``trade``); absent: a trade
TRADE_TYPES = frozenset({"trade", "trades"})


def tick_time_us(value: Any) -> int:
    """A tick's time as µs since the epoch, UTC: an int (µs), an ISO 8601 string (naive = UTC) or a
    datetime."""
    if isinstance(value, bool):
        raise TypeError("a time, not a bool")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, str):
        return parse_iso_us(value)
    if isinstance(value, datetime):
        return parse_iso_us(value.isoformat())
    raise TypeError(f"timestamp {value!r}: expected µs (int), an ISO 8601 string or a datetime")


class MultiTimeframeProcessor:
    def __init__(
        self,
        exchange: str = "binance",
        timeframes: Iterable[str] = DEFAULT_TIMEFRAMES,
        late_policy: LatePolicy = "drop",
        revise_window: int = 4,
        grace_us: int = 0,
        clock: str = "event",
        symbol_of: Any = None,
    ) -> None:
        """``timeframes``: multiples of the shortest, e.g. ("15s", "1m", "5m"); ``clock``: ``event``
        or ``wall``; ``symbol_of(exchange, exchange_symbol)``: our symbol of a native id (default: the
        instrument mapper's, BTCUSDT -> BTC-USDT)."""
        self.exchange = exchange
        self.mapper = InstrumentMapper()
        self.engine = CandleEngine(
            exchange,
            timeframes=timeframes,
            clock=clock,
            grace_us=grace_us,
            late_policy=late_policy,
            revise_window=revise_window,
            symbol_of=symbol_of,
        )
        self.timeframes = self.engine.timeframe_names
        self.ignored_ticks = 0  # ticks of other data types (book, ticker, ...): no candles from them

    # -- symbols ----------------------------------------------------------------------------------
    def exchange_symbol(self, symbol: str) -> str:
        """The exchange's id of ``symbol``: the seeds' form (BTC-USDT) through the instrument mapper; a
        native id (BTCUSDT, btcusdt) upper-cased, as Tardis normalizes them."""
        native = self.mapper.to_exchange_symbol(self.exchange, symbol) if "-" in symbol else symbol
        return native.upper()

    def processor(self, symbol: str) -> LiveCandleProcessor:
        """The :class:`LiveCandleProcessor` view of one symbol (either form) on this processor's state."""
        return self.engine.processor(self.exchange_symbol(symbol))

    @property
    def symbols(self) -> list[str]:
        """Our symbols (BTC-USDT) of every instrument seen, in the order first seen."""
        return list(self.engine.symbols)

    # -- input ------------------------------------------------------------------------------------
    def process_tick(self, tick: Mapping[str, Any]) -> list[Candle]:
        """One tick as the seeds write it: ``{symbol, exchange, timestamp, price, amount, side, type}``
        (``timestamp``: exchange time, µs int or ISO 8601; ``side``: buy, sell or unknown; ``type``
        trade/trades or absent; another type is counted in ``ignored_ticks`` and makes no candle).
        Returns the candles it closed or revised. A tick of another exchange, or with a price that is
        not a positive number or an amount below 0, is a ValueError."""
        if tick.get("type", "trade") not in TRADE_TYPES:
            self.ignored_ticks += 1
            return []
        exchange = tick.get("exchange", self.exchange)
        if exchange != self.exchange:
            raise ValueError(f"a tick of {exchange!r} given to the processor of {self.exchange!r}")
        side = tick.get("side") or "unknown"
        if side not in SIDE_CODES:
            raise ValueError(f"side {side!r}: expected buy, sell or unknown")
        batch = self.add_trades(
            tick["symbol"],
            np.array([tick_time_us(tick["timestamp"])], dtype=np.int64),
            np.array([float(tick["price"])], dtype=np.float64),
            np.array([float(tick["amount"])], dtype=np.float64),
            np.array([SIDE_CODES[side]], dtype=np.uint8),
        )
        return list(batch)

    def add_trades(
        self,
        symbol: str | Sequence[str] | np.ndarray,
        timestamp: np.ndarray,
        price: np.ndarray,
        amount: np.ndarray,
        side: np.ndarray | Sequence[str],
    ) -> CandleBatch:
        """Trades in arrival order as arrays: ``symbol`` one symbol for all or one per row (either form),
        ``timestamp`` exchange time in µs, ``side`` codes (0 unknown, 1 buy, 2 sell) or names. Returns
        the candles they closed or revised, in order."""
        ts = np.asarray(timestamp, dtype=np.int64)
        px = np.asarray(price, dtype=np.float64)
        qty = np.asarray(amount, dtype=np.float64)
        sides = np.asarray(side)
        if sides.dtype.kind in "UO":
            sides = np.array([SIDE_CODES[str(s)] for s in sides], dtype=np.uint8)
        sides = sides.astype(np.uint8)
        n = len(ts)
        if not len(px) == len(qty) == len(sides) == n:
            raise ValueError("timestamp, price, amount and side must be of one length")
        bad = ~(np.isfinite(px) & (px > 0) & np.isfinite(qty) & (qty >= 0)) | (sides > 2)
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(
                f"{int(bad.sum())} invalid trade(s), the first at row {k}: price {px[k]!r}, amount"
                f" {qty[k]!r}, side {int(sides[k])} (price > 0, amount >= 0, side 0/1/2)"
            )
        if isinstance(symbol, str):
            names, index = [self.exchange_symbol(symbol)], np.zeros(n, dtype=np.intp)
        else:
            given, index = np.unique(np.asarray(symbol, dtype=object).astype(str), return_inverse=True)
            if len(index) != n:
                raise ValueError("one symbol per trade, or one symbol for all")
            names = [self.exchange_symbol(s) for s in given]
        return self.engine.on_trades(names, index, ts, px, qty, sides)

    def advance(self, now_us: int | None = None) -> list[Candle]:
        """The wall clock's timer: close what ``now_us`` (default now) has passed (event clock: nothing).
        ``next_deadline_us()`` says when next."""
        return list(self.engine.advance(now_us))

    def next_deadline_us(self) -> int | None:
        return self.engine.next_deadline_us()

    def finish(self) -> list[Candle]:
        """End of stream: every candle still open closes, marked partial."""
        return list(self.engine.finish())

    # -- stats ------------------------------------------------------------------------------------
    def get_stats(self) -> dict[str, Any]:
        """The engine's counts (trades, late, drops, candles by timeframe, the ledger) and, per symbol,
        the view's (``processor(symbol).get_stats()``)."""
        stats = self.engine.get_stats()
        stats["ignored_ticks"] = self.ignored_ticks
        stats["by_symbol"] = {
            self.engine.symbols[slot]: self.engine.slot_stats(slot)
            for slot in range(len(self.engine.symbols))
        }
        return stats
