"""Redis PUBLISH, pipelined: one round trip per call, however many messages."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from ...redact import redact_url


class RedisTransport:
    name = "redis"

    def __init__(self, url: str, db: int | None = None) -> None:
        self.url = url
        self.db = db
        self._client: aioredis.Redis | None = None

    def describe(self) -> str:
        return redact_url(self.url) + (f" db={self.db}" if self.db is not None else "")

    async def connect(self) -> None:
        kwargs = {"db": self.db} if self.db is not None else {}
        self._client = aioredis.Redis.from_url(self.url, **kwargs)
        await self._client.ping()

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        assert self._client is not None, "connect() first"
        pipe = self._client.pipeline(transaction=False)
        for channel, payload in messages:
            pipe.publish(channel, payload)
        await pipe.execute()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
