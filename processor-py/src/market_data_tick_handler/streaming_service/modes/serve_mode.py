"""Serve mode: closed candles (with features) to Redis, or to the in-memory bus, for strategy services."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from ...config import ServeConfig
from ...timeutil import now_us
from ..candle_processor import CandleBatch
from ..keys import candle_channels
from ..messages import candle_messages
from ..transport import InMemoryTransport, RedisTransport, Transport

log = logging.getLogger(__name__)


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
        }

    async def start(self) -> None:
        await self.transport.connect()
        log.info("serve mode publishing to %s", self.transport.describe())  # type: ignore[attr-defined]

    async def publish(self, batch: CandleBatch, local_us: int) -> list[dict[str, Any]]:
        """Publish every candle of ``batch`` in one round trip; ``local_us`` is when closing them began.
        ``timestamp_out`` is stamped just before serialising. Returns the messages."""
        if not batch:
            return []
        messages = candle_messages(batch, local_us, now_us())
        await self.send(messages)
        return messages

    async def send(self, messages: list[dict[str, Any]]) -> None:
        """Publish candle messages (see ``messages.py``), retrying a failed round trip."""
        outgoing = [
            (candle_channels(m["exchange"], m["symbol"], m["timeframe"]), orjson.dumps(m)) for m in messages
        ]
        for attempt in range(1, self.config.publish_attempts + 1):
            try:
                await self.transport.publish_many(outgoing)
                break
            except (OSError, ConnectionError, TimeoutError) as exc:
                if attempt == self.config.publish_attempts:
                    self.stats["publish_failures"] += 1
                    self.stats["candles_lost"] += len(outgoing)
                    log.error(
                        "publish failed %d times (%s): %d candles not published", attempt, exc, len(outgoing)
                    )
                    return
                self.stats["publish_retries"] += 1
                log.warning("publish failed (%s), retry %d", exc, attempt)
                await asyncio.sleep(0.05 * 2**attempt)
        self.stats["candles_published"] += len(outgoing)
        self.stats["messages_published"] += sum(len(channels) for channels, _ in outgoing)
        self.stats["round_trips"] += 1

    async def close(self) -> None:
        await self.transport.close()

    def get_stats(self) -> dict[str, Any]:
        return dict(self.stats)
