"""Build wire frames for tests, and the configuration of a service fed by them."""

from typing import Any

from market_data_tick_handler.config import StreamingConfig, config_from_dict
from market_data_tick_handler.wire import INT64_MISSING, encode_frame

SIDES = {"unknown": 0, "buy": 1, "sell": 2}
T0 = 1_700_000_040_000_000  # 2023-11-14T22:14:00Z, a whole minute
S = 1_000_000  # one second in microseconds
NAN = float("nan")
MISSING = INT64_MISSING


def trade_frame(trades, seq=0, session="test", symbols=(("binance", "BTCUSDT"),)):
    """``trades``: (sym index, ts_us, price, amount, side name)."""
    header = {
        "type": "trade",
        "seq": seq,
        "session": session,
        "symbols": [list(s) for s in symbols],
        "recv_mono_us": 1,
        "sent_mono_us": 2,
    }
    cols = {
        "sym": [t[0] for t in trades],
        "timestamp": [t[1] for t in trades],
        "local_timestamp": [t[1] + 5 for t in trades],
        "price": [t[2] for t in trades],
        "amount": [t[3] for t in trades],
        "side": [SIDES[t[4]] for t in trades],
        "id": [str(i) for i in range(len(trades))],
    }
    return encode_frame(header, cols)


def control_frame(kind, seq, session="test", symbols=(), rows=(), **extra):
    header = {
        "type": kind,
        "seq": seq,
        "session": session,
        "symbols": [list(s) for s in symbols],
        "recv_mono_us": 1,
        "sent_mono_us": 2,
        **extra,
    }
    cols = {}
    if kind == "disconnect":
        cols = {"sym": [r[0] for r in rows], "local_timestamp": [r[1] for r in rows]}
    return encode_frame(header, cols)


def candle_columns(candles):
    """The feature inputs of ``Candle`` objects, as the columns ``compute_batch`` takes."""
    names = (
        "timestamp_in",
        "close",
        "high",
        "low",
        "volume",
        "buy_volume",
        "sell_volume",
        "vwap",
        "trade_count",
    )
    return {name: [getattr(c, name) for c in candles] for name in names}


def typed_header(kind, seq, symbols, **extra):
    """The header of a data-type frame (session "dt") for ``book_frame`` and the builders below."""
    return {
        "type": kind,
        "seq": seq,
        "session": "dt",
        "symbols": [list(s) for s in symbols],
        "recv_mono_us": 1,
        "sent_mono_us": 2,
        **extra,
    }


def book_frame(rows, seq=0, symbols=(("binance", "BTCUSDT"),), depth=3, interval_ms=100):
    """rows: (sym, ts, bids [(price, amount)], asks [(price, amount)]), padded with NaN to ``depth``."""
    cols = {"sym": [], "timestamp": [], "local_timestamp": []}
    for name in ("bid_price", "bid_amount", "ask_price", "ask_amount"):
        cols[name] = []
    for sym, ts, bids, asks in rows:
        cols["sym"].append(sym)
        cols["timestamp"].append(ts)
        cols["local_timestamp"].append(ts + 7)
        for side, levels in (("bid", bids), ("ask", asks)):
            padded = list(levels) + [(NAN, NAN)] * (depth - len(levels))
            cols[f"{side}_price"] += [p for p, _ in padded]
            cols[f"{side}_amount"] += [a for _, a in padded]
    return encode_frame(
        typed_header("book_snapshot", seq, symbols, depth=depth, interval_ms=interval_ms), cols
    )


TICKER_COLUMNS = (
    "last_price", "open_interest", "funding_rate", "funding_timestamp", "predicted_funding_rate",
    "index_price", "mark_price",
)  # fmt: skip


def ticker_frame(rows, seq=0, symbols=(("binance-futures", "BTCUSDT"),)):
    """rows: dicts with sym, ts and any of TICKER_COLUMNS (missing: NaN / INT64_MISSING)."""
    cols = {
        "sym": [r["sym"] for r in rows],
        "timestamp": [r["ts"] for r in rows],
        "local_timestamp": [r["ts"] + 9 for r in rows],
    }
    for name in TICKER_COLUMNS:
        default = MISSING if name == "funding_timestamp" else NAN
        cols[name] = [r.get(name, default) for r in rows]
    return encode_frame(typed_header("derivative_ticker", seq, symbols), cols)


def liquidation_frame(rows, seq=0, symbols=(("deribit", "BTC-PERPETUAL"),)):
    """rows: (sym, ts, price, amount, side code, id)."""
    cols = {
        "sym": [r[0] for r in rows],
        "timestamp": [r[1] for r in rows],
        "local_timestamp": [r[1] + 3 for r in rows],
        "price": [r[2] for r in rows],
        "amount": [r[3] for r in rows],
        "side": [r[4] for r in rows],
        "id": [r[5] for r in rows],
    }
    return encode_frame(typed_header("liquidation", seq, symbols), cols)


OPTION = {
    "option_type": 1, "strike_price": 60_000.0, "expiration": 1_727_424_000_000_000,  # 2024-09-27T08:00Z
    "best_bid_price": 0.05, "best_bid_amount": 10.0, "best_bid_iv": 48.5, "best_ask_price": 0.0525,
    "best_ask_amount": 5.0, "best_ask_iv": 50.1, "last_price": 0.051, "open_interest": 1234.0,
    "mark_price": 0.0512, "mark_iv": 49.3, "delta": 0.45, "gamma": 0.00002, "vega": 95.1, "theta": -60.2,
    "rho": 20.5, "underlying_price": 58_000.0, "underlying_index": "BTC-27SEP24",
}  # fmt: skip


def option_frame(rows, seq=0, symbols=(("deribit", "BTC-27SEP24-60000-C"),)):
    cols = {"sym": [r[0] for r in rows], "timestamp": [r[1] for r in rows]}
    cols["local_timestamp"] = [t + 11 for t in cols["timestamp"]]
    for name in OPTION:
        cols[name] = [r[2].get(name, OPTION[name]) for r in rows]
    return encode_frame(typed_header("option_summary", seq, symbols), cols)


def replay_config(endpoint: str, **more: Any) -> StreamingConfig:
    """A replay (event clock) of binance BTCUSDT from an ingester that runs elsewhere (the test pushes
    the frames to ``endpoint``): 15 s and 1 m candles closing with no grace, no features, trades only,
    served on the in-memory bus; ``more``: other top-level sections."""
    return config_from_dict(
        {
            "modes": ["serve"],
            "serve": {"transport": "inmemory"},
            "ingest": {
                "source": "replay",
                "exchange": "binance",
                "symbols": ["btcusdt"],
                "spawn": False,
                "endpoint": endpoint,
            },
            "candles": {"timeframes": ["15s", "1m"], "grace_ms": 0, "enable_hft_features": False},
            "data_types": {
                "book_snapshots": {"enabled": False},
                "derivative_ticker": {"enabled": False},
                "options_chain": {"enabled": False},
                "funding_rates": {"enabled": False},
            },
            **more,
        }
    )


def end_frame(seq: int, session: str, trades: int) -> bytes:
    """The ingester's end frame of a replay: ``seq`` frames before it (the start and trade frames),
    ``trades`` trade rows in them."""
    counts = {
        "rows": {"trade": trades},
        "frames": seq,
        "frames_by_type": {"start": 1, "trade": seq - 1},
        "normalized": {"trade": trades},
        "dropped": {},
        "raw": {},
        "internal": {},
    }
    return control_frame("end", seq, session=session, reason="replay_finished", counts=counts)
