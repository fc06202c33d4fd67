"""``LiveTickStreamer`` on the real Node ingester: a replay of the sample recording yields, one tick per
trade, exactly the trades of the raw file (parsed here from Binance's payload: ``T`` ms, ``p``, ``q``,
``m`` true when the taker sold, ``t`` the id), in order, then ends with the session. ~5 s."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest

from market_data_tick_handler.streaming_service.live_tick_streamer import LiveTickStreamer, Tick
from support.binance_reference import recorded_local_us

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-trades.gz"


def _raw_trades() -> list[tuple]:
    out = []
    with gzip.open(SAMPLE, "rt") as fh:
        for line in fh:
            _, _, payload = line.partition(" ")
            message = json.loads(payload)
            if not message["stream"].endswith("@trade"):
                continue
            d = message["data"]
            side = "sell" if d["m"] else "buy"
            out.append((d["T"] * 1000, float(d["p"]), float(d["q"]), side, str(d["t"])))
    return out


async def test_a_replay_yields_every_trade_of_the_file_then_ends():
    raw = _raw_trades()
    assert len(raw) == 8020
    got: list[Tick] = []
    streamer = LiveTickStreamer(exchange="binance", symbols=["BTC-USDT"], data_types=["trades"],
                                source="replay", files=[str(SAMPLE)], speed="max")  # fmt: skip
    async with streamer as ticks:
        async for tick in ticks:
            got.append(tick)
    assert {(t.type, t.exchange, t.symbol, t.exchange_symbol) for t in got} == {
        ("trade", "binance", "BTC-USDT", "BTCUSDT")
    }
    assert [(t.timestamp, t["price"], t["amount"], t["side"], t["id"]) for t in got] == raw
    # the local timestamp, in µs: a replay at speed max stamps each trade with the receive time its
    # line was recorded with
    recorded = recorded_local_us(SAMPLE)
    assert [t.local_timestamp for t in got] == [recorded[t["id"]] for t in got]
    assert streamer.end_header is not None and streamer.end_header["reason"] == "replay_finished"
    assert streamer.ingester is not None and streamer.ingester.returncode == 0
    assert got[0].as_dict()["price"] == raw[0][1]


async def test_leaving_early_ends_the_ingesters_session_and_leaves_no_process():
    streamer = LiveTickStreamer(exchange="binance", symbols=["btcusdt"], source="replay",
                                files=[str(SAMPLE)], speed="1")  # fmt: skip
    async with streamer as ticks:
        first = await anext(ticks)
        pid = streamer.ingester._proc.pid
    assert first.type == "trade" and first.symbol == "BTC-USDT"
    assert streamer.ingester.returncode is not None
    alive = subprocess.run(["kill", "-0", str(pid)], capture_output=True, check=False).returncode == 0
    assert not alive


def test_an_unknown_data_type_is_refused():
    with pytest.raises(ValueError, match="data type 'candles!'"):
        LiveTickStreamer(data_types=["candles!"])
