"""LiveFeatureStream and the ``consume`` CLI, on a real redis-server and on the in-memory bus.

The producer side is written here directly (``XADD ... MAXLEN ~ 1000 <bucket ms>-<revision> data <json>``
and ``HSET candles:latest:...``, as the processor does), with hand-made candle messages, so that every
expected value below is one written into an entry.
"""

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable

import orjson
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from market_data_tick_handler.devtools.local_redis import free_port
from market_data_tick_handler.streaming_service import LiveFeatureStream
from market_data_tick_handler.streaming_service.keys import (
    STREAM_FIELD,
    candle_latest_key,
    candle_stream_key,
)
from market_data_tick_handler.streaming_service.transport import InMemoryBus

T0_MS = 1_723_161_600_000  # 2024-08-09T00:00:00Z
BINANCE = "candles:stream:binance:BTC-USDT:1m"
OKX = "candles:stream:okx:BTC-USDT:1m"
BYBIT = "candles:stream:bybit:BTC-USDT:1m"


def candle(minute, close, exchange="binance", revision=0, empty=False, **features):
    """A 1m BTC-USDT candle message of bucket 00:{minute}; ``features`` go into ``hft_features`` (the
    message has none when no feature is given)."""
    message = {
        "type": "candle",
        "exchange": exchange,
        "symbol": "BTC-USDT",
        "exchange_symbol": "BTCUSDT",
        "timeframe": "1m",
        "timestamp_in": f"2024-08-09T00:{minute:02d}:00.000000Z",
        "local_timestamp": f"2024-08-09T00:{minute + 1:02d}:00.000150Z",
        "timestamp_out": f"2024-08-09T00:{minute + 1:02d}:00.000400Z",
        "candle": {
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": 0.0 if empty else 1.5,
            "buy_volume": 0.0 if empty else 1.0,
            "sell_volume": 0.0 if empty else 0.5,
            "vwap": None if empty else close,
            "trade_count": 0 if empty else 3,
            "first_trade_time": None,
            "last_trade_time": None,
            "is_empty": empty,
            "has_gap": False,
            "is_partial": False,
            "revision": revision,
        },
    }
    if features:
        message["hft_features"] = features
    return message


def entry_id(minute, seq=0):
    return f"{T0_MS + minute * 60_000}-{seq}"


class RedisProducer:
    """Writes as the processor does; ``write`` retries until Redis takes the entry (an XADD refused as
    not above the top is one that had arrived before the connection dropped)."""

    def __init__(self, url, maxlen=1000, approximate=True):
        self.client = aioredis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1)
        self.maxlen, self.approximate = maxlen, approximate

    async def write(self, message, seq=0, on_failure: Callable[[], None] = lambda: None):
        exchange, minute = message["exchange"], int(message["timestamp_in"][14:16])
        payload = orjson.dumps(message)
        while True:
            try:
                with contextlib.suppress(ResponseError):  # already there
                    await self.client.xadd(
                        candle_stream_key(exchange, "BTC-USDT", "1m"),
                        {STREAM_FIELD: payload},
                        id=entry_id(minute, seq),
                        maxlen=self.maxlen,
                        approximate=self.approximate,
                    )
                await self.client.hset(candle_latest_key("BTC-USDT", "1m"), exchange, payload)
                return
            except (RedisConnectionError, RedisTimeoutError, OSError):
                on_failure()
                await asyncio.sleep(0.05)

    async def close(self):
        await self.client.aclose()


class BusProducer:
    def __init__(self, bus, maxlen=1000, approximate=True):
        self.bus, self.maxlen = bus, maxlen

    async def write(self, message, seq=0):
        exchange, minute = message["exchange"], int(message["timestamp_in"][14:16])
        payload = orjson.dumps(message)
        self.bus.xadd(
            candle_stream_key(exchange, "BTC-USDT", "1m"), entry_id(minute, seq), payload, self.maxlen
        )
        self.bus.hset(candle_latest_key("BTC-USDT", "1m"), exchange, payload)

    async def close(self):
        return None


class Backend:
    """Where candles are written and read: ``where`` are the LiveFeatureStream arguments that select it
    (none for Redis: the URL is in $REDIS_URL)."""

    def __init__(self, make_producer, where):
        self.make_producer, self.where = make_producer, where
        self.producers = []

    def producer(self, **kwargs):
        self.producers.append(self.make_producer(**kwargs))
        return self.producers[-1]

    def stream(self, **kwargs):
        return LiveFeatureStream(**{"block_ms": 200, **self.where, **kwargs})


@pytest.fixture(params=["redis", "inmemory"])
async def backend(request, monkeypatch):
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        monkeypatch.setenv("REDIS_URL", url)
        backend = Backend(lambda **kw: RedisProducer(url, **kw), {})
    else:
        bus = InMemoryBus()
        backend = Backend(lambda **kw: BusProducer(bus, **kw), {"transport": "inmemory", "bus": bus})
    yield backend
    for producer in backend.producers:
        await producer.close()


async def take(stream, n, timeout=10):
    async def collect():
        return [await anext(stream) for _ in range(n)]

    return await asyncio.wait_for(collect(), timeout)


async def until(condition, timeout=10):
    """Wait for ``condition()`` to hold (a bound on a wait, not a timing assertion)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def closes(messages):
    return [m["candle"]["close"] for m in messages]


async def test_the_consumer_example_prints_the_latest_candle_then_every_new_one(backend, capsys):
    producer = backend.producer()
    for minute, close, rsi in ((0, 61_000.5, 40.0), (1, 61_010.25, 45.5), (2, 61_020.0, 50.25)):
        await producer.write(candle(minute, close, rsi_5=rsi))

    async with LiveFeatureStream(symbol="BTC-USDT", timeframe="1m", **backend.where) as stream:
        async for candle_ in stream:
            print(f"Received: {candle_['symbol']} @ ${candle_['candle']['close']}")
            if "hft_features" in candle_:
                print(f"  RSI: {candle_['hft_features']['rsi_5']}")
            if stream.stats["received"] == 1:
                await producer.write(candle(3, 61_030.75, rsi_5=55.0))
                await producer.write(candle(4, 61_040.0))
            if stream.stats["received"] == 3:
                break

    assert capsys.readouterr().out.splitlines() == [
        "Received: BTC-USDT @ $61020.0",
        "  RSI: 50.25",
        "Received: BTC-USDT @ $61030.75",
        "  RSI: 55.0",
        "Received: BTC-USDT @ $61040.0",
    ]
    assert stream.last_ids == {BINANCE: "1723161840000-0"}  # 00:04
    assert stream.stats == {
        "received": 3,
        "reconnects": 0,
        "holes": 0,
        "missing_candles": 0,
        "undecodable": 0,
    }


async def test_last_n_last_0_and_resuming_after_an_id(backend):
    producer = backend.producer()
    for minute in range(5):
        await producer.write(candle(minute, 100.0 + minute))

    async with backend.stream(exchange="binance", last=3) as stream:
        assert closes(await take(stream, 3)) == [102.0, 103.0, 104.0]
        await producer.write(candle(5, 105.0))
        assert closes(await take(stream, 1)) == [105.0]

    async with backend.stream(last=10) as stream:  # fewer in the stream than asked for: all of them
        assert closes(await take(stream, 6)) == [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]

    async with backend.stream(last=0) as stream:
        await producer.write(candle(6, 106.0))
        assert closes(await take(stream, 1)) == [106.0]

    async with backend.stream(after="1723161720000-0") as stream:  # 00:02
        assert stream.last_ids == {BINANCE: "1723161720000-0"}  # persisting now resumes at the same place
        assert closes(await take(stream, 4)) == [103.0, 104.0, 105.0, 106.0]
        assert stream.last_ids == {BINANCE: "1723161960000-0"}  # 00:06
        assert stream.stats["holes"] == 0


async def test_every_exchange_merged_by_entry_id_and_new_ones_found(backend):
    producer = backend.producer()
    for minute in range(3):
        await producer.write(candle(minute, 10.0 + minute, exchange="binance"))
        await producer.write(candle(minute, 20.0 + minute, exchange="okx"))

    async with backend.stream(last=2, discover_every=0.05) as stream:
        got = await take(stream, 4)
        assert [(m["exchange"], m["candle"]["close"]) for m in got] == [
            ("binance", 11.0),
            ("okx", 21.0),
            ("binance", 12.0),
            ("okx", 22.0),
        ]
        await producer.write(candle(3, 23.0, exchange="okx"))
        await producer.write(candle(4, 14.0, exchange="binance"))
        assert [(m["exchange"], m["candle"]["close"]) for m in await take(stream, 2)] == [
            ("okx", 23.0),
            ("binance", 14.0),
        ]
        await producer.write(candle(0, 30.0, exchange="bybit"))  # a third exchange, read from its start
        await producer.write(candle(1, 31.0, exchange="bybit"))
        assert [(m["exchange"], m["candle"]["close"]) for m in await take(stream, 2)] == [
            ("bybit", 30.0),
            ("bybit", 31.0),
        ]
        assert stream.last_ids == {
            BINANCE: "1723161840000-0",
            OKX: "1723161780000-0",
            BYBIT: "1723161660000-0",
        }


async def test_waits_for_the_first_exchange(backend):
    async with backend.stream() as stream:
        producer = backend.producer()
        await producer.write(candle(0, 50.0, exchange="okx"))
        await producer.write(candle(1, 51.0, exchange="okx"))
        assert closes(await take(stream, 2)) == [50.0, 51.0]


async def test_a_skipped_bucket_is_a_hole_and_a_revision_or_an_empty_candle_is_not(backend, caplog):
    producer = backend.producer()
    await producer.write(candle(0, 1.0))
    await producer.write(candle(1, 2.0))
    await producer.write(candle(1, 2.5, revision=1), seq=1)  # a late trade revises 00:01
    await producer.write(candle(4, 3.0))  # 00:02 and 00:03 never published
    await producer.write(candle(5, 3.0, empty=True))

    async with backend.stream(last=10) as stream:
        assert closes(await take(stream, 5)) == [1.0, 2.0, 2.5, 3.0, 3.0]
    assert (stream.stats["holes"], stream.stats["missing_candles"]) == (1, 2)
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert BINANCE in warning
    assert (
        "2 candle(s) missing, buckets 2024-08-09T00:02:00.000000Z to 2024-08-09T00:03:00.000000Z" in warning
    )


async def test_entries_trimmed_while_the_consumer_was_away_are_a_hole(backend, caplog):
    producer = backend.producer(maxlen=3, approximate=False)
    async with backend.stream(last=0) as stream:
        await producer.write(candle(0, 1.0))
        await producer.write(candle(1, 2.0))
        assert closes(await take(stream, 2)) == [1.0, 2.0]
        saved = dict(stream.last_ids)
    for minute in range(2, 10):  # the stream keeps 00:07, 00:08, 00:09
        await producer.write(candle(minute, 1.0 + minute))

    async with backend.stream(after=saved) as stream:
        assert closes(await take(stream, 3)) == [8.0, 9.0, 10.0]
    assert (stream.stats["holes"], stream.stats["missing_candles"]) == (1, 5)
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert BINANCE in warning
    assert (
        "5 candle(s) missing, buckets 2024-08-09T00:02:00.000000Z to 2024-08-09T00:06:00.000000Z" in warning
    )


async def test_trimmed_between_two_reads_of_one_session_is_a_hole(backend):
    producer = backend.producer(maxlen=2, approximate=False)
    async with backend.stream(last=0) as stream:
        await producer.write(candle(0, 1.0))
        assert closes(await take(stream, 1)) == [1.0]
        for minute in range(1, 6):  # not read meanwhile: 00:04 and 00:05 are left
            await producer.write(candle(minute, 1.0 + minute))
        assert closes(await take(stream, 2)) == [5.0, 6.0]
        assert (stream.stats["holes"], stream.stats["missing_candles"]) == (1, 3)


async def test_a_cancel_landing_as_an_entry_arrives_stops_the_consumer():
    """On Python 3.11, ``asyncio.wait_for`` swallows a cancel that lands in the loop tick in which what it
    waits for completes (python/cpython#86296): a Ctrl-C or a caller's timeout would be lost."""
    bus = InMemoryBus()
    producer = BusProducer(bus)
    async with LiveFeatureStream(transport="inmemory", bus=bus, last=0) as stream:
        reading = asyncio.create_task(anext(stream))
        await until(lambda: bus._waiters)  # the consumer waits for entries
        await producer.write(candle(0, 1.0))
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading


async def test_redis_restart_mid_stream_every_candle_once_in_order(restartable_redis, caplog):
    server = restartable_redis
    producer = RedisProducer(server.url)
    got = []
    producer_failed = asyncio.Event()

    async with LiveFeatureStream(redis_url=server.url, last=0, block_ms=200) as stream:

        async def consume():
            async for message in stream:
                got.append(message)
                if len(got) == 30:
                    return

        consumer = asyncio.create_task(consume())
        for minute in range(10):
            await producer.write(candle(minute, 1000.0 + minute))
        await until(lambda: len(got) == 10)  # the consumer is now blocked in XREAD

        await asyncio.to_thread(server.kill)
        writer = asyncio.create_task(_write_all(producer, range(10, 30), producer_failed.set))
        await asyncio.wait_for(producer_failed.wait(), 10)  # writes are waiting for Redis
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(asyncio.gather(writer, consumer), 30)

    await producer.close()
    assert closes(got) == [1000.0 + minute for minute in range(30)]
    assert stream.last_ids == {BINANCE: "1723163340000-0"}  # 00:29
    assert stream.stats["reconnects"] >= 1
    assert (stream.stats["holes"], stream.stats["received"]) == (0, 30)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all(f"cannot read candles from {server.url}" in w for w in warnings)


async def _write_all(producer, minutes, on_failure):
    for minute in minutes:
        await producer.write(candle(minute, 1000.0 + minute), on_failure=on_failure)


async def test_a_password_never_reaches_the_log(caplog):
    caplog.set_level(logging.DEBUG)
    port = free_port()  # nothing listens there
    stream = LiveFeatureStream(redis_url=f"redis://app:s3cr3t-pw@127.0.0.1:{port}/0", block_ms=100)
    assert stream.source == f"redis://app:***@127.0.0.1:{port}/0"

    async def enter():
        async with stream:
            pass

    task = asyncio.create_task(enter())
    await until(lambda: stream.stats["reconnects"] >= 2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) >= 2 and all(f"redis://app:***@127.0.0.1:{port}/0" in w for w in warnings)
    assert "s3cr3t-pw" not in caplog.text


@contextlib.asynccontextmanager
async def cli(*args, how=("-m", "market_data_tick_handler.consume")):
    """The CLI in its own process, killed at the end if a failed test left it running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *how,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "REDIS_URL"},
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_prints_the_closes_and_features_then_exits_after_count(redis_url):
    producer = RedisProducer(redis_url)
    await producer.write(candle(0, 61_000.0, rsi_5=None, ema_10=None, volume_imbalance=0.25))
    await producer.write(candle(1, 61_010.5, rsi_5=None, ema_10=None, volume_imbalance=-0.5))
    await producer.write(candle(2, 61_020.25, rsi_5=None, ema_10=61_005.75, volume_imbalance=0.125))
    await producer.write(candle(3, 61_030.0, rsi_5=62.5, ema_10=61_012.5, volume_imbalance=None))
    await producer.write(candle(4, 61_040.75))  # no hft_features
    await producer.write(candle(5, 61_050.0, rsi_5=70.0, ema_10=61_020.0, volume_imbalance=1.0))
    await producer.close()

    async with cli(
        "--symbol", "BTC-USDT", "--timeframe", "1m", "--redis-url", redis_url, "--last", "5",
        "--count", "3", "--features", "rsi_5,ema_10,volume_imbalance",
    ) as proc:  # fmt: skip
        out, err = (text.decode() for text in await asyncio.wait_for(proc.communicate(), 30))

    assert proc.returncode == 0, err
    header, *rows = out.splitlines()
    assert header.split()[-4:] == ["rsi_5", "ema_10", "volume_imbalance", "flags"]
    cells = [row.split() for row in rows]
    # exchange symbol tf bucket open high low close volume trades vwap rsi_5 ema_10 volume_imbalance
    assert [(c[0], c[3], c[7], *c[11:]) for c in cells] == [
        ("binance", "2024-08-09T00:01:00.000000Z", "61010.50", "-", "-", "-0.5"),
        ("binance", "2024-08-09T00:02:00.000000Z", "61020.25", "-", "61005.75", "0.125"),
        ("binance", "2024-08-09T00:03:00.000000Z", "61030.00", "62.5", "61012.50", "-"),
    ]
    assert "Traceback" not in err


# the CLI as started from a terminal, with SIGINT handled even when these tests run as a background job
# (which starts with SIGINT ignored, and so would every child)
CLI_AS_FROM_A_TERMINAL = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('market_data_tick_handler.consume', run_name='__main__', alter_sys=True)"
)


async def test_cli_candles_without_features_and_ctrl_c(redis_url):
    producer = RedisProducer(redis_url)
    await producer.write(candle(0, 61_040.75))
    await producer.close()
    async with cli("--redis-url", redis_url, how=("-c", CLI_AS_FROM_A_TERMINAL)) as proc:
        header = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        row = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)

    assert proc.returncode == 0, err.decode()
    assert header.split()[-6:] == [
        "rsi_5",
        "ema_10",
        "price_volatility_5",
        "vwap_deviation_bps",
        "volume_imbalance",
        "flags",
    ]
    assert row.split()[7:] == ["61040.75", "1.50000", "3", "61040.75", "-", "-", "-", "-", "-"]
    assert "Traceback" not in err.decode()
