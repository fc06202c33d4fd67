"""ServeMode on a real redis-server and on the in-memory bus."""

import asyncio
import logging
import shutil
import subprocess
import time

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from market_data_tick_handler.devtools.local_redis import free_port
from market_data_tick_handler.redact import redact_url
from market_data_tick_handler.streaming_service import CandleBatch, LiveFeatureStream, ServeConfig, ServeMode
from market_data_tick_handler.streaming_service.candle_processor import Candle
from market_data_tick_handler.streaming_service.modes.serve_mode import StreamIds
from market_data_tick_handler.streaming_service.transport import InMemoryBus, InMemoryTransport

T_IN = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z


def _candle(tf="1m", close=61_700.5, t_in=T_IN, revision=0):
    return Candle(
        "binance",
        "BTC-USDT",
        "BTCUSDT",
        tf,
        t_in,
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
        revision,
    )


def _closes(entries):
    return [
        (entry_id.decode(), orjson.loads(fields[b"data"])["candle"]["close"]) for entry_id, fields in entries
    ]


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
    # kept too: one entry per candle in its stream, id = bucket start in ms, and the latest in a hash
    stream = await client.xrange("candles:stream:binance:BTC-USDT:1m")
    assert _closes(stream) == [("1723161600000-0", 61_700.5)]
    latest = orjson.loads(await client.hget("candles:latest:BTC-USDT:15s", "binance"))
    assert latest["timeframe"] == "15s" and latest["candle"]["close"] == 61_700.5
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


def test_stream_ids_increase_and_only_the_newest_bucket_is_the_latest():
    ids = StreamIds()
    key = "candles:stream:binance:BTC-USDT:1m"
    assert ids.next(key, 1_723_161_600_000, 0) == ("1723161600000-0", True)
    assert ids.next(key, 1_723_161_660_000, 0) == ("1723161660000-0", True)
    # a revision of the older bucket comes after the top, and does not replace the latest candle
    assert ids.next(key, 1_723_161_600_000, 1) == ("1723161660000-1", False)
    # a revision of the newest bucket whose natural id is taken gets the next one, and is the latest
    assert ids.next(key, 1_723_161_660_000, 1) == ("1723161660000-2", True)
    assert ids.next("candles:stream:binance:ETH-USDT:1m", 1_723_161_600_000, 0) == ("1723161600000-0", True)


async def test_frames_wait_while_redis_is_down_and_arrive_in_order_once_it_is_back(restartable_redis):
    client = aioredis.Redis.from_url(restartable_redis.url)
    serve = ServeMode(ServeConfig(transport="redis", redis_url=restartable_redis.url))
    await serve.start()
    minute = 60_000_000
    await serve.publish(CandleBatch.from_candles([_candle(close=1.0)]), T_IN + minute)
    restartable_redis.kill()
    await serve.publish(CandleBatch.from_candles([_candle(close=2.0, t_in=T_IN + minute)]), T_IN + 2 * minute)
    await serve.publish(
        CandleBatch.from_candles([_candle(close=3.0, t_in=T_IN + 2 * minute)]), T_IN + 3 * minute
    )
    assert serve.get_stats()["backlog_frames"] == 2  # publish returned: the processor is not held up
    await asyncio.sleep(0.3)  # the backlog is retried meanwhile (0.05 s, then 0.1 s, ...) and fails
    restartable_redis.start()
    assert await serve.flush(10)
    stats = serve.get_stats()
    assert stats["candles_published"] == 3 and stats["candles_lost"] == 0 and stats["publish_retries"] >= 1
    assert _closes(await client.xrange("candles:stream:binance:BTC-USDT:1m")) == [
        ("1723161600000-0", 1.0),
        ("1723161660000-0", 2.0),
        ("1723161720000-0", 3.0),
    ]
    assert orjson.loads(await client.hget("candles:latest:BTC-USDT:1m", "binance"))["candle"]["close"] == 3.0
    # the same candles sent again (a processor that re-sends after a failure, or replays) are not added twice
    again = ServeMode(ServeConfig(transport="redis", redis_url=restartable_redis.url))
    await again.start()
    await again.publish(CandleBatch.from_candles([_candle(close=2.0, t_in=T_IN + minute)]), T_IN + 2 * minute)
    assert again.get_stats()["stream_duplicates"] == 1
    assert await client.xlen("candles:stream:binance:BTC-USDT:1m") == 3
    await again.close()
    await serve.close()
    await client.aclose()


async def test_backlog_overflow_and_shutdown_with_redis_down_are_counted_as_lost(restartable_redis, caplog):
    serve = ServeMode(
        ServeConfig(transport="redis", redis_url=restartable_redis.url, backlog_mb=0, close_timeout_s=0.3)
    )
    await serve.start()
    restartable_redis.kill()
    minute = 60_000_000
    for k in range(3):
        await serve.publish(
            CandleBatch.from_candles([_candle(t_in=T_IN + k * minute)]), T_IN + (k + 1) * minute
        )
    stats = serve.get_stats()
    assert stats["candles_lost"] == 2 and stats["backlog_frames"] == 1  # the newest frame is kept
    await serve.close()
    assert serve.get_stats()["candles_lost"] == 3
    assert "dropped the oldest frame" in caplog.text and "3 candles" not in caplog.text
    assert "1 candles and 0 records not published" in caplog.text


async def test_a_refused_command_is_an_error_and_the_rest_of_the_frame_goes_through(redis_url, caplog):
    client = aioredis.Redis.from_url(redis_url)
    await client.set("candles:latest:BTC-USDT:1m", "not a hash")  # HSET on it fails with WRONGTYPE
    serve = ServeMode(ServeConfig(transport="redis", redis_url=redis_url))
    await serve.start()
    await serve.publish(CandleBatch.from_candles([_candle(close=7.0)]), T_IN + 60_000_000)
    assert serve.get_stats()["publish_errors"] == 1 and serve.get_stats()["backlog_frames"] == 0
    assert "WRONGTYPE" in caplog.text
    assert _closes(await client.xrange("candles:stream:binance:BTC-USDT:1m")) == [("1723161600000-0", 7.0)]
    await serve.close()
    await client.aclose()


async def test_inmemory_transport_keeps_streams_and_latest_like_redis():
    bus = InMemoryBus()
    serve = ServeMode(ServeConfig(transport="inmemory"), transport=InMemoryTransport(bus, stream_maxlen=2))
    await serve.start()
    for k, close in enumerate((1.0, 2.0, 3.0)):
        batch = CandleBatch.from_candles([_candle(close=close, t_in=T_IN + k * 60_000_000)])
        await serve.publish(batch, T_IN + (k + 1) * 60_000_000)
    stream = bus.xrange_after("candles:stream:binance:BTC-USDT:1m", (0, 0))
    assert [(key, orjson.loads(p)["candle"]["close"]) for key, p in stream] == [
        ((1_723_161_660_000, 0), 2.0),
        ((1_723_161_720_000, 0), 3.0),
    ]  # capped at 2
    assert orjson.loads(bus.hget("candles:latest:BTC-USDT:1m", "binance"))["candle"]["close"] == 3.0
    assert bus.hkeys("candles:latest:BTC-USDT:1m") == ["binance"]


@pytest.fixture
def tls_acl_redis(tmp_path):
    """A real redis-server that speaks only TLS and knows only the ACL user ``app`` (password ``s3cret``)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make the test certificate")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp_path / "key.pem",
         "-out", tmp_path / "cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", tmp_path / "cert.pem", "--tls-key-file", tmp_path / "key.pem",
         "--tls-ca-cert-file", tmp_path / "cert.pem", "--tls-auth-clients", "no", "--save", "",
         "--appendonly", "no", "--dir", tmp_path, "--user", "app", "on", ">s3cret", "~*", "&*", "+@all",
         "--user", "default", "off"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"rediss://app:s3cret@127.0.0.1:{port}/0?ssl_ca_certs={tmp_path / 'cert.pem'}"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


async def test_tls_and_an_acl_user_with_a_password_work_and_the_password_is_never_logged(
    tls_acl_redis, caplog
):
    caplog.set_level(logging.DEBUG)
    serve = ServeMode(ServeConfig(transport="redis", redis_url=tls_acl_redis))
    await serve.start()
    await serve.publish(CandleBatch.from_candles([_candle(close=61_700.5)]), T_IN + 60_000_000)
    async with LiveFeatureStream("BTC-USDT", "1m", "binance", tls_acl_redis, last=1) as stream:
        candle = await anext(aiter(stream))
    assert candle["candle"]["close"] == 61_700.5 and candle["timestamp_in"] == "2024-08-09T00:00:00.000000Z"
    await serve.close()
    # a wrong password is refused, not retried forever, and not logged either
    wrong = tls_acl_redis.replace("s3cret", "wr0ng-pass")
    with pytest.raises(redis.AuthenticationError):
        async with LiveFeatureStream("BTC-USDT", "1m", "binance", wrong) as stream:
            pass
    assert "rediss://app:***@127.0.0.1" in caplog.text
    assert "s3cret" not in caplog.text and "wr0ng-pass" not in caplog.text


async def test_without_serve_mode_printed_candles_are_the_messages():
    """--print-candles with no serve mode: the console sink gets each closed candle's message."""
    from market_data_tick_handler.config import StreamingConfig
    from market_data_tick_handler.streaming_service.console import CandleTable
    from market_data_tick_handler.streaming_service.service import StreamingService

    got: list[dict] = []

    class Collect(CandleTable):
        def __call__(self, message):
            got.append(message)

    service = StreamingService(StreamingConfig(), [Collect()])
    await service.publish([CandleBatch.from_candles([_candle("15s"), _candle("1m", close=7.25)])], [], T_IN)
    assert [(m["timeframe"], m["candle"]["close"]) for m in got] == [("15s", 61_700.5), ("1m", 7.25)]
    assert got[1]["timestamp_in"] == "2024-08-09T00:00:00.000000Z" and got[1]["candle"]["trade_count"] == 42
