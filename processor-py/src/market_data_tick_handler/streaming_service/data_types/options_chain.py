"""options_chain (native, tardis_realtime): ``option_summary`` frames, one option ticker a row, on
option venues only (deribit, okex-options, binance-options, bybit-options, ...; the ingester leaves
the type out elsewhere and says so). A field the exchange did not send is ``None``."""

from __future__ import annotations

import numpy as np

from ...wire import Frame
from .base import DataTypeProcessor, RowCheck, bad_if_present, bad_time, optional
from .records import OptionSummary, Record

OPTION_TYPES = ("unknown", "call", "put")
NON_NEGATIVE = (
    "best_bid_price", "best_bid_amount", "best_bid_iv", "best_ask_price", "best_ask_amount", "best_ask_iv",
    "last_price", "open_interest", "mark_price", "mark_iv", "underlying_price",
)  # fmt: skip
ANY_SIGN = ("delta", "gamma", "vega", "theta", "rho")
FLOATS = (*NON_NEGATIVE[:-1], *ANY_SIGN, "underlying_price")


class OptionsChainProcessor(DataTypeProcessor):
    data_type = "options_chain"

    def validity(self, frame: Frame) -> dict[str, np.ndarray]:
        c = frame.columns
        strike = c["strike_price"]
        bad = {
            "option_type": (c["option_type"] == 0) | (c["option_type"] > 2),
            "strike_price": ~(np.isfinite(strike) & (strike > 0)),
            "expiration": bad_time(c["expiration"]),
        }
        for name in NON_NEGATIVE:
            bad[name] = bad_if_present(c[name], 0.0)
        for name in ANY_SIGN:
            bad[name] = bad_if_present(c[name])
        return bad

    def records(self, frame: Frame, check: RowCheck) -> list[Record]:
        c = frame.columns
        strike = c["strike_price"]
        rows = np.flatnonzero(check.kept)
        names, table = self.symbols(frame), frame.symbols
        floats = {name: optional(c[name][rows].tolist()) for name in FLOATS}
        index = c["underlying_index"]
        records: list[Record] = []
        for k, (i, s, t, lt, kind, k_strike, expiry) in enumerate(
            zip(
                rows.tolist(),
                c["sym"][rows].tolist(),
                c["timestamp"][rows].tolist(),
                c["local_timestamp"][rows].tolist(),
                c["option_type"][rows].tolist(),
                strike[rows].tolist(),
                c["expiration"][rows].tolist(),
                strict=True,
            )
        ):
            records.append(
                OptionSummary(
                    exchange=table[s][0],
                    symbol=names[s],
                    exchange_symbol=table[s][1],
                    timestamp=t,
                    local_timestamp=lt,
                    option_type=OPTION_TYPES[kind],
                    strike_price=k_strike,
                    expiration=expiry,
                    underlying_index=index[i],
                    **{name: values[k] for name, values in floats.items()},
                )
            )
        return records
