"""Serve mode: closed candles (with features) and the records of the other data types to Redis, or to
the in-memory bus, for strategy services. Channels come from ``keys.py``, messages from ``messages.py``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import orjson

from ...config import ServeConfig
from ...timeutil import now_us
from ..candle_processor import CandleBatch
from ..data_types.records import Record
from ..keys import candle_channels, record_channels
from ..messages import candle_messages, record_message
from ..transport import InMemoryTransport, RedisTransport, Transport

log = logging.getLogger(__name__)
CHUNK = 50  # candles per write


def _channels(message: dict[str, Any]) -> tuple[str, ...]:
    return candle_channels(message["exchange"], message["symbol"], message["timeframe"])


class ServeMode:
    def __init__(self, config: ServeConfig | None = None, transport: Transport | None = None) -> None:
        self.config = config or ServeConfig()
        if transport is not None:
            self.transport = transport
        elif self.config.transport == "redis":
            self.transport = RedisTransport(self.config.redis_url, self.config.redis_db)
        elif self.config.transport == "inmemory":
            self.transport = InMemoryTransport()
        else:
            raise ValueError(f"serve.transport must be 'redis' or 'inmemory', not {self.config.transport!r}")
        self.stats: dict[str, Any] = {
            "candles_published": 0,
            "messages_published": 0,
            "round_trips": 0,
            "publish_retries": 0,
            "publish_failures": 0,
            "candles_lost": 0,
            "records_published": 0,
            "records_lost": 0,
        }

    async def start(self) -> None:
        await self.transport.connect()
        log.info("serve mode publishing to %s", self.transport.describe())  # type: ignore[attr-defined]

    async def publish(
        self, batch: CandleBatch | None, local_us: int, records: Sequence[Record] = ()
    ) -> list[dict[str, Any]]:
        """Publish every candle of ``batch`` and every record of ``records`` in one round trip;
        ``local_us`` is when closing the candles began, ``timestamp_out`` is stamped just before
        serialising. Each part is sent as soon as it is serialised. Returns the candle messages."""
        batch = batch if batch else None
        if batch is None and not records:
            return []
        messages: list[dict[str, Any]] = []
        sent: list[list[tuple[tuple[str, ...], bytes]]] = []

        def serialised():
            if batch is not None:
                for part in candle_messages(batch, local_us, now_us()):
                    messages.extend(part)
                    for i in range(0, len(part), CHUNK):  # Redis takes one chunk while the next is built
                        chunk = [(_channels(m), orjson.dumps(m)) for m in part[i : i + CHUNK]]
                        sent.append(chunk)
                        yield chunk
            for i in range(0, len(records), CHUNK):
                chunk = [
                    (record_channels(r.DATA_TYPE, r.exchange, r.symbol), orjson.dumps(record_message(r)))
                    for r in records[i : i + CHUNK]
                ]
                sent.append(chunk)
                yield chunk

        candles = len(batch) if batch is not None else 0
        chunks = serialised()
        for attempt in range(1, self.config.publish_attempts + 1):
            try:
                await self.transport.publish_many(chunks)
                break
            except (OSError, ConnectionError, TimeoutError) as exc:
                for _ in chunks:  # serialise the rest (into `sent`): all of it goes again
                    pass
                chunks = list(sent)
                if attempt == self.config.publish_attempts:
                    self.stats["publish_failures"] += 1
                    self.stats["candles_lost"] += candles
                    self.stats["records_lost"] += len(records)
                    log.error(
                        "publish failed %d times (%s): %d candles and %d records not published",
                        attempt,
                        exc,
                        candles,
                        len(records),
                    )
                    return messages
                self.stats["publish_retries"] += 1
                log.warning("publish failed (%s), retry %d", exc, attempt)
                await asyncio.sleep(0.05 * 2**attempt)
        self.stats["candles_published"] += candles
        self.stats["records_published"] += len(records)
        self.stats["messages_published"] += sum(len(channels) for chunk in sent for channels, _ in chunk)
        self.stats["round_trips"] += 1
        return messages

    async def close(self) -> None:
        await self.transport.close()

    def get_stats(self) -> dict[str, Any]:
        return dict(self.stats)
