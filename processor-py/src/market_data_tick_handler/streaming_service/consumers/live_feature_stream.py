"""``LiveFeatureStream``: the closed candles (with their features) of one symbol and timeframe, read from
the candle streams the processor keeps beside its channels (``keys.candle_stream_key``), so that a
consumer sees every candle exactly once and in order, resumes where it stopped, survives a Redis restart,
and is told about every candle it can no longer get.

The consumer example (docs/ARCHITECTURE.md "Consuming: LiveFeatureStream")::

    async with LiveFeatureStream(symbol="BTC-USDT", timeframe="1m") as stream:
        async for candle in stream:
            print(candle["symbol"], candle["candle"]["close"], candle.get("hft_features", {}).get("rsi_5"))
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import orjson
from redis.exceptions import AuthenticationError, AuthorizationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...timeutil import iso_us, parse_iso_us
from ..candle_processor.timeframes import Timeframe
from ..keys import candle_latest_key, candle_stream_key
from ..transport.base import parse_entry_id
from ..transport.inmemory import DEFAULT_BUS, InMemoryBus
from .inmemory_reader import InMemoryStreamReader
from .reader import RawEntry, StreamReader
from .redis_reader import RedisStreamReader

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
_BACKOFF_FIRST_S = 0.1
_BACKOFF_CAP_S = 2.0
_RETRYABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_FATAL = (AuthenticationError, AuthorizationError)  # a wrong password does not fix itself by retrying
# no data field or not JSON (orjson raises its JSONDecodeError, a ValueError, for both), or JSON that is
# not a candle message
_UNDECODABLE = (ValueError, TypeError, KeyError, AttributeError)


class LiveFeatureStream:
    """Candle messages (the JSON of ``messages.py``, decoded) of ``symbol`` on ``timeframe``.

    - ``exchange``: one exchange's stream; None: every exchange that has published the symbol (the fields
      of ``candles:latest:{symbol}:{timeframe}``), looked up again every ``discover_every`` seconds (and
      every ``block_ms`` while there is none); a stream found later is read from its start.
    - Start: ``last=N`` the last N candles of each stream, merged by entry id, then every new one
      (``last=1``: the latest first; ``last=0``: only new ones); ``after`` resumes after saved entry ids,
      ``{stream key: id}`` (e.g. a saved ``last_ids``; a stream not named is read from its start) or one
      id for every stream. The start is taken when the ``async with`` block is entered.
    - ``last_ids``: the last delivered entry id of each stream, to persist and pass back as ``after``.
    - ``stats``: ``received`` candles, ``reconnects``, ``holes`` and ``missing_candles`` (updated before
      the candle after a hole is yielded), ``undecodable`` entries skipped.

    Redis connections that drop are re-established with a backoff (0.1 s doubling to 2 s) and reading
    resumes after the last entry read, so nothing is yielded twice and nothing still in the stream is
    skipped. What is no longer in the stream (trimmed by MAXLEN before it was read, lost in a restart
    without persistence, never published while the processor was down) shows as a hole: consecutive
    revision-0 candles of one stream more than one timeframe apart, logged as a WARNING with the stream and
    the missing buckets, so that a strategy never acts across a hole it cannot see.
    """

    def __init__(
        self,
        symbol: str = "BTC-USDT",
        timeframe: str = "1m",
        exchange: str | None = None,
        redis_url: str | None = None,
        *,
        last: int = 1,
        after: Mapping[str, str] | str | None = None,
        transport: str = "redis",
        bus: InMemoryBus | None = None,
        block_ms: int = 1000,
        count: int = 100,
        discover_every: float = 5.0,
    ) -> None:
        if last < 0:
            raise ValueError(f"last must be 0 or more, not {last}")
        self.symbol, self.timeframe, self.exchange = symbol, timeframe, exchange
        self._bucket_us = Timeframe.parse(timeframe).micros
        self._last = last
        self._after = _check_after(after)
        self._block_ms, self._count, self._discover_every = block_ms, count, discover_every
        self._reader = _make_reader(transport, redis_url, bus, block_ms)
        self._cursors: dict[str, str] = {}  # per stream: the last entry read (XREAD continues after it)
        self._pending: deque[RawEntry] = deque()  # read, not yet yielded
        self._prev_bucket_us: dict[str, int] = {}  # per stream: the newest revision-0 bucket start yielded
        self._started = False
        self._next_discovery = 0.0
        self._backoff_s = _BACKOFF_FIRST_S
        self.last_ids: dict[str, str] = {}
        self.stats = {"received": 0, "reconnects": 0, "holes": 0, "missing_candles": 0, "undecodable": 0}

    @property
    def source(self) -> str:
        """Where the candles are read from, without credentials."""
        return self._reader.describe()

    async def __aenter__(self) -> LiveFeatureStream:
        if not self._started:
            await self._retrying(self._start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._reader.close()

    def __aiter__(self) -> LiveFeatureStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while True:
            while not self._pending:
                await self._retrying(self._step)
            stream, entry_id, payload = self._pending.popleft()
            self.last_ids[stream] = entry_id
            decoded = self._decode(stream, entry_id, payload)
            if decoded is not None:
                message, bucket_us, revision = decoded
                if revision == 0:  # a revision re-sends an older bucket: not a step of the series
                    self._check_hole(stream, bucket_us)
                self.stats["received"] += 1
                return message

    async def _retrying(self, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await step()
            except _FATAL:
                raise
            except _RETRYABLE as exc:
                await self._back_off(exc)
            else:
                self._backoff_s = _BACKOFF_FIRST_S
                return

    async def _back_off(self, exc: BaseException) -> None:
        self.stats["reconnects"] += 1
        log.warning(
            "cannot read candles from %s (%s: %s): reconnecting in %.1f s, then resuming after the last"
            " entry read",
            self._reader.describe(),
            type(exc).__name__,
            exc,
            self._backoff_s,
        )
        await asyncio.sleep(self._backoff_s)
        self._backoff_s = min(self._backoff_s * 2, _BACKOFF_CAP_S)

    async def _start(self) -> None:
        """Position every stream and queue the ``last`` candles; state changes only once every read
        succeeded, so that a retried start yields nothing twice."""
        if self.exchange is not None:
            streams = [self._stream_of(self.exchange)]
        else:
            streams = [self._stream_of(e) for e in await self._reader.exchanges(self._latest_key)]
        cursors: dict[str, str] = {}
        backlog: list[RawEntry] = []
        if self._after is not None:
            cursors = {stream: self._resume(stream) for stream in streams}
        else:
            for stream in streams:
                tail = await self._reader.tail(stream, max(self._last, 1))
                cursors[stream] = tail[-1][1] if tail else "0-0"
                backlog += tail[max(len(tail) - self._last, 0) :]
        self._cursors.update(cursors)
        self._pending.extend(sorted(backlog, key=_entry_order))
        self._started = True
        self._next_discovery = time.monotonic() + self._discover_every
        log.info(
            "reading %s %s candles from %s: %s",
            self.symbol,
            self.timeframe,
            self._reader.describe(),
            ", ".join(f"{s} after {c}" for s, c in cursors.items()) or "no exchange has published yet",
        )

    async def _step(self) -> None:
        if not self._started:
            await self._start()
            return
        if self.exchange is None and (not self._cursors or time.monotonic() >= self._next_discovery):
            await self._discover()
        batch = await self._reader.read(self._cursors, self._block_ms, self._count)
        for stream, entry_id, _ in batch:  # each stream's entries come oldest first
            self._cursors[stream] = entry_id
        self._pending.extend(sorted(batch, key=_entry_order))

    async def _discover(self) -> None:
        for exchange in await self._reader.exchanges(self._latest_key):
            stream = self._stream_of(exchange)
            if stream not in self._cursors:
                self._cursors[stream] = cursor = self._resume(stream)
                log.info("found %s: reading it after %s", stream, cursor)
        self._next_discovery = time.monotonic() + self._discover_every

    def _resume(self, stream: str) -> str:
        """Where a stream is read from when ``after`` is given or when it is found after the start: after
        the saved id (which also seeds ``last_ids`` and, since an entry id's ms part is its newest bucket's
        start, the hole check), or from its start."""
        saved = self._after.get(stream) if isinstance(self._after, dict) else self._after
        if saved is None:
            return "0-0"
        self.last_ids[stream] = saved
        ms = parse_entry_id(saved)[0]
        if ms:
            self._prev_bucket_us[stream] = ms * 1000
        return saved

    def _decode(
        self, stream: str, entry_id: str, payload: bytes | None
    ) -> tuple[dict[str, Any], int, int] | None:
        try:
            message = orjson.loads(payload)  # type: ignore[arg-type]
            return message, parse_iso_us(message["timestamp_in"]), message["candle"]["revision"]
        except _UNDECODABLE as exc:
            self.stats["undecodable"] += 1
            log.warning("skipped entry %s of %s: not a candle message (%s)", entry_id, stream, exc)
            return None

    def _check_hole(self, stream: str, bucket_us: int) -> None:
        prev = self._prev_bucket_us.get(stream)
        self._prev_bucket_us[stream] = bucket_us if prev is None else max(prev, bucket_us)
        if prev is None:
            return
        missing = (bucket_us - prev) // self._bucket_us - 1
        if missing > 0:
            self.stats["holes"] += 1
            self.stats["missing_candles"] += missing
            log.warning(
                "hole in %s: %d candle(s) missing, buckets %s to %s (trimmed before they were read, lost"
                " in a Redis restart, or never published)",
                stream,
                missing,
                iso_us(prev + self._bucket_us),
                iso_us(bucket_us - self._bucket_us),
            )

    @property
    def _latest_key(self) -> str:
        return candle_latest_key(self.symbol, self.timeframe)

    def _stream_of(self, exchange: str) -> str:
        return candle_stream_key(exchange, self.symbol, self.timeframe)


def _entry_order(entry: RawEntry) -> tuple[tuple[int, int], str]:
    """Entries of several streams merged by id (their bucket start), then by stream key."""
    return parse_entry_id(entry[1]), entry[0]


def _check_after(after: Mapping[str, str] | str | None) -> dict[str, str] | str | None:
    """A copy, with every id checked now rather than at the first read."""
    if after is None:
        return None
    if isinstance(after, str):
        parse_entry_id(after)
        return after
    for entry_id in after.values():
        parse_entry_id(entry_id)
    return dict(after)


def _make_reader(
    transport: str, redis_url: str | None, bus: InMemoryBus | None, block_ms: int
) -> StreamReader:
    if transport == "redis":
        return RedisStreamReader(redis_url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL, block_ms)
    if transport == "inmemory":
        return InMemoryStreamReader(bus if bus is not None else DEFAULT_BUS)
    raise ValueError(f"unknown transport {transport!r}: expected 'redis' or 'inmemory'")
