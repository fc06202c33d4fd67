"""A local HTTP server that answers ccxt's market requests with the raw exchange payloads of ccxt's own
fixtures (shared/data/ccxt-markets: each market's ``info`` is what the exchange sent), so that ccxt's real
``load_markets(True)`` runs offline. Clients reach it through ``markets.new_client(..., api_url=url)``:
a request for ``https://fapi.binance.com/fapi/v1/exchangeInfo`` comes as ``/fapi.binance.com/fapi/v1/
exchangeInfo``. Tests change what it serves (``set_tick``) and stop it to play an unreachable exchange."""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

MARKETS = Path(__file__).resolve().parents[3] / "shared" / "data" / "ccxt-markets"

BINANCE_SPOT = "/api.binance.com/api/v3/exchangeInfo"
BINANCE_USDM = "/fapi.binance.com/fapi/v1/exchangeInfo"
BINANCE_COINM = "/dapi.binance.com/dapi/v1/exchangeInfo"
DERIBIT = "/www.deribit.com/api/v2/public/get_instruments"  # ?currency=BTC: those settled in BTC
DERIBIT_CURRENCIES = "/www.deribit.com/api/v2/public/get_currencies"
BYBIT = "/api.bybit.com/v5/market/instruments-info"  # ?category=spot|linear|inverse|option[&baseCoin=]
OKX = "/www.okx.com/api/v5/public/instruments"  # ?instType=SPOT|SWAP|FUTURES|OPTION[&uly=BTC-USD]


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((MARKETS / f"{name}.json").read_text())


def raw_payloads() -> dict[str, Any]:
    """path -> the JSON body an exchange answers there, rebuilt from the fixtures' ``info``."""
    binance = _fixture("binance")

    def info(kind: str) -> dict[str, Any]:
        symbols = [
            m["info"]
            for m in binance.values()
            if "info" in m
            and (
                (kind == "spot" and m["type"] == "spot")
                or (kind == "linear" and m["type"] in ("swap", "future") and m["linear"])
                or (kind == "inverse" and m["type"] in ("swap", "future") and m["inverse"])
            )
        ]
        return {
            "timezone": "UTC",
            "serverTime": 1700000000000,
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    bybit = {"spot": [], "linear": [], "inverse": [], "option": []}
    for m in _fixture("bybit").values():
        if m.get("info"):
            kind = m["type"] if m["type"] in ("spot", "option") else "linear" if m["linear"] else "inverse"
            bybit[kind].append(m["info"])
    okx = [m["info"] for m in _fixture("okx").values() if "info" in m]
    deribit = [m["info"] for m in _fixture("deribit").values() if "info" in m]  # BTC/USDT has none
    return {
        BINANCE_SPOT: info("spot"),
        BINANCE_USDM: info("linear"),
        BINANCE_COINM: info("inverse"),
        DERIBIT: {"jsonrpc": "2.0", "result": deribit, "usIn": 0, "usOut": 0, "usDiff": 0, "testnet": False},
        OKX: {"code": "0", "msg": "", "data": okx},
        BYBIT: bybit,  # by category: _answer wraps one
        DERIBIT_CURRENCIES: {
            "jsonrpc": "2.0",
            "result": [{"currency": c} for c in sorted({m["settlement_currency"] for m in deribit})],
        },
    }


def _answer(path: str, query: str, body: Any) -> Any:
    """The body for this query: Deribit's instruments of one settlement currency, OKX's of one type (and
    underlying), Bybit's of one category (and base coin)."""
    args = {key: values[0] for key, values in parse_qs(query).items()}
    if path == DERIBIT and "currency" in args:
        return dict(body, result=[m for m in body["result"] if m["settlement_currency"] == args["currency"]])
    if path == BYBIT:
        category = args.get("category", "")
        markets = [
            m for m in body.get(category, []) if args.get("baseCoin", m.get("baseCoin")) == m.get("baseCoin")
        ]
        result = {"category": category, "list": markets, "nextPageCursor": ""}
        return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 1700000000000}
    if path == OKX:
        return dict(body, data=[
            m for m in body["data"]
            if m["instType"] == args.get("instType") and args.get("uly", m["uly"]) == m["uly"]
        ])  # fmt: skip
    return body


class CcxtServer:
    def __init__(self) -> None:
        self.payloads = raw_payloads()
        self.requests: list[str] = []  # paths asked for, in order
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                with server._lock:
                    server.requests.append(url.path)
                    body = server.payloads.get(url.path)
                    data = None if body is None else json.dumps(_answer(url.path, url.query, body)).encode()
                if data is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> CcxtServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (the port refuses connections); a second stop does nothing."""
        if not self._thread.is_alive():
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def set_binance_tick(self, path: str, symbol: str, tick: str) -> None:
        """Binance: the PRICE_FILTER tickSize of ``symbol`` in the payload at ``path`` becomes ``tick``."""
        with self._lock:
            payload = copy.deepcopy(self.payloads[path])
            for market in payload["symbols"]:
                if market["symbol"] == symbol:
                    for f in market["filters"]:
                        if f["filterType"] == "PRICE_FILTER":
                            f["tickSize"] = tick
            self.payloads[path] = payload

    def set_binance_symbols(self, path: str, symbols: list[dict[str, Any]]) -> None:
        """Binance: the markets of the payload at ``path`` become ``symbols`` (raw exchangeInfo entries)."""
        with self._lock:
            self.payloads[path] = dict(self.payloads[path], symbols=symbols)
