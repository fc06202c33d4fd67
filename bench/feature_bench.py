"""``make bench``, part 2: HFT features per closed candle, and the publish latency of a candle-boundary burst.

1. Feature cost per candle: the compiled step over 100 series at once (a live boundary), and a historical
   batch of 100,000 candles of one series (engine only, and ``compute_batch`` with its records).
2. Boundary burst, in one process on the real parts: 100 symbols with trades in every 15 s bucket,
   candles on 15s and 1m, features on both, published by ServeMode to a private redis-server with a
   ``redis-cli`` subscriber on one of the channels, over TCP and over the server's unix socket. The
   wall clock is driven by the bench: each minute boundary closes 100 x 2 candles at once. Measured:
   from the clock passing the boundary (``TickHandler.advance``) until Redis has acknowledged every
   command of those candles (3 PUBLISH, XADD, HSET each); p50/p99 over the bursts, split into close +
   features and serialise + publish. Baseline, same run: the same bursts with features off. Before its
   first burst each run does what the service does at start (``hot_path.prepare``).
3. The floor: the same bursts' commands, packed beforehand and written on a raw socket (TCP, and unix),
   timed until Redis's reply to the closing PING. No publisher of these commands can be faster on this
   machine.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from market_data_tick_handler.config import ServeConfig
from market_data_tick_handler.devtools.local_redis import RedisServer
from market_data_tick_handler.streaming_service import HFTFeatureCalculator, ServeMode, hot_path
from market_data_tick_handler.streaming_service.hft_features import CandleInputs, FeatureEngine
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler
from market_data_tick_handler.streaming_service.transport import PublishResult
from market_data_tick_handler.streaming_service.transport.redis_transport import PING, PONG, pack_entries
from market_data_tick_handler.wire import encode_frame

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_bench import machine

SYMBOLS = 100
MINUTE = 60_000_000
BUCKET = 15_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z
SUBSCRIBE = ["subscribe", "candles:SYM000-USDT:1m"]


def per_candle_cost() -> None:
    rng = np.random.default_rng(7)
    engine, lanes, steps = FeatureEngine(), np.arange(SYMBOLS), 3000
    inputs = []
    for t in range(steps):
        close = 100 * np.exp(rng.normal(0, 0.001, SYMBOLS))
        volume = rng.exponential(1.0, SYMBOLS)
        inputs.append(
            CandleInputs(timestamp_in=np.full(SYMBOLS, t * MINUTE), close=close, high=close * 1.001,
                         low=close * 0.999, volume=volume, buy_volume=volume / 2, sell_volume=volume / 2,
                         vwap=close, trade_count=np.full(SYMBOLS, 10.0))
        )  # fmt: skip
    for x in inputs[:50]:
        engine.step(lanes, x, MINUTE)
    start = time.perf_counter()
    for x in inputs[50:]:
        engine.step(lanes, x, MINUTE)
    live = (time.perf_counter() - start) / (steps - 50)
    n = 100_000
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    history = CandleInputs(timestamp_in=np.arange(n) * MINUTE, close=close, high=close, low=close,
                           volume=np.ones(n), buy_volume=np.ones(n), sell_volume=np.zeros(n), vwap=close,
                           trade_count=np.ones(n))  # fmt: skip
    start = time.perf_counter()
    FeatureEngine().run(0, history, MINUTE)
    run = (time.perf_counter() - start) / n
    start = time.perf_counter()
    asyncio.run(HFTFeatureCalculator("BTC-USDT").compute_batch({"close": close[:20_000]}, "1m"))
    records = (time.perf_counter() - start) / 20_000
    print(
        f"features   per candle: live step over {SYMBOLS} series {live / SYMBOLS * 1e6:.2f} us"
        f" ({live * 1e6:.0f} us per boundary); history one series {run * 1e6:.2f} us (engine),"
        f" {records * 1e6:.1f} us (compute_batch, with HFTFeatures records)",
        flush=True,
    )


def trade_frame(seq: int, bucket_start: int, rng: np.random.Generator, per_symbol: int = 5) -> bytes:
    n = SYMBOLS * per_symbol
    return encode_frame(
        {
            "type": "trade", "seq": seq, "session": "bench", "recv_mono_us": 0, "sent_mono_us": 0,
            "symbols": [["binance", f"sym{i:03d}usdt"] for i in range(SYMBOLS)],
        },
        {
            "sym": np.repeat(np.arange(SYMBOLS), per_symbol),
            "timestamp": bucket_start + np.sort(rng.integers(0, BUCKET, n)),
            "local_timestamp": np.full(n, bucket_start),
            "price": 100 * np.exp(rng.normal(0, 0.001, n)),
            "amount": rng.exponential(1.0, n),
            "side": rng.integers(1, 3, n),
            "id": [""] * n,
        },
    )  # fmt: skip


class Recorder:
    """A transport that keeps the RESP of each frame instead of sending it."""

    name = "recorder"

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def describe(self) -> str:
        return "recorder"

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def publish_many(self, chunks) -> PublishResult:
        self.frames.append(b"".join(b"".join(pack_entries(c, 1000)) for c in chunks) + PING)
        return PublishResult()


def measured(i: int, size: int) -> bool:
    """Minute boundaries (200 candles), after the 20-candle windows filled."""
    return size == 2 * SYMBOLS and i > 4 * 25


async def bursts(redis_url: str, features: bool, minutes: int, recorder: Recorder | None = None) -> dict:
    clock = [T0]
    timeframes = ("15s", "1m")
    settings = CandleSettings(timeframes, "wall", 0, hft_timeframes=timeframes if features else ())
    handler = TickHandler(settings, now=lambda: clock[0])
    serve = ServeMode(ServeConfig(transport="redis", redis_url=redis_url), transport=recorder)
    await serve.start()
    if recorder is None:
        await serve.transport._client.flushall()  # each run starts on empty streams
    rng = np.random.default_rng(1)
    frames = [trade_frame(i, T0 + i * BUCKET, rng) for i in range(minutes * 4)]
    hot_path.prepare(features)  # as the service does before its first frame
    close_us, publish_us, total_us, recorded = [], [], [], []
    for i, frame in enumerate(frames):
        handler.handle_bytes(frame)
        clock[0] = T0 + (i + 1) * BUCKET  # the bucket's end: the boundary
        t0 = time.perf_counter_ns()
        closed = handler.advance(clock[0])
        t1 = time.perf_counter_ns()
        for batch in closed:
            await serve.publish(batch, clock[0])
        t2 = time.perf_counter_ns()
        if measured(i, sum(len(b) for b in closed)):
            close_us.append((t1 - t0) / 1000)
            publish_us.append((t2 - t1) / 1000)
            total_us.append((t2 - t0) / 1000)
            if recorder is not None:
                recorded.append(recorder.frames[-1])
    await serve.close()
    return {
        "close": np.array(close_us),
        "publish": np.array(publish_us),
        "total": np.array(total_us),
        "recorded": recorded,
    }


def redis_floor(address: tuple[str, int] | str, frames: list[bytes]) -> np.ndarray:
    """Each frame written at once on a raw socket (TCP ``(host, port)``, or a unix socket's path), timed
    until Redis has answered all of it."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(address)
    else:
        sock = socket.create_connection(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with sock:
        sock.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
        sock.recv(64)
        took = []
        for frame in frames:
            t0 = time.perf_counter_ns()
            sock.sendall(frame)
            tail = b""
            while not tail.endswith(PONG):
                tail = (tail + sock.recv(1 << 20))[-len(PONG) :]
            took.append((time.perf_counter_ns() - t0) / 1000)
    return np.array(took)


def full_collection_ms() -> float:
    start = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - start) * 1000


def pct(values: np.ndarray, q: float) -> str:
    return f"{np.percentile(values, q, method='higher') / 1000:.2f} ms"


def subscribed(port: str):
    """A ``redis-cli`` subscriber on one of the channels, as a strategy service would be."""
    cli = shutil.which("redis-cli") or "redis-cli"
    return subprocess.Popen([cli, "-p", port, *SUBSCRIBE], stdout=subprocess.DEVNULL)


def main() -> None:
    print(f"machine: {machine()}", flush=True)
    per_candle_cost()
    objects, unfrozen = len(gc.get_objects()), full_collection_ms()
    minutes = 400
    server = RedisServer().start()
    subscriber = subscribed(str(server.port))
    try:
        time.sleep(0.3)
        results = {f: asyncio.run(bursts(server.url, f, minutes)) for f in (False, True)}
        unix = asyncio.run(bursts(server.unix_url, True, minutes))
        recorder = Recorder()
        recorded = asyncio.run(bursts(server.url, True, minutes, recorder))["recorded"]
        floor = redis_floor(("127.0.0.1", server.port), recorded)
        floor_unix = redis_floor(f"{server.directory}/redis.sock", recorded)
    finally:
        subscriber.terminate()
        server.stop()
    print(
        f"gc         a full collection over the {objects:,} objects of a started processor:"
        f" {unfrozen:.1f} ms;"
        f" after the start-up freeze (hot_path.prepare): {full_collection_ms():.2f} ms",
        flush=True,
    )
    base, with_features = results[False]["total"], results[True]["total"]
    for label, r in (
        ("without features (baseline)", results[False]),
        ("with features", results[True]),
        ("with features, unix socket", unix),
    ):
        print(
            f"burst      {SYMBOLS} symbols x 2 timeframes = {2 * SYMBOLS} candles, {label}:"
            f" boundary -> all published p50 {pct(r['total'], 50)}, p99 {pct(r['total'], 99)}"
            f" (close{' + features' if r is not results[False] else ''} p50 {pct(r['close'], 50)},"
            f" serialise + publish p50 {pct(r['publish'], 50)}; {len(r['total'])} bursts)",
            flush=True,
        )
    for label, took in (("TCP", floor), ("unix socket", floor_unix)):
        print(
            f"burst      floor, {label}: the same {len(recorded)} bursts with features, packed beforehand"
            f" ({np.mean([len(f) for f in recorded]) / 1e6:.2f} MB each) and written on a raw socket:"
            f" Redis answers all of a burst after p50 {pct(took, 50)}, p99 {pct(took, 99)}",
            flush=True,
        )
    print(
        f"burst      features add {np.median(with_features) / np.median(base) - 1:+.0%} at p50"
        f" (p99 ratio {np.percentile(with_features, 99) / np.percentile(base, 99):.2f}); target p99 < 2 ms",
        flush=True,
    )


if __name__ == "__main__":
    main()
