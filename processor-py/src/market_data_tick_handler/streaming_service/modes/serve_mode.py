"""Serve mode: closed candles (with features) to Redis, or to the in-memory bus, for strategy services."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from ...config import ServeConfig
from ...timeutil import now_us
from ..keys import candle_channels
from ..messages import CandleEvent, IsoCache
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

    async def publish(self, events: Sequence[CandleEvent]) -> None:
        """Publish every event in one round trip; stamps ``timestamp_out`` just before serialising."""
        if not events:
            return
        messages: list[tuple[tuple[str, ...], bytes]] = []
        iso = IsoCache()
        stamp = now_us()
        for event in events:
            event.timestamp_out = stamp
            c = event.candle
            messages.append((candle_channels(c.exchange, c.symbol, c.timeframe), event.to_json(iso)))
        for attempt in range(1, self.config.publish_attempts + 1):
            try:
                await self.transport.publish_many(messages)
                break
            except (OSError, ConnectionError, TimeoutError) as exc:
                if attempt == self.config.publish_attempts:
                    self.stats["publish_failures"] += 1
                    self.stats["candles_lost"] += len(events)
                    log.error(
                        "publish failed %d times (%s): %d candles not published", attempt, exc, len(events)
                    )
                    return
                self.stats["publish_retries"] += 1
                log.warning("publish failed (%s), retry %d", exc, attempt)
                await asyncio.sleep(0.05 * 2**attempt)
        self.stats["candles_published"] += len(events)
        self.stats["messages_published"] += sum(len(channels) for channels, _ in messages)
        self.stats["round_trips"] += 1

    async def close(self) -> None:
        await self.transport.close()

    def get_stats(self) -> dict[str, Any]:
        return dict(self.stats)
