"""``FeatureStage``: the HFT features of the candles the frame router's engines close, for every exchange
of the process, with the context they read. The one object the router calls:

- ``attach(exchange, engine)`` when it makes an exchange's candle engine: the exchange's ``LiveFeatures``
  (a lane per instrument slot and hft timeframe) and, when context groups are in use, its
  ``FeatureContext`` (``context.py``);
- ``on_book``, ``on_derivative``, ``on_liquidations`` with the valid rows of those frames, as columns, by
  the engine's instrument slots: the context of the exchange's next candles;
- ``annotate(exchange, batch)`` with every batch the engine closes, before anything is published: the
  features onto its parts on the hft timeframes, then the liquidations no open candle can contain are
  forgotten;
- ``warm_up(candles)`` at start (``warmup.py``). Candles of an exchange whose engine is not made yet are
  checked at once and run through its lanes when it is attached (before its first candle closes), so a
  warm-up needs no engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..candle_processor import CandleBatch, CandleEngine, Timeframe
from .catalogue import OPTIONAL_GROUPS, Group
from .context import FeatureContext
from .inputs import CandleInputs
from .live_features import LiveFeatures
from .warmup import WarmupSeries, warmup_columns, warmup_series


class FeatureStage:
    def __init__(self, timeframes: tuple[str, ...], groups: tuple[str, ...]) -> None:
        """``timeframes``: the hft timeframes (none: no features); ``groups``: the context groups in use
        (``OPTIONAL_GROUPS``: book, derivative, liquidations)."""
        self.timeframes = tuple(timeframes)
        self._micros = [Timeframe.parse(tf).micros for tf in self.timeframes]
        self._groups: tuple[Group, ...] = ()
        self.groups = groups
        self.live: dict[str, LiveFeatures] = {}  # by exchange
        self.contexts: dict[str, FeatureContext] = {}  # by exchange, when groups are in use
        self._held: dict[str, list[tuple[str, str, CandleInputs]]] = {}  # exchange -> warm-up to run
        self._held_last: dict[tuple[str, str, str], int] = {}  # (exchange, symbol, tf) -> last held start

    @property
    def groups(self) -> tuple[Group, ...]:
        return self._groups

    @groups.setter
    def groups(self, groups: Iterable[str]) -> None:
        """The groups of the exchanges attached from now on (one attached keeps its own: its features'
        state is not remade)."""
        self._groups = _checked(groups)

    @property
    def longest_us(self) -> int:
        """The longest hft timeframe, in µs (0 without any)."""
        return max(self._micros, default=0)

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """By exchange: candles, resets, out_of_order (``FeatureEngine.stats``), and liquidations_dropped
        when the context has had to drop any."""
        out = {}
        for exchange, live in self.live.items():
            out[exchange] = dict(live.features.stats)
            context = self.contexts.get(exchange)
            if context is not None and context.liquidations_dropped:
                out[exchange]["liquidations_dropped"] = context.liquidations_dropped
        return out

    def attach(self, exchange: str, engine: CandleEngine, groups: Iterable[str] | None = None) -> None:
        """The router made ``exchange``'s engine: its features (and context), and the warm-up held for it;
        ``groups``: the exchange's own context groups (default: :attr:`groups`)."""
        if engine.exchange != exchange:
            raise ValueError(f"features: the engine of {engine.exchange} attached as {exchange}")
        attached = self.live.get(exchange)
        if attached is not None:
            if attached.engine is not engine:
                raise ValueError(f"features: {exchange} has an engine already")
            return
        if not self.timeframes:
            return
        groups = self._groups if groups is None else _checked(groups)
        live = self.live[exchange] = LiveFeatures(engine, self.timeframes, groups=groups)
        if groups:
            self.contexts[exchange] = FeatureContext()
        for exchange_symbol, timeframe, x in self._held.pop(exchange, []):
            live.run(live.lane(exchange_symbol, timeframe), timeframe, x)
        for key in [k for k in self._held_last if k[0] == exchange]:
            del self._held_last[key]

    # -- context ---------------------------------------------------------------------------------
    def _context(self, exchange: str, group: Group) -> FeatureContext | None:
        context = self.contexts.get(exchange)
        if context is None or group not in self.live[exchange].features.groups:
            return None
        return context

    def on_book(
        self, exchange: str, slots: np.ndarray, ts: np.ndarray, bid_price: np.ndarray,
        bid_amount: np.ndarray, ask_price: np.ndarray, ask_amount: np.ndarray,
    ) -> None:  # fmt: skip
        """Book snapshots of the exchange's instrument ``slots`` at ``ts``; levels shaped (rows, depth),
        best first, NaN-padded."""
        context = self._context(exchange, "book")
        if context is not None:
            context.on_book(slots, ts, bid_price, bid_amount, ask_price, ask_amount)

    def on_derivative(
        self, exchange: str, slots: np.ndarray, ts: np.ndarray, funding_rate: np.ndarray,
        open_interest: np.ndarray, mark_price: np.ndarray, index_price: np.ndarray,
    ) -> None:  # fmt: skip
        context = self._context(exchange, "derivative")
        if context is not None:
            context.on_derivative(slots, ts, funding_rate, open_interest, mark_price, index_price)

    def on_liquidations(
        self, exchange: str, slots: np.ndarray, ts: np.ndarray, side: np.ndarray, amount: np.ndarray
    ) -> None:
        """``side``: the wire's side codes (1 buy, 2 sell)."""
        context = self._context(exchange, "liquidations")
        if context is not None:
            context.on_liquidations(slots, ts, side, amount)

    # -- candles ---------------------------------------------------------------------------------
    def annotate(self, exchange: str, batch: CandleBatch) -> None:
        """The features of the candles of ``batch`` (closed by ``exchange``'s engine) onto it, in place;
        then the context's liquidations older than any open candle are forgotten."""
        live = self.live.get(exchange)
        if live is None or not batch:
            return
        context = self.contexts.get(exchange)
        live.annotate(batch, context)
        closed = live.engine.closed_through
        if context is not None and closed is not None:
            context.prune(closed - live.longest_us)

    def warm_up(self, candles: Any) -> int:
        """Recent candles through the lanes, so that the first live candle of each series has full
        windows: columns or candles (``warmup.py``; a candle without ``exchange`` is binance's). Candles
        of other timeframes, and candles not after their series' last, are skipped. Returns the candles
        used; raises a ValueError for candles the features cannot take (nothing of that call is held)."""
        series = warmup_series(warmup_columns(candles), self.timeframes)
        waiting = [s for s in series if s.exchange not in self.live]
        held = [(s, s.after(self._held_last.get(self._key(s)))) for s in waiting]
        used = sum(self.live[s.exchange].load(s) for s in series if s.exchange in self.live)
        for s, x in held:
            if len(x):
                self._held.setdefault(s.exchange, []).append((s.exchange_symbol, s.timeframe, x))
                self._held_last[self._key(s)] = int(x.timestamp_in[-1])
            used += len(x)
        return used

    @staticmethod
    def _key(series: WarmupSeries) -> tuple[str, str, str]:
        return series.exchange, series.exchange_symbol, series.timeframe


def _checked(groups: Iterable[str]) -> tuple[Group, ...]:
    """``groups`` without repeats, each a known context group."""
    groups = tuple(dict.fromkeys(groups))
    unknown = [g for g in groups if g not in OPTIONAL_GROUPS]
    if unknown:
        raise ValueError(f"unknown feature group(s) {unknown}; known: {', '.join(OPTIONAL_GROUPS)}")
    return groups  # type: ignore[return-value]
