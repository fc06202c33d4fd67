"""funding_rates (fallback, derivative_ticker_extraction): one :class:`FundingRate` whenever a symbol's
funding rate or next funding time changes, the first one of each symbol included, from its
``derivative_ticker`` frames (the ingester streams them for this even when ``derivative_ticker`` itself
is disabled). A ticker without a funding rate (NaN: a future, or a message that did not carry it)
changes nothing."""

from __future__ import annotations

import numpy as np

from ...wire import INT64_MISSING, Frame
from ..instrument_service import Instruments
from .base import DataTypeProcessor, RowCheck, optional
from .derivative_ticker import ticker_validity
from .records import FundingRate, Record


class FundingRateProcessor(DataTypeProcessor):
    data_type = "funding_rates"

    def __init__(self, instruments: Instruments | None = None) -> None:
        super().__init__(instruments)
        self.last: dict[tuple[str, str], tuple[float, int]] = {}  # (exchange, symbol) -> (rate, next time)

    def validity(self, frame: Frame) -> dict[str, np.ndarray]:
        return ticker_validity(frame)

    def records(self, frame: Frame, check: RowCheck) -> list[Record]:
        c = frame.columns
        rows = np.flatnonzero(check.kept & np.isfinite(c["funding_rate"]))
        if not len(rows):
            return []
        sym = c["sym"][rows]
        order = np.argsort(sym, kind="stable")  # each symbol's rows together, in arrival order
        rows, sym = rows[order], sym[order]
        rate, when = c["funding_rate"][rows], c["funding_timestamp"][rows]
        first = np.ones(len(rows), dtype=bool)
        first[1:] = sym[1:] != sym[:-1]
        prev_rate = np.empty_like(rate)
        prev_when = np.empty_like(when)
        prev_rate[1:], prev_when[1:] = rate[:-1], when[:-1]
        table = frame.symbols
        starts = np.flatnonzero(first)
        for i in starts.tolist():
            known = self.last.get(tuple(table[int(sym[i])]))  # type: ignore[arg-type]
            prev_rate[i], prev_when[i] = known if known is not None else (np.nan, INT64_MISSING)
        changed = (rate != prev_rate) | (when != prev_when)  # NaN != NaN: a symbol's first rate counts
        ends = np.append(starts[1:], len(rows)) - 1
        for i in ends.tolist():
            self.last[tuple(table[int(sym[i])])] = (float(rate[i]), int(when[i]))  # type: ignore[index]
        emit = rows[changed]
        emit.sort()  # back to arrival order
        names = self.symbols(frame)
        return [
            FundingRate(
                exchange=table[s][0],
                symbol=names[s],
                exchange_symbol=table[s][1],
                timestamp=t,
                local_timestamp=lt,
                funding_rate=r,
                funding_timestamp=None if ft == INT64_MISSING else ft,
                predicted_funding_rate=p,
            )
            for s, t, lt, r, ft, p in zip(
                c["sym"][emit].tolist(),
                c["timestamp"][emit].tolist(),
                c["local_timestamp"][emit].tolist(),
                c["funding_rate"][emit].tolist(),
                c["funding_timestamp"][emit].tolist(),
                optional(c["predicted_funding_rate"][emit].tolist()),
                strict=True,
            )
        ]
