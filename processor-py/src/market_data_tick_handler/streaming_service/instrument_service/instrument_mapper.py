"""Names of instruments across conventions, with the exchange alongside (docs/ARCHITECTURE.md,
"Instrument definitions"):

- ours, used in Redis channels and tables: ``BTC-USDT`` spot, ``BTC-USDT-PERP``, ``BTC-USDT-231229`` (a
  dated future), ``BTC-USD-240126-39000-C`` (an option: expiry, strike, C or P);
- ccxt's unified symbol: ``BTC/USDT``, ``BTC/USDT:USDT``, ``BTC/USDT:USDT-231229``,
  ``BTC/USD:BTC-240126-39000-C``;
- the exchange's native id, what Tardis streams: ``BTCUSDT``, ``BTC-PERPETUAL``, ``BTC-26JAN24-39000-C``.

Exchanges are Tardis ids (``binance``, ``binance-futures``, ...; a ccxt id such as ``okx`` works too, with
all its markets). Once ccxt markets are given (:meth:`InstrumentMapper.set_markets`) they answer, joined on
(exchange, market type, native id): ``BTCUSDT`` is spot on ``binance`` and a perpetual on
``binance-futures``, and both on ccxt's ``bybit``. Without markets (the candle pipeline runs offline) the
rules below answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# Tardis exchange id -> ccxt exchange id.
TARDIS_TO_CCXT = {
    "binance": "binance",
    "binance-futures": "binanceusdm",
    "binance-delivery": "binancecoinm",
    "deribit": "deribit",
    "bitmex": "bitmex",
    "coinbase": "coinbaseexchange",
    "okex": "okx",
    "okex-swap": "okx",
    "okex-futures": "okx",
    "okex-options": "okx",
    "bybit": "bybit",
    "bybit-spot": "bybit",
    "bybit-options": "bybit",
    "kraken": "kraken",
    "cryptofacilities": "krakenfutures",
}

# Which of the ccxt exchange's markets a Tardis exchange streams: (types, linear) with None for any.
SCOPE: dict[str, tuple[frozenset[str] | None, bool | None]] = {
    "binance": (frozenset({"spot"}), None),
    "binance-futures": (frozenset({"swap", "future"}), True),
    "binance-delivery": (frozenset({"swap", "future"}), False),
    "okex": (frozenset({"spot"}), None),
    "okex-swap": (frozenset({"swap"}), None),
    "okex-futures": (frozenset({"future"}), None),
    "okex-options": (frozenset({"option"}), None),
    "bybit": (frozenset({"swap", "future"}), None),
    "bybit-spot": (frozenset({"spot"}), None),
    "bybit-options": (frozenset({"option"}), None),
    "coinbase": (frozenset({"spot"}), None),
    "kraken": (frozenset({"spot"}), None),
}

# ccxt market type -> ours
TYPES = {"spot": "spot", "swap": "perpetual", "future": "future", "option": "option"}
_CCXT_TYPES = {v: k for k, v in TYPES.items()}

_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "USD", "EUR", "TRY", "BTC", "ETH", "BNB")
_BINANCE = re.compile(r"^([A-Z0-9]+?)(" + "|".join(_QUOTES) + r")(?:_(PERP|\d{6}))?$")
# BitMEX and Bybit ids: no TUSD among the quotes (XBTUSD is XBT in USD)
_PLAIN = re.compile(r"^([A-Z0-9]+?)(" + "|".join(q for q in _QUOTES if q != "TUSD") + r")$")
_CCXT = re.compile(r"^([^/]+)/([^:]+)(?::([^-]+)(?:-(\d{6})(?:-([^-]+)-([CP]))?)?)?$")
_OURS = re.compile(r"^([A-Z0-9]+)-([A-Z0-9]+)(?:-(PERP|\d{6})(?:-([0-9.]+)-([CP]))?)?$")
_DMY = re.compile(r"^(\d{1,2})([A-Z]{3})(\d{2})$")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}  # BitMEX and Kraken names
# Exchanges whose contracts quoted in USD settle in the base coin (inverse) when no markets say otherwise.
_INVERSE_USD = ("deribit", "bitmex", "okex-swap", "okex-futures", "okex-options", "okx", "bybit")


def _yymmdd(dmy: str) -> str | None:
    """``26JAN24`` -> ``240126``."""
    m = _DMY.match(dmy)
    if not m or m.group(2) not in _MONTHS:
        return None
    return f"{m.group(3)}{_MONTHS.index(m.group(2)) + 1:02d}{int(m.group(1)):02d}"


def _dmy(yymmdd: str) -> str:
    """``240126`` -> ``26JAN24`` (Deribit and Bybit write the day without a leading zero)."""
    return f"{int(yymmdd[4:])}{_MONTHS[int(yymmdd[2:4]) - 1]}{yymmdd[:2]}"


def _coin(name: str) -> str:
    return _ALIASES.get(name, name)


def ccxt_to_ours(ccxt_symbol: str) -> str:
    """``BTC/USDT:USDT`` -> ``BTC-USDT-PERP`` and so on; a pure rule: the unified symbol says it all."""
    m = _CCXT.match(ccxt_symbol)
    if not m:
        raise KeyError(f"not a ccxt symbol: {ccxt_symbol!r}")
    base, quote, settle, expiry, strike, right = m.groups()
    if settle is None:
        return f"{base}-{quote}"
    if expiry is None:
        return f"{base}-{quote}-PERP"
    if strike is None:
        return f"{base}-{quote}-{expiry}"
    return f"{base}-{quote}-{expiry}-{strike}-{right}"


def _type_of_ours(symbol: str) -> str | None:
    m = _OURS.match(symbol)
    if not m:
        return None
    _, _, tail, strike, _ = m.groups()
    if tail is None:
        return "spot"
    if tail == "PERP":
        return "perpetual"
    return "option" if strike else "future"


class InstrumentMapper:
    def __init__(self) -> None:
        self.tardis_to_ccxt = dict(TARDIS_TO_CCXT)
        #: the same table under the name the seeds use: venue -> ccxt id
        self.venue_to_ccxt = self.tardis_to_ccxt
        # from ccxt markets, per exchange: ours / ccxt symbol / (type, native id) -> (ours, ccxt, native,
        # type)
        self._ours: dict[str, dict[str, tuple[str, str, str, str]]] = {}
        self._ccxt: dict[str, dict[str, tuple[str, str, str, str]]] = {}
        self._native: dict[str, dict[tuple[str, str], tuple[str, str, str, str]]] = {}
        #: ours -> the ccxt symbols that would have had it too (kept the first; see docs)
        self.collisions: dict[tuple[str, str], list[str]] = {}

    # -- markets --------------------------------------------------------------------------------------

    def ccxt_exchange(self, exchange: str) -> str:
        return self.tardis_to_ccxt.get(exchange, exchange)

    @staticmethod
    def in_scope(exchange: str, market: Mapping[str, Any]) -> bool:
        """Whether the Tardis exchange streams this market of its ccxt exchange."""
        types, linear = SCOPE.get(exchange, (None, None))
        if types is not None and market.get("type") not in types:
            return False
        return linear is None or bool(market.get("linear")) == linear

    def set_markets(
        self, exchange: str, markets: Iterable[Mapping[str, Any]]
    ) -> dict[str, Mapping[str, Any]]:
        """Index ccxt markets (those in the exchange's scope) for the exchange, replacing what it had;
        returns them by our symbol."""
        ours_of: dict[str, tuple[str, str, str, str]] = {}
        ccxt_of: dict[str, tuple[str, str, str, str]] = {}
        native_of: dict[tuple[str, str], tuple[str, str, str, str]] = {}
        kept: dict[str, Mapping[str, Any]] = {}
        for market in sorted(markets, key=lambda m: m["symbol"]):
            if not self.in_scope(exchange, market):
                continue
            ours = ccxt_to_ours(market["symbol"])
            kind = TYPES.get(market.get("type") or "spot", "spot")
            entry = (ours, market["symbol"], market["id"], kind)
            if ours in ours_of:
                self.collisions.setdefault((exchange, ours), []).append(market["symbol"])
            else:
                ours_of[ours] = entry
                kept[ours] = market
            ccxt_of[market["symbol"]] = entry
            native_of[(kind, market["id"])] = entry
            wsname = (market.get("info") or {}).get("wsname")
            if wsname:  # Kraken: Tardis streams the websocket name (XBT/USD), ccxt's id is XXBTZUSD
                native_of.setdefault((kind, wsname), entry)
        self._ours[exchange], self._ccxt[exchange], self._native[exchange] = ours_of, ccxt_of, native_of
        return kept

    def has_markets(self, exchange: str) -> bool:
        return exchange in self._ours

    def _by_native(self, exchange: str, native: str, market_type: str | None):
        index = self._native.get(exchange)
        if index is None:
            return None
        if market_type is not None:
            return index.get((market_type, native))
        for kind in ("spot", "perpetual", "future", "option"):  # a native id alone: spot first
            got = index.get((kind, native))
            if got is not None:
                return got
        return None

    # -- conversions ----------------------------------------------------------------------------------

    def to_symbol(self, exchange: str, exchange_symbol: str, market_type: str | None = None) -> str:
        """Native id -> ours: ``binance BTCUSDT`` -> ``BTC-USDT``, ``binance-futures BTCUSDT`` ->
        ``BTC-USDT-PERP``, ``deribit BTC-26JAN24-39000-C`` -> ``BTC-USD-240126-39000-C``. ``market_type``
        (spot, perpetual, future, option) picks among markets sharing the id on one exchange."""
        got = self._by_native(exchange, exchange_symbol, market_type)
        if got is not None:
            return got[0]
        return self._native_rule(exchange, exchange_symbol.upper())

    def _native_rule(self, exchange: str, native: str) -> str:
        if exchange.startswith("binance"):
            match = _BINANCE.match(native)
            if match:
                base, quote, suffix = match.groups()
                if exchange == "binance":
                    return f"{base}-{quote}"
                return f"{base}-{quote}-{suffix or 'PERP'}"
        elif exchange == "bitmex":
            match = _PLAIN.match(native.replace("_", ""))
            if match:
                base, quote = _coin(match.group(1)), match.group(2)
                return f"{base}-{quote}" if "_" in native else f"{base}-{quote}-PERP"
        elif exchange == "deribit":
            parts = native.split("-")
            base, _, quote = parts[0].partition("_")
            quote = quote or "USD"
            if len(parts) == 1 and parts[0].count("_") == 1:
                return f"{base}-{quote}"
            if len(parts) == 2 and parts[1] == "PERPETUAL":
                return f"{base}-{quote}-PERP"
            expiry = _yymmdd(parts[1]) if len(parts) >= 2 else None
            if expiry and len(parts) == 2:
                return f"{base}-{quote}-{expiry}"
            if expiry and len(parts) == 4:
                return f"{base}-{quote}-{expiry}-{parts[2]}-{parts[3]}"
        elif exchange.startswith("okex") or exchange == "okx":
            if native.endswith("-SWAP"):
                return native[: -len("-SWAP")] + "-PERP"
            return native
        elif exchange.startswith("bybit"):
            parts = native.split("-")
            if len(parts) >= 4 and (expiry := _yymmdd(parts[1])):  # BTC-30MAY25-70000-C[-USDT]
                quote = parts[4] if len(parts) == 5 else "USDC"
                return f"{parts[0]}-{quote}-{expiry}-{parts[2]}-{parts[3]}"
            match = _PLAIN.match(native)
            if match:
                base, quote = match.groups()
                return f"{base}-{quote}" if exchange == "bybit-spot" else f"{base}-{quote}-PERP"
        elif exchange == "kraken" and "/" in native:
            base, quote = native.split("/")
            return f"{_coin(base)}-{_coin(quote)}"
        return native

    def to_exchange_symbol(self, exchange: str, symbol: str) -> str:
        """Ours -> the native id (a native id or ccxt's symbol given: its native id too)."""
        got = self._ours.get(exchange, {}).get(symbol)
        if got is not None:
            return got[2]
        ours = self.normalize(exchange, symbol)
        got = self._ours.get(exchange, {}).get(ours)
        return got[2] if got is not None else self._ours_rule(exchange, ours)

    def _ours_rule(self, exchange: str, symbol: str) -> str:
        parts = symbol.split("-")
        if exchange.startswith("binance") and len(parts) >= 2:
            native = parts[0] + parts[1]
            if len(parts) == 3 and parts[2] != "PERP":
                native += "_" + parts[2]
            if exchange == "binance-delivery" and (len(parts) == 2 or parts[2] == "PERP"):
                native += "_PERP"
            return native
        m = _OURS.match(symbol)
        if not m:
            return symbol
        base, quote, tail, strike, right = m.groups()
        if exchange == "deribit":
            head = base if quote == "USD" else f"{base}_{quote}"
            if tail is None:
                return f"{base}_{quote}"
            if tail == "PERP":
                return f"{head}-PERPETUAL"
            return f"{head}-{_dmy(tail)}" + (f"-{strike}-{right}" if strike else "")
        if exchange == "bitmex":
            base = "XBT" if base == "BTC" else base
            return f"{base}_{quote}" if tail is None else f"{base}{quote}"
        if exchange.startswith("okex") or exchange == "okx":
            return f"{base}-{quote}-SWAP" if tail == "PERP" else symbol
        if exchange.startswith("bybit"):
            if strike:
                return f"{base}-{_dmy(tail)}-{strike}-{right}" + ("" if quote == "USDC" else f"-{quote}")
            return f"{base}{quote}"
        if exchange == "kraken":
            return f"{'XBT' if base == 'BTC' else base}/{quote}"
        return symbol

    def to_ccxt(self, exchange: str, symbol: str) -> str:
        """Ours -> ccxt's unified symbol. Without markets, a contract quoted in USD on Deribit, BitMEX,
        OKX and Bybit, and any on binance-delivery, settles in the base coin; other contracts in the quote."""
        got = self._ours.get(exchange, {}).get(symbol)
        if got is not None:
            return got[1]
        m = _OURS.match(symbol.upper())
        if not m:
            raise KeyError(f"{exchange} {symbol!r} is not in our convention (BASE-QUOTE[-PERP|-YYMMDD...])")
        base, quote, tail, strike, right = m.groups()
        if tail is None:
            return f"{base}/{quote}"
        inverse = exchange == "binance-delivery" or (quote == "USD" and exchange in _INVERSE_USD)
        out = f"{base}/{quote}:{base if inverse else quote}"
        if tail != "PERP":
            out += f"-{tail}"
        if strike:
            out += f"-{strike}-{right}"
        return out

    def from_ccxt(self, exchange: str, ccxt_symbol: str) -> str:
        """ccxt's unified symbol -> ours."""
        got = self._ccxt.get(exchange, {}).get(ccxt_symbol)
        return got[0] if got is not None else ccxt_to_ours(ccxt_symbol)

    def normalize(self, exchange: str, symbol: str, market_type: str | None = None) -> str:
        """Any spelling (ours, ccxt's, the native id) -> ours."""
        ours = self._ours.get(exchange)
        if ours is not None and symbol in ours:
            return symbol
        got = self._ccxt.get(exchange, {}).get(symbol) or self._by_native(exchange, symbol, market_type)
        if got is not None:
            return got[0]
        if "/" in symbol and not (exchange == "kraken" and ":" not in symbol):  # Kraken's ids: XBT/USD
            return ccxt_to_ours(symbol)
        upper = symbol.upper()
        native = self._native_rule(exchange, upper)
        if native == upper and _OURS.match(upper):  # no rule took it as a native id: it is ours
            return upper
        return native

    def spellings(self, exchange: str, symbol: str) -> tuple[str, str, str]:
        """(ours, ccxt's, native) for a symbol in any spelling."""
        ours = self.normalize(exchange, symbol)
        return ours, self.to_ccxt(exchange, ours), self.to_exchange_symbol(exchange, ours)

    def market_type(self, symbol: str) -> str | None:
        """spot | perpetual | future | option, read from our symbol."""
        return _type_of_ours(symbol)
