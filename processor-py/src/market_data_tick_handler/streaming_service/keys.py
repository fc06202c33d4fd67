"""Every Redis channel and key name, built here and nowhere else (listed in docs/ARCHITECTURE.md).

Channels (PUBLISH/SUBSCRIBE) and keys (streams, hashes) are separate namespaces in Redis; the key names
still carry their own ``:stream:``/``:latest:`` part so that a name says what it is.
"""

from __future__ import annotations

from functools import lru_cache

#: the one field of a candle stream entry: the candle message's JSON, as published on the channels
STREAM_FIELD = "data"


@lru_cache(maxsize=65_536)
def candle_channels(exchange: str, symbol: str, timeframe: str) -> tuple[str, str, str]:
    """Channels a closed candle is published on:

    - ``candles:{symbol}:{timeframe}``: the seeds' channel;
    - ``candles:{symbol}``: every timeframe of the symbol;
    - ``candles:{exchange}:{symbol}:{timeframe}``: unambiguous when several exchanges list the symbol.
    """
    return (
        f"candles:{symbol}:{timeframe}",
        f"candles:{symbol}",
        f"candles:{exchange}:{symbol}:{timeframe}",
    )


@lru_cache(maxsize=65_536)
def candle_stream_key(exchange: str, symbol: str, timeframe: str) -> str:
    """``candles:stream:{exchange}:{symbol}:{timeframe}``: a capped stream (``serve.stream_maxlen``) of
    every closed candle, in publish order, for catching up from the last entry id a consumer saw.
    Entry ids are ``{bucket start, ms}-{revision}`` (a revision of an older bucket takes the next id after
    the stream's top), so a re-sent candle is refused by Redis instead of being added twice."""
    return f"candles:stream:{exchange}:{symbol}:{timeframe}"


@lru_cache(maxsize=65_536)
def candle_latest_key(symbol: str, timeframe: str) -> str:
    """``candles:latest:{symbol}:{timeframe}``: a hash, one field per exchange, holding the latest
    candle message: ``HGET candles:latest:BTC-USDT:1m binance``; ``HKEYS`` lists the exchanges."""
    return f"candles:latest:{symbol}:{timeframe}"


@lru_cache(maxsize=65_536)
def record_channels(data_type: str, exchange: str, symbol: str) -> tuple[str, str]:
    """Channels a record of ``data_type`` (``book_snapshots``, ``derivative_ticker``, ``liquidations``,
    ``options_chain``, ``funding_rates``, ``gaps``) is published on:

    - ``{data_type}:{symbol}``, e.g. ``book_snapshots:BTC-USDT``;
    - ``{data_type}:{exchange}:{symbol}``, e.g. ``book_snapshots:binance:BTC-USDT``: unambiguous across
      exchanges.
    """
    return (f"{data_type}:{symbol}", f"{data_type}:{exchange}:{symbol}")
