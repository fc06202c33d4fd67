"""The batch engine (``candles_from_trades``: whole arrays through the engine's compiled path,
``batch_kernel.py``) gives the live engine's candles bit for bit: the live engine being the array path fed
frame by frame, as the service feeds it. On the real recordings and on generated streams with holes,
trades on boundaries, late trades, strays far in the future and unknown sides."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market_data_tick_handler.streaming_service.candle_processor import (
    LiveCandleProcessor,
    candles_from_trades,
)
from market_data_tick_handler.streaming_service.candle_processor.batch import candle_table_from_trades

RECORDINGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "binance-ws"
FILES = (
    "spot_btcusdt_20240808.gz",
    "spot_btcusdt_20240809.gz",
    "usdm_btcusdt_20240808.gz",
    "cm_btcusd_perp_20240808.gz",
)
S = 1_000_000
T0 = 1_723_161_600 * S  # 2024-08-09 00:00 UTC


def _trades(name: str) -> pd.DataFrame:
    """The trades of a raw Binance recording, read here from its frames: T (ms) as µs, p, q, and the
    taker side (m: the buyer is the maker, so the taker sold)."""
    rows = []
    with gzip.open(RECORDINGS / name) as f:
        for line in f:
            _, _, text = line.partition(b" ")
            if b'@trade"' not in text:
                continue
            d = orjson.loads(text)["data"]
            rows.append((d["T"] * 1000, float(d["p"]), float(d["q"]), "sell" if d["m"] else "buy"))
    return pd.DataFrame(rows, columns=["timestamp", "price", "amount", "side"])


def _codes(side) -> np.ndarray:
    return np.array([{"unknown": 0, "buy": 1, "sell": 2}[s] for s in side], dtype=np.uint8)


def _live(trades: pd.DataFrame, cuts: list[int], *, compiled: bool = False, grace_us: int = 0, gaps=()):
    """The candles and stats of the engine fed frame by frame (``cuts``: the frame sizes, cycled),
    through the array path only unless ``compiled``. ``gaps``: (frame, start, end) calls of ``set_gap``
    made before that frame (end None: open, until a call with the same start and an end)."""
    processor = LiveCandleProcessor("BTC-USDT", exchange_symbol="BTCUSDT", grace_us=grace_us)
    processor.engine.compiled = compiled
    ts = trades["timestamp"].to_numpy(np.int64)
    price, amount = trades["price"].to_numpy(float), trades["amount"].to_numpy(float)
    side = _codes(trades["side"])
    out, i, k = [], 0, 0
    while i < len(ts):
        for _, start, end in (g for g in gaps if g[0] == k):
            processor.engine.set_gap(["BTCUSDT"], start, end)
        j = i + cuts[k % len(cuts)]
        out.extend(processor.add_trades(ts[i:j], price[i:j], amount[i:j], side[i:j]))
        i, k = j, k + 1
    out.extend(processor.finish())
    return out, processor.engine.get_stats()


def _bits(value):
    """A field's value as its exact bits (floats: their IEEE bytes, so -0.0 != 0.0 and NaN == NaN)."""
    return struct.pack("<d", value) if isinstance(value, float) else value


def _assert_identical(batch, live) -> None:
    assert len(batch) == len(live)
    for i, (b, c) in enumerate(zip(batch, live, strict=True)):
        for name in b.__dataclass_fields__:
            assert _bits(getattr(b, name)) == _bits(getattr(c, name)), (i, name, b, c)


def _batch_stats(trades: pd.DataFrame, grace_us: int = 0) -> dict:
    processor = LiveCandleProcessor("BTC-USDT", exchange_symbol="BTCUSDT", grace_us=grace_us)
    table = processor.engine.run_table(
        trades["timestamp"].to_numpy(np.int64), trades["price"].to_numpy(float),
        trades["amount"].to_numpy(float), _codes(trades["side"]),
    )  # fmt: skip
    table.add_parts(processor.engine.finish().parts)
    return processor.engine.get_stats()


@pytest.mark.parametrize("name", FILES)
def test_real_recordings_batch_equals_the_live_engine_bit_for_bit(name):
    trades = _trades(name)
    batch = candles_from_trades(trades, exchange_symbol="BTCUSDT", symbol="BTC-USDT")
    live, live_stats = _live(trades, [1000])  # the ingester's frames hold up to 1,000 rows
    _assert_identical(batch, live)
    assert _batch_stats(trades) == live_stats
    # and the live engine with its compiled path, frame by frame, as a one-symbol service runs it
    _assert_identical(_live(trades, [1000, 7, 333], compiled=True)[0], live)


def test_real_recording_candles_equal_a_reference_worked_out_with_pandas():
    trades = _trades("spot_btcusdt_20240808.gz")
    candles = [c for c in candles_from_trades(trades) if c.timeframe == "1m" and not c.is_empty]
    bucket = trades["timestamp"] // 60_000_000 * 60_000_000
    groups = trades.assign(bucket=bucket).groupby("bucket", sort=True)
    reference = groups.agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
        trades=("price", "size"),
    )  # fmt: skip
    volume = groups["amount"].sum()  # pairwise sums: equal to about 1e-12, not bit for bit
    assert [c.timestamp_in for c in candles] == reference.index.tolist()
    for c in candles:
        row = reference.loc[c.timestamp_in]
        assert (c.open, c.high, c.low, c.close, c.trade_count) == (
            row.open, row.high, row.low, row.close, row.trades,
        )  # fmt: skip
        assert math.isclose(c.volume, volume.loc[c.timestamp_in], rel_tol=1e-12)


# one step of a generated stream: how far the next trade is from the one before (µs)
_NEAR = st.integers(0, 400_000)  # the common case, ties included
_STEPS = st.one_of(
    _NEAR,
    _NEAR,
    _NEAR,
    st.just("boundary"),  # exactly on the next 15 s boundary
    st.integers(-20 * S, -1),  # late, or out of order inside a bucket
    st.integers(61 * S, 5 * 60 * S),  # a hole longer than the jump rule's 60 s
    st.just("stray"),  # one trade a day ahead, the stream goes on where it was
)


@st.composite
def _streams(draw):
    n = draw(st.integers(1, 200))
    t = T0 + draw(st.integers(0, 15 * S))
    rows = []
    for _ in range(n):
        step = draw(_STEPS)
        at = t
        if step == "boundary":
            t = at = t - t % (15 * S) + 15 * S
        elif step == "stray":
            at = t + 86_400 * S
        else:
            t = at = max(t + step, T0 - 3600 * S)
        price = draw(st.sampled_from([100.0, 100.5, 99.25, 0.1 + 0.2, 1e-8, 123456.789]))
        amount = draw(st.sampled_from([1.0, 0.001, 0.1, 0.3, 2.5e-5, 7.0]))
        side = draw(st.sampled_from(["buy", "sell", "unknown"]))
        rows.append((at, price, amount, side))
    cuts = draw(st.lists(st.integers(1, 50), min_size=1, max_size=5))
    grace = draw(st.sampled_from([0, 2 * S]))
    return pd.DataFrame(rows, columns=["timestamp", "price", "amount", "side"]), cuts, grace


@st.composite
def _gaps(draw, trades: pd.DataFrame, cuts: list[int]):
    """Gaps opened (and most of them ended, a few frames on) around the trades of random frames, as the
    gap tracker reports a disconnect or a stale stream."""
    ts = trades["timestamp"].to_numpy()
    starts = np.cumsum([0] + [cuts[k % len(cuts)] for k in range(len(ts))])
    frames = int(np.searchsorted(starts, len(ts)))
    calls = []
    for _ in range(draw(st.integers(0, 3))):
        frame = draw(st.integers(0, max(frames - 1, 0)))
        start = int(ts[min(starts[frame], len(ts) - 1)]) - draw(st.integers(0, 120 * S))
        length = draw(st.integers(1, 600 * S))
        later = draw(st.one_of(st.none(), st.integers(0, 4)))
        if later is None:
            calls.append((frame, start, start + length))
        else:  # open now, ended `later` frames on (or never, past the last frame)
            calls += [(frame, start, None), (frame + later, start, start + length)]
    return calls


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_streams(), st.data())
def test_generated_streams_batch_equals_the_live_engine_bit_for_bit(stream, data):
    trades, cuts, grace = stream
    live, live_stats = _live(trades, cuts, grace_us=grace)
    table = candle_table_from_trades(trades, exchange_symbol="BTCUSDT", symbol="BTC-USDT", grace_us=grace)
    _assert_identical(table.candles(), live)
    assert _batch_stats(trades, grace) == live_stats
    _assert_identical(_live(trades, cuts, compiled=True, grace_us=grace)[0], live)
    # with gaps reported between frames (has_gap, gap_candles): the compiled path against the array path
    gaps = data.draw(_gaps(trades, cuts))
    with_gaps, stats = _live(trades, cuts, grace_us=grace, gaps=gaps)
    compiled, compiled_stats = _live(trades, cuts, compiled=True, grace_us=grace, gaps=gaps)
    _assert_identical(compiled, with_gaps)
    assert compiled_stats == stats


def test_a_bad_side_names_its_row():
    trades = pd.DataFrame(
        {"timestamp": [T0, T0 + 1], "price": [1.0, 1.0], "amount": [1.0, 1.0], "side": ["buy", "BUY"]}
    )
    with pytest.raises(ValueError, match="trade row 1: side 'BUY'"):
        candles_from_trades(trades)


@pytest.mark.parametrize("kind", ["object", "category", "string[pyarrow]", "codes"])
def test_every_form_of_the_side_column_gives_the_same_candles(kind):
    trades = _trades("spot_btcusdt_20240809.gz")
    reference = candles_from_trades(trades)
    side = _codes(trades["side"]) if kind == "codes" else trades["side"].astype(kind)
    _assert_identical(candles_from_trades(trades.assign(side=side)), reference)


def test_in_pieces_the_same_candles_as_in_one(monkeypatch):
    """Text sides come in pieces (``sides.side_pieces``), the engine taking one while the next is encoded:
    the candles are those of the whole column at once (codes: one piece)."""
    from market_data_tick_handler.streaming_service.candle_processor import sides

    trades = _trades("spot_btcusdt_20240809.gz")
    reference = candles_from_trades(trades.assign(side=_codes(trades["side"])))
    monkeypatch.setattr(sides, "PIECE", 997)
    text = trades["side"].astype("string[pyarrow]")
    assert len(list(sides.side_pieces(text, len(text)))) > 10
    _assert_identical(candles_from_trades(trades.assign(side=text)), reference)
