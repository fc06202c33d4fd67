"""Every Redis channel and key name, built here and nowhere else (listed in docs/ARCHITECTURE.md)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=65_536)
def candle_channels(exchange: str, symbol: str, timeframe: str) -> tuple[str, str, str]:
    """Channels a closed candle is published on:

    - ``candles:{symbol}:{timeframe}``: the seeds' channel (walkthrough 6);
    - ``candles:{symbol}``: every timeframe of the symbol (walkthrough 6);
    - ``candles:{exchange}:{symbol}:{timeframe}``: unambiguous when several exchanges list the symbol.
    """
    return (
        f"candles:{symbol}:{timeframe}",
        f"candles:{symbol}",
        f"candles:{exchange}:{symbol}:{timeframe}",
    )


@lru_cache(maxsize=65_536)
def record_channels(data_type: str, exchange: str, symbol: str) -> tuple[str, str]:
    """Channels a record of ``data_type`` (``book_snapshots``, ``derivative_ticker``, ``liquidations``,
    ``options_chain``, ``funding_rates``, ``gaps``) is published on:

    - ``{data_type}:{symbol}``, e.g. ``book_snapshots:BTC-USDT``;
    - ``{data_type}:{exchange}:{symbol}``, e.g. ``book_snapshots:binance:BTC-USDT``: unambiguous across
      exchanges.
    """
    return (f"{data_type}:{symbol}", f"{data_type}:{exchange}:{symbol}")
