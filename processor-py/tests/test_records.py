"""Records on Redis: serve mode publishes a frame's records with its candles in one round trip, on the
channels of keys.record_channels (docs/DATA_TYPES.md, docs/ARCHITECTURE.md "Redis")."""

import orjson
import redis.asyncio as aioredis
from helpers import T0, S

from market_data_tick_handler.streaming_service import ServeConfig, ServeMode
from market_data_tick_handler.streaming_service.candle_processor import Candle, CandleBatch
from market_data_tick_handler.streaming_service.data_types import BookSnapshot, FundingRate, Gap
from market_data_tick_handler.streaming_service.keys import record_channels


async def test_serve_mode_publishes_records_with_the_candles_in_one_round_trip(redis_url):
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.psubscribe("book_snapshots:*", "funding_rates:*", "gaps:*", "candles:binance:*")
    for _ in range(4):
        await pubsub.get_message(timeout=1)
    serve = ServeMode(ServeConfig(transport="redis", redis_url=redis_url))
    await serve.start()
    book = BookSnapshot(
        exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0 + S,
        local_timestamp=T0 + S + 250, depth=25, interval_ms=100, bids=((100.0, 1.5),), asks=((100.5, 2.0),),
    )  # fmt: skip
    funding = FundingRate(
        exchange="binance-futures", symbol="BTC-USDT-PERP", exchange_symbol="BTCUSDT", timestamp=T0,
        local_timestamp=T0 + 5, funding_rate=-0.0002, funding_timestamp=None, predicted_funding_rate=None,
    )  # fmt: skip
    gap = Gap(
        exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0,
        local_timestamp=T0 + 31 * S,
        reason="stale", start=T0, end=None,
    )  # fmt: skip
    candle = Candle(
        "binance", "BTC-USDT", "BTCUSDT", "15s", T0, 1.0, 2.0, 0.5, 1.5, 3.0, 2.0, 1.0, 1.2, 4, T0 + 1,
        T0 + 2,
        False, True, False, 0,
    )  # fmt: skip
    await serve.publish(CandleBatch.from_candles([candle]), T0 + 15 * S, [book, funding, gap])
    got = []
    while len(got) < 7:  # the candle on the one subscribed channel of its three, each record on two
        message = await pubsub.get_message(timeout=2)
        if message and message["type"] == "pmessage":
            got.append((message["channel"].decode(), orjson.loads(message["data"])))
    assert [ch for ch, _ in got] == [
        "candles:binance:BTC-USDT:15s",
        "book_snapshots:BTC-USDT",
        "book_snapshots:binance:BTC-USDT",
        "funding_rates:BTC-USDT-PERP",
        "funding_rates:binance-futures:BTC-USDT-PERP",
        "gaps:BTC-USDT",
        "gaps:binance:BTC-USDT",
    ]
    bodies = {body["type"]: body for ch, body in got if not ch.startswith("candles:")}
    assert bodies["book_snapshot"]["timestamp"] == "2023-11-14T22:14:01.000000Z"
    assert bodies["book_snapshot"]["local_timestamp"] == "2023-11-14T22:14:01.000250Z"
    assert bodies["book_snapshot"]["asks"] == [{"price": 100.5, "amount": 2.0}]
    assert bodies["funding_rate"] | {} == {
        **bodies["funding_rate"],
        "funding_rate": -0.0002,
        "funding_timestamp": None,
    }
    assert (bodies["gap"]["reason"], bodies["gap"]["start"], bodies["gap"]["end"]) == (
        "stale", "2023-11-14T22:14:00.000000Z", None
    )  # fmt: skip
    stats = serve.get_stats()
    assert (stats["round_trips"], stats["candles_published"], stats["records_published"]) == (1, 1, 3)
    assert stats["messages_published"] == 3 + 3 * 2  # a candle on 3 channels, a record on 2
    await serve.publish(None, 0, [gap])
    assert serve.get_stats()["round_trips"] == 2
    await serve.close()
    await pubsub.aclose()
    await client.aclose()


def test_record_channels():
    assert record_channels("options_chain", "deribit", "BTC-27SEP24-60000-C") == (
        "options_chain:BTC-27SEP24-60000-C",
        "options_chain:deribit:BTC-27SEP24-60000-C",
    )
