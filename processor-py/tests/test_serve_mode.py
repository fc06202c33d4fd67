"""ServeMode on a real redis-server and on the in-memory bus."""

import orjson
import redis.asyncio as aioredis

from market_data_tick_handler.redact import redact_url
from market_data_tick_handler.streaming_service import CandleBatch, ServeConfig, ServeMode
from market_data_tick_handler.streaming_service.candle_processor import Candle
from market_data_tick_handler.streaming_service.transport import InMemoryBus, InMemoryTransport

T_IN = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z


def _candle(tf="1m", close=61_700.5):
    return Candle(
        "binance",
        "BTC-USDT",
        "BTCUSDT",
        tf,
        T_IN,
        61_600.0,
        61_800.25,
        61_500.0,
        close,
        2.5,
        1.5,
        1.0,
        61_650.0,
        42,
        T_IN + 1_000,
        T_IN + 59_999_000,
        False,
        False,
        False,
        0,
    )


async def test_publish_reaches_the_three_channels_in_one_round_trip(redis_url):
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.psubscribe("candles:*")
    await pubsub.get_message(timeout=1)
    serve = ServeMode(ServeConfig(transport="redis", redis_url=redis_url))
    await serve.start()
    await serve.publish(CandleBatch.from_candles([_candle("15s"), _candle("1m")]), T_IN + 60_250_123)
    got = []
    while len(got) < 6:
        message = await pubsub.get_message(timeout=2)
        if message and message["type"] == "pmessage":
            got.append((message["channel"].decode(), orjson.loads(message["data"])))
    assert [ch for ch, _ in got] == [
        "candles:BTC-USDT:15s",
        "candles:BTC-USDT",
        "candles:binance:BTC-USDT:15s",
        "candles:BTC-USDT:1m",
        "candles:BTC-USDT",
        "candles:binance:BTC-USDT:1m",
    ]
    body = got[3][1]
    assert body["timestamp_in"] == "2024-08-09T00:00:00.000000Z"
    assert body["local_timestamp"] == "2024-08-09T00:01:00.250123Z"
    assert body["timestamp_out"] >= body["local_timestamp"]
    assert body["candle"]["first_trade_time"] == "2024-08-09T00:00:00.001000Z"
    assert body["candle"] | {} == {**body["candle"], "close": 61_700.5, "trade_count": 42, "vwap": 61_650.0}
    assert "hft_features" not in body  # 15s and 1m carry it only when features are computed
    assert serve.get_stats()["round_trips"] == 1 and serve.get_stats()["candles_published"] == 2
    await serve.close()
    await pubsub.aclose()
    await client.aclose()


async def test_inmemory_bus_matches_patterns():
    bus = InMemoryBus()
    queue = bus.subscribe("candles:binance:*")
    other = bus.subscribe("candles:ETH-USDT")
    serve = ServeMode(ServeConfig(transport="inmemory"), transport=InMemoryTransport(bus))
    await serve.start()
    await serve.publish(CandleBatch.from_candles([_candle()]), T_IN + 60_250_123)
    assert queue.qsize() == 1 and other.qsize() == 0
    channel, payload = queue.get_nowait()
    assert channel == "candles:binance:BTC-USDT:1m" and orjson.loads(payload)["candle"]["close"] == 61_700.5


def test_credentials_never_reach_the_log_form():
    assert redact_url("rediss://app:s3cret@cache.example:6380/2") == "rediss://app:***@cache.example:6380/2"
    assert redact_url("redis://:s3cret@localhost:6379") == "redis://***@localhost:6379"
    assert redact_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
