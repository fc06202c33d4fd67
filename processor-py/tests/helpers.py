"""Build wire frames for tests."""

from market_data_tick_handler.wire import encode_frame

SIDES = {"unknown": 0, "buy": 1, "sell": 2}
T0 = 1_700_000_040_000_000  # 2023-11-14T22:14:00Z, a whole minute
S = 1_000_000  # one second in microseconds


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
