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
