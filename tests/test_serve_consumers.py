"""Serve mode as strategy services use it (issue 5): the whole pipeline (Node ingester, tardis-dev,
ZeroMQ, processor) replays real Binance trades into a real redis-server, and consumers in their own
processes read the candles with ``LiveFeatureStream``. Expected candles are computed by this test from the
raw frames (support/binance_reference.py); RSI from TA-Lib."""

import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import talib

from support.binance_reference import BINANCE_WS, assert_candles_match, expected_candles, read_trades
from support.pipeline import LineReader, read_stats, replay, replay_command
from support.pipeline import us as _us

FILES = [BINANCE_WS / "spot_btcusdt_20240808.gz", BINANCE_WS / "spot_btcusdt_20240809.gz"]
CONSUMER = str(Path(__file__).parent / "support" / "stream_consumer.py")

# the seeds' consumer example ("In another terminal, consume features"), as written there
SEED_CONSUMER_EXAMPLE = """
from market_data_tick_handler.streaming_service import LiveFeatureStream
import asyncio

async def consume():
    async with LiveFeatureStream(symbol='BTC-USDT', timeframe='1m') as stream:
        async for candle in stream:
            print(f'Received: {candle["symbol"]} @ ${candle["candle"]["close"]}')
            if 'hft_features' in candle:
                print(f'  RSI: {candle["hft_features"]["rsi_5"]}')

asyncio.run(consume())
"""


def _env(redis_url: str) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}


def _consumer(redis_url: str, timeframe: str, count: int, *extra: str) -> LineReader:
    cmd = [sys.executable, CONSUMER, "--symbol", "BTC-USDT", "--timeframe", timeframe, "--count", str(count)]
    reader = LineReader([*cmd, *extra], env=_env(redis_url))
    assert reader.wait_for(1, 30) and reader.lines[0] == {"ready": True}, reader.finish(1)
    return reader


def _as_reference(messages: list[dict]) -> list[dict]:
    return [
        {
            **m["candle"],
            "timestamp_in": _us(m["timestamp_in"]),
            "first_trade_time": _us(m["candle"]["first_trade_time"]),
            "last_trade_time": _us(m["candle"]["last_trade_time"]),
        }
        for m in messages
    ]


def test_seed_consumer_example_receives_every_candle_of_a_replay(redis_url, tmp_path):
    expected = expected_candles(read_trades(*FILES), "1m")
    example = [sys.executable, "-c", SEED_CONSUMER_EXAMPLE]
    consumer = LineReader(example, env=_env(redis_url), json_lines=False)
    time.sleep(1.0)  # let it connect first; it waits for the first candle of BTC-USDT on any exchange
    run, _ = replay(FILES, "binance", "btcusdt", redis_url, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    consumer.wait_for(2 * len(expected), 30)
    consumer.proc.terminate()
    consumer.finish(10)
    received = [line for line in consumer.lines if line.startswith("Received: ")]
    rsi = [line for line in consumer.lines if line.startswith("  RSI: ")]
    closes = [c["close"] for c in expected]
    assert received == [f"Received: BTC-USDT @ ${close}" for close in closes]  # every candle once, in order
    reference = talib.RSI(np.array(closes), 5)
    assert len(rsi) == len(expected)
    for line, want in zip(rsi, reference, strict=True):
        value = line.removeprefix("  RSI: ")
        if math.isnan(want):
            assert value == "None"
        else:
            assert math.isclose(float(value), want, rel_tol=1e-9), (value, want)


def test_a_consumer_sees_every_candle_once_across_a_redis_kill_and_restart(restartable_redis, tmp_path):
    url = restartable_redis.url
    expected = expected_candles(read_trades(*FILES), "15s")
    consumer = _consumer(url, "15s", len(expected), "--exchange", "binance", "--last", "0")
    cmd = replay_command(FILES, "binance", "btcusdt", url, tmp_path, speed="60")  # ~11 s of trades
    processor = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert consumer.wait_for(1 + 8, 60), consumer.finish(1)
    restartable_redis.kill()  # SIGKILL, in the middle of the replay
    time.sleep(1.5)  # the processor keeps going, its candles wait; the consumer retries
    restartable_redis.start()
    _out, err = processor.communicate(timeout=120)
    assert processor.returncode == 0, err[-3000:]
    assert consumer.wait_for(1 + len(expected) + 1, 60), consumer.finish(1)
    consumer.finish(10)
    candles, stats = consumer.lines[1:-1], consumer.lines[-1]["stats"]
    assert_candles_match(
        _as_reference(candles), expected, "15s across a Redis restart"
    )  # once each, in order
    assert stats["reconnects"] >= 1 and stats["holes"] == 0, stats
    serve = read_stats(tmp_path)["serve"]
    assert serve["backlog_max_frames"] >= 1 and serve["candles_lost"] == 0, serve
    assert serve["candles_published"] == sum(read_stats(tmp_path)["candles_by_timeframe"]["binance"].values())


def test_a_slow_consumer_does_not_hold_up_the_processor(redis_url, tmp_path):
    expected = expected_candles(read_trades(*FILES), "15s")
    hold = tmp_path / "go"
    consumer = _consumer(
        redis_url, "15s", len(expected), "--exchange", "binance", "--last", "0", "--hold", str(hold)
    )
    # and a pub/sub subscriber that never reads what it is sent
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    idle = socket.create_connection((host, int(port)))
    idle.sendall(b"PSUBSCRIBE candles:*\r\n")
    run, stats = replay(FILES, "binance", "btcusdt", redis_url, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    # every candle was published, at once, while the consumer had read none of them
    serve = stats["serve"]
    assert serve["candles_published"] == sum(stats["candles_by_timeframe"]["binance"].values())
    assert serve["backlog_max_frames"] == 0 and serve["publish_retries"] == 0 and serve["candles_lost"] == 0
    assert len(consumer.lines) == 1
    hold.touch()
    assert consumer.wait_for(1 + len(expected) + 1, 60), consumer.finish(1)
    consumer.finish(10)
    assert_candles_match(_as_reference(consumer.lines[1:-1]), expected, "15s, read after the replay ended")
    idle.close()
    assert consumer.lines[-1]["stats"]["holes"] == 0
