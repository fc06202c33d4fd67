"""trades (native, tardis_realtime): ``trade`` frames, checked like every type (``validate``: the common
checks of ``base.check_rows``, then :func:`trade_validity`). The frame router hands the kept rows to the
candle engines and publishes no trade records; ``records`` makes them on request, and when a sink wants
the ticks (the tick tables) the router hands it the frame's kept rows as they are, :class:`TradeRows`.
Liquidations (``liquidations.py``) are trade-like: the same columns, the same checks.

A frame whose rows are all valid, the common case, is known to be so in one compiled pass
(:func:`trades_all_valid`); only a frame with a bad row goes through the whole-column checks, which name
the reasons."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numba import njit

from ...wire import Frame, StrColumn
from .base import SIDES, TS_MAX_US, TS_MIN_US, DataTypeProcessor, RowCheck
from .records import Liquidation, Record, Trade


def trade_validity(frame: Frame) -> dict[str, np.ndarray]:
    """Bad-value masks of a trade-like frame (trade, liquidation), after the common checks of
    ``base.check_rows``: price and amount finite and positive (and so their product: a notional that
    overflows would make the candle's sums infinite), side a known code."""
    c = frame.columns
    price, amount = c["price"], c["amount"]
    with np.errstate(over="ignore", invalid="ignore"):
        return {
            "price": ~(np.isfinite(price) & (price > 0)),
            "amount": ~(np.isfinite(amount) & (amount > 0) & np.isfinite(price * amount)),
            "side": c["side"] > 2,
        }


@njit(cache=True)
def _all_valid(sym, ts, local, price, amount, side, n_symbols):  # pragma: no cover - compiled
    for i in range(len(ts)):
        p, a = price[i], amount[i]
        if (
            sym[i] >= n_symbols
            or not TS_MIN_US <= ts[i] < TS_MAX_US
            or not TS_MIN_US <= local[i] < TS_MAX_US
            or not 0.0 < p < np.inf
            or not 0.0 < a < np.inf
            or not p * a < np.inf
            or side[i] > 2
        ):
            return False
    return True


def trades_all_valid(frame: Frame) -> bool:
    """Whether every row of a trade-like frame passes ``base.check_rows`` with :func:`trade_validity`
    (the common case, in one compiled pass that stops at the first bad row)."""
    c = frame.columns
    ids = c["id"]
    return bool(
        _all_valid(
            c["sym"], c["timestamp"], c["local_timestamp"], c["price"], c["amount"], c["side"],
            len(frame.symbols),
        )
    ) and (not isinstance(ids, StrColumn) or ids.invalid() is None)  # fmt: skip


def compile_trade_check() -> None:
    """Load (or compile) :func:`trades_all_valid`'s kernel now rather than at the first trade frame,
    for columns viewing a read-only buffer (bytes) and a writable one (a ZeroMQ frame may be either)."""
    for buffer in (b"", bytearray()):
        cols = [np.frombuffer(buffer, dtype=d) for d in ("<u2", "<i8", "<i8", "<f8", "<f8", "<u1")]
        _all_valid(*cols, 1)


#: the fields of a trade-like row, in the order :meth:`TradeRows.rows` gives them (a ``Trade``'s fields)
ROW_FIELDS = ("exchange", "symbol", "exchange_symbol", "timestamp", "local_timestamp", "price", "amount",
              "side", "id")  # fmt: skip


@dataclass(frozen=True, slots=True)
class TradeRows:
    """The valid rows of one trade frame, by reference (nothing is copied until :meth:`rows` is called):
    ``kept`` their mask (None: every row), ``names`` the symbols of the frame's symbol table
    (``Instruments.of``). Read it before the next frame arrives: the columns view the frame's buffer."""

    frame: Frame
    kept: np.ndarray | None
    names: Sequence[str]

    def __len__(self) -> int:
        return self.frame.n if self.kept is None else int(np.count_nonzero(self.kept))

    def rows(self) -> Iterator[tuple[str, str, str, int, int, float, float, str, str]]:
        """Each row's values (``ROW_FIELDS``), in frame order."""
        c = self.frame.columns
        rows = np.arange(self.frame.n) if self.kept is None else np.flatnonzero(self.kept)
        table, names, ids = self.frame.symbols, self.names, c["id"]
        for i, s, t, lt, p, a, sd in zip(
            rows.tolist(),
            c["sym"][rows].tolist(),
            c["timestamp"][rows].tolist(),
            c["local_timestamp"][rows].tolist(),
            c["price"][rows].tolist(),
            c["amount"][rows].tolist(),
            c["side"][rows].tolist(),
            strict=True,
        ):
            yield table[s][0], names[s], table[s][1], t, lt, p, a, SIDES[sd], ids[i]


class TradeLikeProcessor(DataTypeProcessor):
    """Frames of trade-like rows (trade, liquidation) in, ``record`` records out."""

    record: ClassVar[type[Trade] | type[Liquidation]]

    def validity(self, frame: Frame) -> dict[str, np.ndarray]:
        return trade_validity(frame)

    def validate(self, frame: Frame) -> RowCheck:
        if trades_all_valid(frame):
            return RowCheck(np.ones(frame.n, dtype=bool))
        return super().validate(frame)

    def records(self, frame: Frame, check: RowCheck) -> list[Record]:
        cls = self.record
        rows = TradeRows(frame, check.kept, self.symbols(frame)).rows()
        return [cls(**dict(zip(ROW_FIELDS, row, strict=True))) for row in rows]


class TradeProcessor(TradeLikeProcessor):
    data_type = "trades"
    record = Trade
