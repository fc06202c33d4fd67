"""derivative_ticker (native, tardis_realtime): ``derivative_ticker`` frames, on derivative venues only
(perpetuals and futures; the ingester leaves the type out elsewhere and says so). A field the exchange
did not send is ``None``."""

from __future__ import annotations

import numpy as np

from ...wire import Frame
from .base import DataTypeProcessor, RowCheck, bad_if_present, bad_time, optional, optional_ts
from .records import DerivativeTicker, Record

PRICES = ("last_price", "index_price", "mark_price")


def ticker_validity(frame: Frame) -> dict[str, np.ndarray]:
    c = frame.columns
    bad = {}
    for name in PRICES:
        bad[name] = bad_if_present(c[name], 0.0, strict=True)
    bad["open_interest"] = bad_if_present(c["open_interest"], 0.0)
    bad["funding_rate"] = bad_if_present(c["funding_rate"])
    bad["predicted_funding_rate"] = bad_if_present(c["predicted_funding_rate"])
    bad["funding_timestamp"] = bad_time(c["funding_timestamp"], missing_ok=True)
    return bad


class DerivativeTickerProcessor(DataTypeProcessor):
    data_type = "derivative_ticker"

    def validity(self, frame: Frame) -> dict[str, np.ndarray]:
        return ticker_validity(frame)

    def records(self, frame: Frame, check: RowCheck) -> list[Record]:
        rows = np.flatnonzero(check.kept)
        c = frame.columns
        names, table = self.symbols(frame), frame.symbols

        def col(name: str) -> list[float | None]:
            return optional(c[name][rows].tolist())

        return [
            DerivativeTicker(
                exchange=table[s][0],
                symbol=names[s],
                exchange_symbol=table[s][1],
                timestamp=t,
                local_timestamp=lt,
                last_price=last,
                open_interest=oi,
                funding_rate=fr,
                funding_timestamp=ft,
                predicted_funding_rate=pfr,
                index_price=index,
                mark_price=mark,
            )
            for s, t, lt, last, oi, fr, ft, pfr, index, mark in zip(
                c["sym"][rows].tolist(),
                c["timestamp"][rows].tolist(),
                c["local_timestamp"][rows].tolist(),
                col("last_price"),
                col("open_interest"),
                col("funding_rate"),
                optional_ts(c["funding_timestamp"][rows]),
                col("predicted_funding_rate"),
                col("index_price"),
                col("mark_price"),
                strict=True,
            )
        ]
