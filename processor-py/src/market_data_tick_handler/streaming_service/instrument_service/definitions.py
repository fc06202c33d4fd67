"""An instrument's trading parameters as read from ccxt (:class:`InstrumentDefinition`) and what changed
between two reads (:class:`InstrumentChange`). Times are µs since the epoch, UTC; ``to_dict`` gives them
as ISO strings with µs for Redis and tables."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

#: the fields whose change is an ``InstrumentChange`` of kind ``changed``
WATCHED = (
    "tick_size",
    "lot_step",
    "min_size",
    "min_notional",
    "trading_fees_maker",
    "trading_fees_taker",
    "contract_size",
    "active",
)

_TYPES = {"spot": "spot", "swap": "perpetual", "future": "future", "option": "option"}


def iso_us(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class InstrumentDefinition:
    exchange: str  # Tardis exchange id: binance, binance-futures, deribit, ...
    symbol: str  # ours: BTC-USDT, BTC-USDT-PERP, BTC-USD-240126, BTC-USD-240126-39000-C
    ccxt_symbol: str  # BTC/USDT, BTC/USDT:USDT, BTC/USD:BTC-240126-39000-C
    exchange_symbol: str  # the native id = the Tardis symbol: BTCUSDT, BTC-PERPETUAL, ...
    ccxt_exchange: str  # binance, binanceusdm, deribit, ...
    base: str
    quote: str
    settle: str | None
    type: str  # spot | perpetual | future | option
    linear: bool | None
    inverse: bool | None
    contract_size: float | None
    tick_size: float | None
    lot_step: float | None
    min_size: float | None  # in contracts for contract markets
    min_notional: float | None
    trading_fees_maker: float | None
    trading_fees_taker: float | None
    expiry_us: int | None
    strike: float | None
    option_type: str | None  # call | put
    active: bool
    read_at_us: int

    @classmethod
    def from_market(
        cls, exchange: str, ccxt_exchange: str, symbol: str, market: dict[str, Any], read_at_us: int
    ) -> InstrumentDefinition:
        """From a ccxt market (``precision`` in tick sizes, as ccxt 4.5 gives for every target exchange);
        ``symbol`` is ours (``InstrumentMapper``)."""
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}
        expiry = market.get("expiry")
        return cls(
            exchange=exchange,
            symbol=symbol,
            ccxt_symbol=market["symbol"],
            exchange_symbol=market["id"],
            ccxt_exchange=ccxt_exchange,
            base=market["base"],
            quote=market["quote"],
            settle=market.get("settle"),
            type=_TYPES.get(market.get("type") or "spot", market.get("type") or "spot"),
            linear=market.get("linear"),
            inverse=market.get("inverse"),
            contract_size=_float(market.get("contractSize")),
            tick_size=_float(precision.get("price")),
            lot_step=_float(precision.get("amount")),
            min_size=_float((limits.get("amount") or {}).get("min")),
            min_notional=_float((limits.get("cost") or {}).get("min")),
            trading_fees_maker=_float(market.get("maker")),
            trading_fees_taker=_float(market.get("taker")),
            expiry_us=None if expiry is None else int(expiry) * 1000,
            strike=_float(market.get("strike")),
            option_type=market.get("optionType"),
            active=market.get("active") is not False,  # ccxt says None when the exchange does not tell
            read_at_us=read_at_us,
        )

    def differences(self, other: InstrumentDefinition) -> dict[str, tuple[Any, Any]]:
        """field -> (self's, other's) for the watched fields that differ."""
        return {
            name: (getattr(self, name), getattr(other, name))
            for name in WATCHED
            if getattr(self, name) != getattr(other, name)
        }

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["expiry"] = iso_us(out.pop("expiry_us"))
        out["read_at"] = iso_us(out.pop("read_at_us"))
        return out


@dataclass(frozen=True, slots=True)
class InstrumentChange:
    exchange: str
    symbol: str
    kind: str  # listed | delisted | changed
    changes: dict[str, tuple[Any, Any]]  # field -> (old, new); empty for listed and delisted
    effective_from_us: int
    definition: InstrumentDefinition  # the new one (the last one for delisted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "kind": self.kind,
            "changes": {name: list(pair) for name, pair in self.changes.items()},
            "effective_from": iso_us(self.effective_from_us),
            "definition": self.definition.to_dict(),
        }
