"""Several exchanges in one process (README "Several exchanges", docs/ARCHITECTURE.md "Configuration":
``ingest.exchanges``): a replay of a Binance and a Deribit recording together (``--exchanges
binance,deribit``) gives exactly the candles and records of the two single-exchange replays, each
exchange's on its own channels and keys, and every run's ledger adds up.

Three runs of the whole pipeline as a user starts it (``python -m market_data_tick_handler.main``, which
spawns the Node ingester; serve mode into a private redis-server per run): Binance alone, Deribit alone,
both together. Binance is the repository's sample (data/sample/: real spot BTCUSDT trade frames, 3.5
minutes); no Deribit recording shares its time window, so the test writes one in Deribit's documented
notification format (https://docs.deribit.com/#trades-instrument_name-interval,
#ticker-instrument_name-interval) inside the Binance recording's exchange-time window, its trades in
consecutive 15 s buckets.

What has to be equal is what a run publishes, less the wall-clock stamps (``local_timestamp``,
``timestamp_out``): every message on every channel, in order, and every key Redis holds afterwards (the
candle streams, entry ids included, and the latest-candle hashes). The data types are trades, derivative
tickers, funding rates, gaps and candles: Binance spot has no derivative ticker, so its candles carry no
derivative features in either run, while Deribit's do (per exchange feature groups: the merged run's
start frame says what each exchange streams). The Deribit tickers before its candles close all carry the
same funding rate, open interest, mark and index price, so which frame a ticker reaches the processor in
(frames are cut by the event loop, not by the data) cannot change a feature; the last one, after every
Deribit candle's end, changes the funding rate (a second funding-rate record).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import redis

from market_data_tick_handler.devtools.local_redis import redis_server
from support.pipeline import Subscriber

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-trades.gz"
DERIBIT_WS = "wss://www.deribit.com/ws/api/v2"
#: trades, derivative tickers, funding rates, gaps and candles (what both recordings can have)
CONFIG = """data_types:
  book_snapshots: {enabled: false}
  liquidations: {enabled: false}
  options_chain: {enabled: false}
"""
STAMPS = ("local_timestamp", "timestamp_out")  # wall-clock: when the processor or tardis-dev did it
BUCKET_MS = 15_000
#: the ticker values every Deribit candle sees, and the funding rate of the last ticker
TICKER = {
    "index_price": 61_000.0,
    "mark_price": 61_001.0,
    "open_interest": 1_004_650.0,
    "funding_8h": 0.00002,
}
LAST_FUNDING = 0.00005


def binance_trade_times_ms() -> list[int]:
    """The exchange time (``T``) of every trade frame of the sample."""
    with gzip.open(SAMPLE, "rt") as f:
        return [json.loads(line.split(" ", 1)[1])["data"]["T"] for line in f if "@trade" in line]


def deribit_recording(path: Path, first_ms: int, last_ms: int) -> tuple[Path, list[dict], list[dict]]:
    """A cryptofeed capture of Deribit BTC-PERPETUAL within [first_ms, last_ms] (the Binance trades'
    window): a ticker just before the first Binance trade, a trade every 7 s (two or three per 15 s
    bucket), a ticker every 20 s, all with the ``TICKER`` values, and after the last trade a ticker
    with ``LAST_FUNDING`` beyond the end of its last 1 m candle (so no candle sees it). No two Deribit
    messages are 30 s apart (data_types.gaps.stale_after_ms) or 60 s (the clock's jump rule), so a
    replay of it alone and one merged with Binance see no gap. Returns the file, its trades and its
    tickers."""
    trades = []
    for k, ts in enumerate(range(first_ms + 865, last_ms - 5_000, 7_000)):
        trades.append(
            {
                "trade_seq": k + 1, "trade_id": f"D-{k + 1}", "timestamp": ts, "tick_direction": k % 4,
                "price": 61_000.0 + 2.5 * ((7 * k) % 11), "mark_price": 61_001.0, "index_price": 61_000.0,
                "instrument_name": "BTC-PERPETUAL", "direction": "buy" if k % 3 else "sell",
                "amount": 10.0 * (1 + k % 5),
            }
        )  # fmt: skip
    last_candle_end = (trades[-1]["timestamp"] // 60_000 + 1) * 60_000

    def ticker(ts: int, last_price: float, funding: float) -> dict[str, Any]:
        data = {
            "instrument_name": "BTC-PERPETUAL", "state": "open", "timestamp": ts, "last_price": last_price,
            **TICKER, "funding_8h": funding, "current_funding": funding,
            "best_bid_price": last_price - 0.5, "best_ask_price": last_price,
        }  # fmt: skip
        return {"ts": ts, "channel": "ticker.BTC-PERPETUAL.raw", "data": data}

    messages = [ticker(first_ms - 500, 60_990.0, TICKER["funding_8h"])]
    messages += [{"ts": t["timestamp"], "channel": "trades.BTC-PERPETUAL.raw", "data": [t]} for t in trades]
    messages += [
        ticker(ts, 61_000.0 + k, TICKER["funding_8h"])
        for k, ts in enumerate(range(first_ms + 20_000, last_candle_end, 20_000))
    ]
    messages.sort(key=lambda m: m["ts"])
    messages.append(ticker(last_candle_end + 5_000, 61_111.0, LAST_FUNDING))
    gaps = [b["ts"] - a["ts"] for a, b in pairwise(messages)]
    assert max(gaps) < 30_000, gaps
    t0 = messages[0]["ts"] / 1000 - 1
    lines = [f"{DERIBIT_WS} <-> {t0:.6f}"]
    for m in messages:
        notification = {
            "jsonrpc": "2.0",
            "method": "subscription",
            "params": {"channel": m["channel"], "data": m["data"]},
        }
        lines.append(f"{m['ts'] / 1000 + 0.05:.6f}: {json.dumps(notification)}")
    path.write_text("\n".join(lines) + "\n")
    return path, trades, [m["data"] for m in messages if m["channel"].startswith("ticker.")]


def _content(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k not in STAMPS}


def _keys(url: str) -> dict[str, Any]:
    """Every key Redis holds: a stream as [(entry id, message)], a hash as {field: message}, less stamps."""
    client = redis.Redis.from_url(url)
    out: dict[str, Any] = {}
    for raw in client.keys("*"):
        key = raw.decode()
        kind = client.type(raw).decode()
        if kind == "stream":
            out[key] = [(i.decode(), _content(orjson.loads(f[b"data"]))) for i, f in client.xrange(raw)]
        elif kind == "hash":
            out[key] = {k.decode(): _content(orjson.loads(v)) for k, v in client.hgetall(raw).items()}
        else:
            out[key] = kind
    client.close()
    return out


class Run:
    """One replay through the whole pipeline into its own redis-server: what it published, channel by
    channel in order, the keys it left, its stats and its log."""

    def __init__(self, tmp_path: Path, name: str, streams: list[str]) -> None:
        where = tmp_path / name
        where.mkdir()
        (where / "streaming.yaml").write_text(CONFIG)
        with redis_server() as url:
            sub = Subscriber(url, "*")
            cmd = [
                sys.executable, "-m", "market_data_tick_handler.main", "--mode", "streaming-candles-serve",
                "--config", str(where / "streaming.yaml"), "--source", "replay", "--speed", "max",
                "--redis-url", url, "--stats-json", str(where / "stats.json"), *streams,
            ]  # fmt: skip
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
            assert run.returncode == 0, f"{name}: exit {run.returncode}\n{run.stderr[-4000:]}"
            self.stderr = run.stderr
            self.stats = json.loads((where / "stats.json").read_text())
            sub.stop(self.stats["serve"]["messages_published"])
            self.keys = _keys(url)
        assert len(sub.messages) == self.stats["serve"]["messages_published"]
        self.channels: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for channel, message in sub.messages:
            self.channels[channel].append(_content(message))

    def candles(self, exchange: str, timeframe: str) -> list[dict[str, Any]]:
        return [m for m in self.channels.get(f"candles:{exchange}:{SYMBOL[exchange]}:{timeframe}", [])]

    def records(self) -> dict[str, int]:
        """Records published, by type (each on its two channels: counted on the one with the exchange)."""
        counts: dict[str, int] = defaultdict(int)
        for channel, messages in self.channels.items():
            if not channel.startswith("candles:") and channel.count(":") == 2:
                for m in messages:
                    counts[f"{m['exchange']} {m['type']}"] += 1
        return dict(sorted(counts.items()))


SYMBOL = {"binance": "BTC-USDT", "deribit": "BTC-USD-PERP"}  # the symbols (the seeds' form) of the two


def test_a_replay_of_binance_and_deribit_together_gives_the_candles_and_records_of_the_two_alone(tmp_path):
    times = binance_trade_times_ms()
    deribit, deribit_trades, tickers = deribit_recording(
        tmp_path / "deribit-btc-perpetual.txt", times[0], times[-1]
    )
    binance_args = ["--files", str(SAMPLE)]
    deribit_args = ["--files", str(deribit)]
    alone = {
        "binance": Run(
            tmp_path, "binance", ["--exchange", "binance", "--symbols", "BTC-USDT", *binance_args]
        ),
        "deribit": Run(
            tmp_path, "deribit", ["--exchange", "deribit", "--symbols", "BTC-PERPETUAL", *deribit_args]
        ),
    }
    both = Run(tmp_path, "both", [
        "--exchanges", "binance,deribit",
        "--symbols", "binance:BTC-USDT", "--symbols", "deribit:BTC-PERPETUAL",
        "--files", f"binance:{SAMPLE}", f"deribit:{deribit}",
    ])  # fmt: skip

    # every run's ledger adds up (a replay with a difference exits 1; the lines say so too)
    for run in (*alone.values(), both):
        assert all(line["ok"] for line in run.stats["ledger"]), run.stats["ledger"]

    # each exchange alone: its own channels and keys only, its trades all in its candles
    for exchange, run in alone.items():
        other = "deribit" if exchange == "binance" else "binance"
        for channel, messages in run.channels.items():
            assert other not in channel and SYMBOL[other] not in channel, channel
            assert {m["exchange"] for m in messages} == {exchange}, channel
        assert not [k for k in run.keys if other in k or SYMBOL[other] in k]
    binance_15s, deribit_15s = (
        alone["binance"].candles("binance", "15s"),
        alone["deribit"].candles("deribit", "15s"),
    )
    assert sum(c["candle"]["trade_count"] for c in binance_15s) == len(times)
    assert sum(c["candle"]["trade_count"] for c in deribit_15s) == len(deribit_trades)
    deribit_buckets = {t["timestamp"] // BUCKET_MS for t in deribit_trades}
    assert len([c for c in deribit_15s if c["candle"]["trade_count"]]) == len(deribit_buckets) >= 10
    assert sum(c["candle"]["volume"] for c in deribit_15s) == sum(t["amount"] for t in deribit_trades)
    # Deribit's candles carry the derivative features of its tickers; Binance spot has no tickers: none
    deribit_features = [c["hft_features"] for c in deribit_15s]
    assert all(f["funding_rate"] == TICKER["funding_8h"] for f in deribit_features)
    assert all(f["open_interest"] == TICKER["open_interest"] for f in deribit_features)
    assert all("funding_rate" not in c["hft_features"] for c in binance_15s)
    assert alone["deribit"].records() == {
        "deribit derivative_ticker": len(tickers),  # each with another last price
        "deribit funding_rate": 2,  # the first ticker's, and the last one's change
    }
    assert alone["binance"].records() == {}  # no gaps

    # together: exactly the two single runs, channel by channel in order, and key by key
    binance, deribit_run = alone["binance"], alone["deribit"]
    assert set(binance.channels).isdisjoint(deribit_run.channels) and set(binance.keys).isdisjoint(
        deribit_run.keys
    )
    assert both.channels == binance.channels | deribit_run.channels
    assert both.keys == binance.keys | deribit_run.keys
    # the merged start frame said what each exchange streams: Binance's missing ticker is named, though
    # Deribit streams tickers, and Deribit was missing nothing
    assert "derivative_ticker not available for binance" in both.stderr
    assert "not available for deribit" not in both.stderr

    for exchange, run in alone.items():
        by_tf = {tf: len(run.candles(exchange, tf)) for tf in ("15s", "1m", "5m", "15m", "4h", "24h")}
        print(f"\n{exchange} (alone = in the merged run): candles {by_tf}, records {run.records()}")
    serve = both.stats["serve"]
    print(
        f"merged run: {serve['candles_published']} candles, {serve['records_published']} records published;"
        f" {len(both.channels)} channels, {len(both.keys)} keys, all equal to the single runs'"
    )
