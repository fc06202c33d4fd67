"""Redis: every command of a wire frame pipelined on one connection, the replies read in one go.

Per candle: PUBLISH on its channels, XADD to its capped stream, HSET of the latest candle; per record:
PUBLISH on its channels. Measured here for a boundary burst of 300 candles x 3 channels (PUBLISH only):

- a redis-py pipeline: ~19 ms per 150 candles, almost all of it parsing 450 replies one by one in Python;
- a Lua script doing the PUBLISHes: 1.1 ms of Redis time (``INFO commandstats``), ~3.4 µs per candle
  of string handling in Lua, while a PUBLISH itself costs Redis 0.1 µs;
- this: the commands packed here (the part before the payload cached per channel or key) and written on
  a dedicated connection chunk by chunk, as the caller serialises them, so Redis works on one chunk
  while the next is being built; a PING closes the frame, and the replies are read until its PONG and
  only scanned for error lines.

The connection is made by redis-py from the URL (TLS, ACL users, passwords, database), so only the
reading of replies bypasses its parser; the connection is used for nothing else, so no reply is ever
in its parser's buffer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...redact import redact_url
from ..keys import STREAM_FIELD
from .base import Entry, PublishError, PublishResult, parse_entry_id

PING = b"*1\r\n$4\r\nPING\r\n"
PONG = b"+PONG\r\n"
DUPLICATE = b"equal or smaller than the target stream top item"  # XADD with an id not above the top


def _bulk(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return b"$%d\r\n%b\r\n" % (len(data), data)


@lru_cache(maxsize=65_536)
def _publish_head(channel: str) -> bytes:
    """``PUBLISH channel`` in RESP, up to the payload's length."""
    return b"*3\r\n$7\r\nPUBLISH\r\n" + _bulk(channel) + b"$"


@lru_cache(maxsize=65_536)
def _xadd_head(stream: str, maxlen: int) -> bytes:
    """``XADD stream MAXLEN ~ maxlen``: the id and the field follow."""
    return b"*8\r\n$4\r\nXADD\r\n" + _bulk(stream) + _bulk("MAXLEN") + _bulk("~") + _bulk(str(maxlen))


_FIELD = _bulk(STREAM_FIELD) + b"$"


@lru_cache(maxsize=65_536)
def _hset_head(key: str, field: str) -> bytes:
    return b"*4\r\n$4\r\nHSET\r\n" + _bulk(key) + _bulk(field) + b"$"


def pack_entries(entries: Sequence[Entry], maxlen: int) -> list[bytes]:
    """The RESP of every command of ``entries``: the payload is formatted once per entry and the same
    bytes object is referenced by each of its commands."""
    out: list[bytes] = []
    append = out.append
    for channels, payload, target in entries:
        body = b"%d\r\n%b\r\n" % (len(payload), payload)
        for channel in channels:
            append(_publish_head(channel))
            append(body)
        if target is not None:
            append(_xadd_head(target.stream, maxlen))
            append(_bulk(target.entry_id) + _FIELD)
            append(body)
            if target.latest is not None:
                append(_hset_head(target.latest, target.field))
                append(body)
    return out


def check_replies(replies: bytes) -> int:
    """Scan the replies of one frame (ending with PONG) for errors: returns how many XADDs were refused
    as duplicates; raises ``PublishError`` with the first other error."""
    if not (replies.startswith(b"-") or b"\r\n-" in replies):
        return 0
    duplicates, other = 0, None
    for line in replies.split(b"\r\n"):
        if line.startswith(b"-"):
            if DUPLICATE in line:
                duplicates += 1
            elif other is None:
                other = line[1:].decode(errors="replace")
    if other is not None:
        raise PublishError(f"Redis refused a command: {other}")
    return duplicates


class RedisTransport:
    name = "redis"

    def __init__(self, url: str, db: int | None = None, stream_maxlen: int = 1000) -> None:
        self.url = url
        self.db = db
        self.stream_maxlen = stream_maxlen
        self._client: aioredis.Redis | None = None
        self._conn = None

    def describe(self) -> str:
        return redact_url(self.url) + (f" db={self.db}" if self.db is not None else "")

    async def connect(self) -> None:
        kwargs = {"db": self.db} if self.db is not None else {}
        self._client = aioredis.Redis.from_url(self.url, **kwargs)
        await self._client.ping()  # fail fast, with redis-py's message, when Redis is not there
        pool = self._client.connection_pool
        self._conn = pool.connection_class(**pool.connection_kwargs)
        await self._conn.connect()

    async def publish_many(self, chunks: Iterable[Sequence[Entry]]) -> PublishResult:
        conn = self._conn
        assert conn is not None, "connect() first"
        try:
            if not conn.is_connected:
                await conn.connect()
            for chunk in chunks:
                if chunk:
                    await conn.send_packed_command(
                        pack_entries(chunk, self.stream_maxlen), check_health=False
                    )
            await conn.send_packed_command(PING, check_health=False)
            replies = await self._read_replies(conn._reader)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            await conn.disconnect()
            raise ConnectionError(f"Redis at {self.describe()}: {exc}") from exc
        except BaseException:
            await conn.disconnect()
            raise
        return PublishResult(check_replies(replies))

    async def stream_tops(self, streams: Sequence[str]) -> dict[str, tuple[int, int] | None]:
        assert self._client is not None, "connect() first"
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for stream in streams:
                    pipe.xrevrange(stream, count=1)
                replies = await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise ConnectionError(f"Redis at {self.describe()}: {exc}") from exc
        return {
            s: parse_entry_id(top[0][0]) if top else None for s, top in zip(streams, replies, strict=True)
        }

    @staticmethod
    async def _read_replies(reader) -> bytes:
        parts: list[bytes] = []
        tail = b""
        while True:
            chunk = await reader.read(65_536)
            if not chunk:
                raise ConnectionError("Redis closed the connection while publishing")
            parts.append(chunk)
            tail = (tail + chunk[-len(PONG) :])[-len(PONG) :]
            if tail == PONG:  # PONG is the last reply, and no other reply ends with it
                return b"".join(parts)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.disconnect()
            self._conn = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
