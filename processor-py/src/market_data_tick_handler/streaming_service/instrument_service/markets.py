"""Where ccxt markets come from: a ccxt async client per exchange (``load_markets(True)``, the network) or a
folder of ``<ccxt id>.json`` files in ccxt's market format (``markets_dir``: no network at all; the files go
through ccxt's own ``set_markets``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The market types a client loads (Binance's one class would load spot, USD-M and COIN-M for each of
# the three Tardis exchanges otherwise).
CLIENT_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"fetchMarkets": {"types": ["spot"]}},
    "binanceusdm": {"fetchMarkets": {"types": ["linear"]}},
    "binancecoinm": {"fetchMarkets": {"types": ["inverse"]}},
}
# Files that hold another ccxt id's markets too (ccxt's binance fixtures have spot, USD-M and COIN-M).
FILE_FAMILY = {"binanceusdm": "binance", "binancecoinm": "binance"}


def has_client(ccxt_id: str) -> bool:
    """Whether this ccxt has the exchange (BitMEX left ccxt in 4.5.84: a markets file answers for it)."""
    return hasattr(_ccxt(), ccxt_id)


def _ccxt() -> Any:
    """ccxt's async package, imported on first use (0.5 s: not in the candle pipeline's start)."""
    import ccxt.async_support

    return ccxt.async_support


def new_client(ccxt_id: str, api_url: str | None = None, timeout_ms: int = 10_000) -> Any:
    """A ccxt async client; ``api_url`` (``http://127.0.0.1:PORT``) sends every API call there instead,
    under a path naming the real host (``https://fapi.binance.com/fapi/v1`` ->
    ``http://127.0.0.1:PORT/fapi.binance.com/fapi/v1``): a local server serves the exchange offline."""
    ccxt_async = _ccxt()
    cls = getattr(ccxt_async, ccxt_id, None)
    if cls is None:
        raise ValueError(f"ccxt {ccxt_async.__version__} has no exchange {ccxt_id!r}")
    client = cls({"timeout": timeout_ms, "options": dict(CLIENT_OPTIONS.get(ccxt_id, {}))})
    if api_url is not None:
        client.urls["api"] = _point_at(client.urls["api"], api_url.rstrip("/"))
    return client


def _point_at(urls: Any, base: str) -> Any:
    if isinstance(urls, dict):
        return {key: _point_at(value, base) for key, value in urls.items()}
    if isinstance(urls, str) and urls.startswith(("http://", "https://")):
        parts = urlsplit(urls)
        return f"{base}/{parts.netloc}{parts.path}"
    return urls


def markets_file(markets_dir: str | Path, ccxt_id: str) -> Path:
    """The file of a ccxt id's markets: ``derived/<id>.markets*.json`` (re-parsed with tick sizes, as in
    shared/data/ccxt-markets) first, then ``<id>.json``, then its family's (binanceusdm: binance's)."""
    folder = Path(markets_dir)
    for name in (ccxt_id, FILE_FAMILY.get(ccxt_id)):
        if name is None:
            continue
        derived = sorted((folder / "derived").glob(f"{name}.markets*.json"))
        if derived:
            return derived[-1]
        if (folder / f"{name}.json").is_file():
            return folder / f"{name}.json"
    raise FileNotFoundError(f"no markets file for {ccxt_id} in {folder} (<ccxt id>.json)")


def read_markets_file(path: Path) -> dict[str, dict[str, Any]]:
    with open(path, "rb") as f:
        markets = json.load(f)
    if not isinstance(markets, dict):
        raise ValueError(f"{path}: not a {{symbol: market}} object")
    return markets


async def load_markets(ccxt_id: str, client: Any, markets_dir: str | Path | None) -> list[dict[str, Any]]:
    """The exchange's markets: from ``markets_dir`` through the client's ``set_markets`` (no request; as
    they are when ccxt has no such exchange: ``client`` None), else ``load_markets(True)``."""
    if markets_dir is not None:
        markets = list(read_markets_file(markets_file(markets_dir, ccxt_id)).values())
        if client is None:
            return markets
        client.set_markets(markets)
        return list(client.markets.values())
    markets = await client.load_markets(True)
    return list(markets.values())
