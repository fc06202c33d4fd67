"""book_snapshots (native, tardis_realtime): ``book_snapshot`` frames, tardis-dev's
``computeBookSnapshots`` of the exchange's book changes, ``depth`` levels every ``interval_ms``
(``data_types.book_snapshots``). Levels come best first, NaN-padded beyond the book's depth; records
keep the present levels only."""

from __future__ import annotations

import numpy as np

from ...wire import Frame
from .base import DataTypeProcessor, RowCheck
from .records import BookSnapshot, Record


def _side_bad(price: np.ndarray, amount: np.ndarray, ascending: bool) -> tuple[np.ndarray, np.ndarray]:
    """(bad price rows, bad amount rows) of one side, ``price``/``amount`` shaped (rows, depth)."""
    present = ~np.isnan(price)
    with np.errstate(invalid="ignore"):
        bad_price = (present & ~(np.isfinite(price) & (price > 0))).any(axis=1)
        bad_price |= (present[:, 1:] & ~present[:, :-1]).any(axis=1)  # a level after a missing one
        step = price[:, 1:] - price[:, :-1]
        bad_price |= (present[:, 1:] & ((step <= 0) if ascending else (step >= 0))).any(axis=1)
        bad_amount = (np.isnan(amount) != ~present).any(axis=1)
        bad_amount |= (present & ~(np.isfinite(amount) & (amount > 0))).any(axis=1)
    return bad_price, bad_amount


class BookSnapshotProcessor(DataTypeProcessor):
    data_type = "book_snapshots"

    def levels(self, frame: Frame) -> dict[str, np.ndarray]:
        """The level columns shaped (rows, depth)."""
        depth = frame.header.get("depth") or 0  # an int: the codec checked it
        c = frame.columns
        return {
            k: c[k].reshape(frame.n, depth) for k in ("bid_price", "bid_amount", "ask_price", "ask_amount")
        }

    def validity(self, frame: Frame) -> dict[str, np.ndarray]:
        lv = self.levels(frame)
        bid_price, bid_amount = _side_bad(lv["bid_price"], lv["bid_amount"], ascending=False)
        ask_price, ask_amount = _side_bad(lv["ask_price"], lv["ask_amount"], ascending=True)
        return {
            "bid_price": bid_price,
            "bid_amount": bid_amount,
            "ask_price": ask_price,
            "ask_amount": ask_amount,
        }

    def records(self, frame: Frame, check: RowCheck) -> list[Record]:
        c = frame.columns
        lv = self.levels(frame)
        rows = np.flatnonzero(check.kept)
        depth = frame.header.get("depth") or 0
        interval = frame.header.get("interval_ms")
        interval = interval if type(interval) is int else 0  # informative only: never a reason to fail
        names, table = self.symbols(frame), frame.symbols
        n_bids = np.count_nonzero(~np.isnan(lv["bid_price"][rows]), axis=1).tolist()
        n_asks = np.count_nonzero(~np.isnan(lv["ask_price"][rows]), axis=1).tolist()
        records: list[Record] = []
        append = records.append
        for s, t, lt, bp, ba, ap, aa, nb, na in zip(
            c["sym"][rows].tolist(),
            c["timestamp"][rows].tolist(),
            c["local_timestamp"][rows].tolist(),
            lv["bid_price"][rows].tolist(),
            lv["bid_amount"][rows].tolist(),
            lv["ask_price"][rows].tolist(),
            lv["ask_amount"][rows].tolist(),
            n_bids,
            n_asks,
            strict=True,
        ):
            append(
                BookSnapshot(
                    exchange=table[s][0],
                    symbol=names[s],
                    exchange_symbol=table[s][1],
                    timestamp=t,
                    local_timestamp=lt,
                    depth=depth,
                    interval_ms=interval,
                    bids=tuple(zip(bp[:nb], ba[:nb], strict=True)),
                    asks=tuple(zip(ap[:na], aa[:na], strict=True)),
                )
            )
        return records
