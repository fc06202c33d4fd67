"""Candle streams read from Redis with ``XREAD BLOCK``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...redact import redact_url
from ..keys import STREAM_FIELD
from .reader import RawEntry

_FIELD = STREAM_FIELD.encode()
_T = TypeVar("_T")


class RedisStreamReader:
    """One client for one URL (``redis://``, ``rediss://``, with a password or an ACL user: all as the
    URL says). redis-py's own retries are off: a dropped connection surfaces at once, and
    :class:`LiveFeatureStream` reconnects with its own backoff, counts it and resumes from its cursors.

    Each command is bounded here with ``asyncio.timeout`` rather than by redis-py's ``socket_timeout``:
    redis-py sends through ``asyncio.wait_for`` when that is set, which on Python 3.11 can swallow a
    cancellation that lands as the send completes (python/cpython#86296), so a Ctrl-C or a caller's own
    timeout would be lost and the consumer would read on."""

    def __init__(self, url: str, block_ms: int) -> None:
        self._url = url
        self._reply_timeout_s = block_ms / 1000 + 5  # an XREAD may block for block_ms before it replies
        self._client = aioredis.Redis.from_url(
            url, socket_connect_timeout=5, socket_timeout=None, retry=Retry(NoBackoff(), 0)
        )

    def describe(self) -> str:
        return redact_url(self._url)

    async def exchanges(self, latest_key: str) -> list[str]:
        return sorted(field.decode() for field in await self._bounded(self._client.hkeys(latest_key)))

    async def tail(self, stream: str, count: int) -> list[RawEntry]:
        entries = await self._bounded(self._client.xrevrange(stream, count=count))
        return [_raw(stream, entry) for entry in reversed(entries)]

    async def read(self, cursors: Mapping[str, str], block_ms: int, count: int) -> list[RawEntry]:
        if not cursors:
            await asyncio.sleep(block_ms / 1000)
            return []
        reply = await self._bounded(self._client.xread(dict(cursors), count=count, block=block_ms))
        per_stream = reply.items() if isinstance(reply, dict) else (reply or ())  # RESP3 replies a map
        return [_raw(name.decode(), entry) for name, entries in per_stream for entry in entries]

    async def close(self) -> None:
        await self._client.aclose()

    async def _bounded(self, command: Awaitable[_T]) -> _T:
        try:
            async with asyncio.timeout(self._reply_timeout_s):
                return await command
        except TimeoutError:
            raise RedisTimeoutError(f"no reply within {self._reply_timeout_s:.0f} s") from None


def _raw(stream: str, entry: tuple[bytes, dict[bytes, Any]]) -> RawEntry:
    entry_id, fields = entry
    return stream, entry_id.decode(), fields.get(_FIELD)
