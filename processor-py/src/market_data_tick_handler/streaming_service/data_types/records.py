"""The records every data type produces: what is published, and the one place their fields are defined.

Every record has ``exchange`` (Tardis id), ``symbol`` (canonical, ``InstrumentMapper.to_symbol``),
``exchange_symbol`` (the exchange's native id), ``timestamp`` (exchange event time) and
``local_timestamp`` (when the ingester received it): integers of microseconds since the Unix epoch, UTC,
serialised as ISO 8601 with microseconds and ``Z`` (``messages.record_message``). A missing number is
``None`` (``null`` in JSON), never NaN. ``TYPE`` is the message's ``type``; ``DATA_TYPE`` the data type
(``DataTypeRouter``) whose channels carry it. docs/DATA_TYPES.md renders these fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

#: fields holding µs timestamps: ISO 8601 in messages
TIMESTAMP_FIELDS = frozenset(
    {"timestamp", "local_timestamp", "funding_timestamp", "expiration", "start", "end"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    TYPE: ClassVar[str] = "record"
    DATA_TYPE: ClassVar[str] = ""

    exchange: str
    symbol: str
    exchange_symbol: str
    timestamp: int
    local_timestamp: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade(Record):
    """One trade; ``side`` is the taker's (buy, sell or unknown)."""

    TYPE: ClassVar[str] = "trade"
    DATA_TYPE: ClassVar[str] = "trades"
    price: float
    amount: float
    side: str
    id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BookSnapshot(Record):
    """The top of the book: ``bids`` best (highest) first, ``asks`` best (lowest) first, each level
    ``(price, amount)``; a side holds fewer than ``depth`` levels when the book is thinner.
    ``interval_ms`` is the snapshot interval (0 = on every change)."""

    TYPE: ClassVar[str] = "book_snapshot"
    DATA_TYPE: ClassVar[str] = "book_snapshots"
    depth: int
    interval_ms: int
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DerivativeTicker(Record):
    """A perpetual or future's ticker; ``funding_timestamp`` is the next funding time."""

    TYPE: ClassVar[str] = "derivative_ticker"
    DATA_TYPE: ClassVar[str] = "derivative_ticker"
    last_price: float | None
    open_interest: float | None
    funding_rate: float | None
    funding_timestamp: int | None
    predicted_funding_rate: float | None
    index_price: float | None
    mark_price: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Liquidation(Record):
    """A forced order: ``side`` buy = a short position was liquidated, sell = a long one."""

    TYPE: ClassVar[str] = "liquidation"
    DATA_TYPE: ClassVar[str] = "liquidations"
    price: float
    amount: float
    side: str
    id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionSummary(Record):
    """An option's ticker (tardis ``option_summary``); IVs as the exchange gives them."""

    TYPE: ClassVar[str] = "option_summary"
    DATA_TYPE: ClassVar[str] = "options_chain"
    option_type: str  # call | put
    strike_price: float
    expiration: int
    best_bid_price: float | None
    best_bid_amount: float | None
    best_bid_iv: float | None
    best_ask_price: float | None
    best_ask_amount: float | None
    best_ask_iv: float | None
    last_price: float | None
    open_interest: float | None
    mark_price: float | None
    mark_iv: float | None
    delta: float | None
    gamma: float | None
    vega: float | None
    theta: float | None
    rho: float | None
    underlying_price: float | None
    underlying_index: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingRate(Record):
    """Emitted whenever a symbol's funding rate or next funding time changes (the first one included),
    from its derivative tickers; ``timestamp`` is that ticker's."""

    TYPE: ClassVar[str] = "funding_rate"
    DATA_TYPE: ClassVar[str] = "funding_rates"
    funding_rate: float
    funding_timestamp: int | None
    predicted_funding_rate: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Gap(Record):
    """Data of the symbol may be missing from ``start`` until ``end`` (``None`` while it lasts).
    ``reason``: ``disconnect`` (the connection dropped), ``stale`` (no message for
    ``data_types.gaps.stale_after_ms``), ``frames_lost`` (a jump in the wire ``seq``), ``ingester_exit``
    (the ingester died without ending its session), ``processor_restart`` (a restarted processor's
    ingester had stopped with the one before) or ``journal_missing`` (frames deleted from the journal
    before they were read). A gap is
    published when it opens (``end`` null) and again when it ends; ``timestamp`` = ``start``,
    ``local_timestamp`` = when this record was made. Times are exchange time in replays and wall time
    live, as the candle clock."""

    TYPE: ClassVar[str] = "gap"
    DATA_TYPE: ClassVar[str] = "gaps"
    reason: str
    start: int
    end: int | None
