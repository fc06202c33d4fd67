"""Names of instruments across conventions: the exchange's native id (what Tardis streams, e.g.
``BTCUSDT``), the seeds' form used in Redis channels and tables (``BTC-USDT``, ``BTC-USDT-PERP``) and
ccxt's exchange ids.

This is the minimal mapping the candle pipeline needs; live instrument definitions from ccxt
(tick size, lot size, fees) complete it.
"""

from __future__ import annotations

import re

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

_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "USD", "EUR", "TRY", "BTC", "ETH", "BNB")
_BINANCE = re.compile(r"^([A-Z0-9]+?)(" + "|".join(_QUOTES) + r")(?:_(PERP|\d{6}))?$")


class InstrumentMapper:
    def __init__(self) -> None:
        self.tardis_to_ccxt = dict(TARDIS_TO_CCXT)
        #: the same table under the name the seeds use: venue -> ccxt id
        self.venue_to_ccxt = self.tardis_to_ccxt

    def to_symbol(self, exchange: str, exchange_symbol: str) -> str:
        """Native id -> the seeds' form: ``binance BTCUSDT`` -> ``BTC-USDT``; perpetuals get ``-PERP``
        (``binance-futures BTCUSDT`` -> ``BTC-USDT-PERP``), dated futures their expiry."""
        native = exchange_symbol.upper()
        if exchange.startswith("binance"):
            match = _BINANCE.match(native)
            if match:
                base, quote, suffix = match.groups()
                if exchange == "binance":
                    return f"{base}-{quote}"
                return f"{base}-{quote}-{suffix or 'PERP'}"
        if exchange == "bitmex" and native in ("XBTUSD", "ETHUSD"):
            return native.replace("XBT", "BTC")[:3] + "-USD-PERP"
        if exchange == "deribit" and native.endswith("-PERPETUAL"):
            return native.split("-")[0] + "-USD-PERP"
        return native

    def to_exchange_symbol(self, exchange: str, symbol: str) -> str:
        """The seeds' form -> native id, for the exchanges where it is a plain join (Binance)."""
        parts = symbol.upper().split("-")
        if exchange.startswith("binance") and len(parts) >= 2:
            native = parts[0] + parts[1]
            if len(parts) == 3 and parts[2] != "PERP":
                native += "_" + parts[2]
            if exchange == "binance-delivery" and (len(parts) == 2 or parts[2] == "PERP"):
                native += "_PERP"
            return native
        return symbol.upper()
