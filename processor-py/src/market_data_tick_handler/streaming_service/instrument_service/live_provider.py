"""Live instrument definitions from ccxt (docs/ARCHITECTURE.md, "Instrument definitions").

:class:`LiveInstrumentProvider` loads each exchange's markets with ccxt's async client (or from
``markets_dir``, no network), answers ``get_instrument(exchange, symbol)`` for a symbol in any spelling
from a cache kept ``cache_ttl`` seconds, reloads every ``refresh_interval`` seconds and compares the new
load with the last one: every instrument listed, delisted or changed (tick size, lot step, min size, min
notional, fees, contract size, active) is an :class:`InstrumentChange`, kept in the history (so
``get_instrument(..., at=T)`` answers for any time since the first load), given to the listeners and
published on Redis (``CHANGE_CHANNEL``). An exchange that cannot be reached keeps its last good
definitions: a WARNING names the cause, and the load is tried again after 1, 2, 4, ... s (up to
``retry_max``), each retry counted in ``stats``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ...config import LiveInstrumentsConfig
from .definitions import InstrumentChange, InstrumentDefinition
from .history import InstrumentHistory
from .instrument_mapper import InstrumentMapper
from .markets import has_client, load_markets, new_client

log = logging.getLogger(__name__)

CHANGE_CHANNEL = "instruments:changes"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _now_us() -> int:
    return time.time_ns() // 1000


def _to_us(at: int | datetime) -> int:
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("at: a datetime with a time zone (UTC), or µs since the epoch")
        return (at - _EPOCH) // timedelta(microseconds=1)  # exact, where timestamp() * 1e6 rounds
    return int(at)


class LiveInstrumentProvider:
    def __init__(
        self,
        exchanges: Sequence[str] | None = None,
        refresh_interval: float | None = None,
        cache_ttl: float | None = None,
        markets_dir: str | None = None,
        redis_url: str | None = None,
        config: LiveInstrumentsConfig | None = None,
        *,
        api_url: str | None = None,
        retry_base: float = 1.0,
        retry_max: float = 60.0,
        mapper: InstrumentMapper | None = None,
    ) -> None:
        """``exchanges``, ``refresh_interval`` (s), ``cache_ttl`` (s) and ``markets_dir`` default to
        ``config``'s (``live_instruments`` of streaming.yaml: binance, deribit, coinbase; 300; 600; null, or
        ``$MDTH_MARKETS_DIR`` when set: the seeds' ``LiveInstrumentProvider()`` offline). ``api_url`` sends
        the clients' requests to a local server (tests, benchmarks: ``markets.new_client``)."""
        config = config or LiveInstrumentsConfig()
        self.exchanges = tuple(exchanges if exchanges is not None else config.exchanges)
        self.refresh_interval = float(
            refresh_interval if refresh_interval is not None else config.refresh_interval
        )
        self.cache_ttl = float(cache_ttl if cache_ttl is not None else config.cache_ttl)
        # an api_url asks for the clients' requests: no markets_dir from the config (or the environment)
        self.markets_dir = (
            markets_dir if markets_dir is not None or api_url is not None else config.markets_dir
        )
        self.redis_url = redis_url
        self.api_url = api_url
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.mapper = mapper or InstrumentMapper()
        self.history_store = InstrumentHistory()
        self._clients: dict[str, Any] = {}  # ccxt id -> its client (None: markets_dir without one)
        # ccxt id -> the Tardis exchanges loaded from it (okex, okex-swap, okex-options: one load of okx)
        self._groups: dict[str, list[str]] = {}
        self._current: dict[str, dict[str, InstrumentDefinition]] = {}  # exchange -> ours -> definition
        self._index: dict[str, dict[str, InstrumentDefinition]] = {}  # exchange -> any spelling -> definition
        self._loaded_at: dict[str, float] = {}  # exchange -> time.monotonic() of its last good load
        self._loading: dict[str, asyncio.Future[list[InstrumentChange]]] = {}
        self._failures: dict[str, int] = {}
        self._listeners: list[Callable[[InstrumentChange], Any]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: Any = None
        self._started = False
        #: metrics (``metrics/``; None when off): called with each load's ccxt id, seconds and outcome
        self.load_timer: Callable[[str, float, str], None] | None = None
        self._starting = asyncio.Lock()
        self.stats: dict[str, Any] = {
            "loads": 0,
            "load_failures": 0,
            "retries": 0,
            "changes": 0,
            "published": 0,
            "publish_failures": 0,
            "listener_failures": 0,
            "stale_reads": 0,  # definitions served past cache_ttl because a reload failed
            "exchanges": {},  # exchange -> instruments, load_seconds, last_load_us, last_error
        }

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load every exchange once (one that fails is retried in the background), then refresh. A
        provider not started starts at its first ``get_instrument`` (the seeds' services do not start
        it); ``stop()`` ends it either way."""
        async with self._starting:
            if not self._started:
                await self._start()
                self._started = True

    async def _start(self) -> None:
        if self.redis_url is not None:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.redis_url)
        for exchange in self.exchanges:
            ccxt_id = self.mapper.ccxt_exchange(exchange)
            if ccxt_id not in self._clients:
                if has_client(ccxt_id):
                    self._clients[ccxt_id] = new_client(ccxt_id, self.api_url)
                elif self.markets_dir is not None:
                    self._clients[ccxt_id] = None
                else:
                    raise ValueError(
                        f"{exchange}: this ccxt has no {ccxt_id!r}; give markets_dir with {ccxt_id}.json"
                    )
            self._groups.setdefault(ccxt_id, []).append(exchange)
            self.stats["exchanges"][exchange] = {
                "ccxt_exchange": ccxt_id,
                "instruments": 0,
                "load_seconds": None,
                "last_load_us": None,
                "last_error": None,
            }
        await asyncio.gather(*(self._try_load(ccxt_id) for ccxt_id in self._groups))
        self._tasks = [asyncio.create_task(self._refresh_loop(ccxt_id)) for ccxt_id in self._groups]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for client in self._clients.values():
            if client is not None:
                await client.close()
        self._clients = {}
        self._groups = {}
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        self._started = False

    async def __aenter__(self) -> LiveInstrumentProvider:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- reading --------------------------------------------------------------------------------------

    async def get_instrument(
        self, exchange: str, symbol: str, at: int | datetime | None = None
    ) -> InstrumentDefinition:
        """The definition of ``symbol`` (ours, ccxt's or the native id) on ``exchange`` now, or at ``at``
        (µs since the epoch or an aware datetime); KeyError naming what was asked if there is none."""
        if at is not None:
            if not self._started:
                await self.start()
            return self._at(exchange, symbol, _to_us(at))
        index = self._index.get(exchange)
        if index is not None:
            loaded = self._loaded_at[exchange]
            if time.monotonic() - loaded > self.cache_ttl:
                await self._reload_stale(exchange)
                index = self._index[exchange]
            definition = index.get(symbol)
            if definition is not None:
                return definition
            definition = index.get(self.mapper.normalize(exchange, symbol))
            if definition is not None:
                return definition
        elif not self._started:
            await self.start()
            return await self.get_instrument(exchange, symbol)
        raise KeyError(self._unknown(exchange, symbol))

    def _at(self, exchange: str, symbol: str, at_us: int) -> InstrumentDefinition:
        current = self._index.get(exchange, {}).get(symbol)
        ours = current.symbol if current is not None else self.mapper.normalize(exchange, symbol)
        definition = self.history_store.at(exchange, ours, at_us)
        if definition is None:
            raise KeyError(
                f"{exchange} {symbol!r}: no definition in force at {at_us} µs (none in the history)"
            )
        return definition

    def _unknown(self, exchange: str, symbol: str) -> str:
        if exchange not in self.stats["exchanges"]:
            return f"{exchange!r} is not one of this provider's exchanges {list(self.exchanges)}"
        if exchange not in self._index:
            error = self.stats["exchanges"][exchange]["last_error"]
            return f"{exchange}: no definitions loaded yet (last error: {error})"
        return f"{exchange} has no instrument {symbol!r} (as ours, ccxt's or the native id)"

    def instruments(self, exchange: str) -> list[InstrumentDefinition]:
        return list(self._current.get(exchange, {}).values())

    def history(self, exchange: str, symbol: str) -> list[tuple[int, int | None, InstrumentDefinition]]:
        """(effective from, until or None, definition) of each version, oldest first; symbol in any
        spelling."""
        return self.history_store.versions(exchange, self.mapper.normalize(exchange, symbol))

    def add_listener(self, listener: Callable[[InstrumentChange], Any]) -> None:
        """``listener(change)`` for every change (a coroutine function is awaited)."""
        self._listeners.append(listener)

    # -- loading --------------------------------------------------------------------------------------

    async def refresh(self, exchanges: Sequence[str] | None = None) -> list[InstrumentChange]:
        """Load now (the exchanges of one ccxt exchange share one load, and so do concurrent callers); the
        changes found. Raises what the load raised (the last good definitions stay)."""
        if not self._started:
            await self.start()
        sources = dict.fromkeys(self.mapper.ccxt_exchange(x) for x in exchanges or self.exchanges)
        results = await asyncio.gather(*(self._load(ccxt_id) for ccxt_id in sources))
        wanted = set(exchanges or self.exchanges)
        return [change for changes in results for change in changes if change.exchange in wanted]

    def _load(self, ccxt_id: str) -> asyncio.Future[list[InstrumentChange]]:
        future = self._loading.get(ccxt_id)
        if future is None:
            future = self._loading[ccxt_id] = asyncio.ensure_future(self._load_once(ccxt_id))
            future.add_done_callback(lambda _f: self._loading.pop(ccxt_id, None))
        return future

    async def _load_once(self, ccxt_id: str) -> list[InstrumentChange]:
        group = self._groups[ccxt_id]
        started = time.perf_counter()
        try:
            markets = await load_markets(ccxt_id, self._clients[ccxt_id], self.markets_dir)
        except Exception as exc:
            self.stats["load_failures"] += 1
            if self.load_timer is not None:
                self.load_timer(ccxt_id, time.perf_counter() - started, "failed")
            for exchange in group:
                self.stats["exchanges"][exchange]["last_error"] = f"{type(exc).__name__}: {exc}"
            raise
        read_at = _now_us()
        changes: list[InstrumentChange] = []
        for exchange in group:
            kept = self.mapper.set_markets(exchange, markets)
            new = {
                ours: InstrumentDefinition.from_market(exchange, ccxt_id, ours, market, read_at)
                for ours, market in kept.items()
            }
            changes += self._apply(exchange, new, read_at)
            self.stats["exchanges"][exchange].update(
                instruments=len(new),
                load_seconds=time.perf_counter() - started,
                last_load_us=read_at,
                last_error=None,
            )
        self.stats["loads"] += 1
        if self.load_timer is not None:
            self.load_timer(ccxt_id, time.perf_counter() - started, "ok")
        for change in changes:
            await self._announce(change)
        return changes

    def _apply(
        self, exchange: str, new: dict[str, InstrumentDefinition], read_at: int
    ) -> list[InstrumentChange]:
        old = self._current.get(exchange)
        changes: list[InstrumentChange] = []
        for ours, definition in new.items():
            before = None if old is None else old.get(ours)
            if before is None:
                self.history_store.begin(definition, read_at)
                if old is not None:  # the first load lists nothing: it is where the history starts
                    changes.append(InstrumentChange(exchange, ours, "listed", {}, read_at, definition))
            else:
                diff = before.differences(definition)
                if diff:
                    self.history_store.begin(definition, read_at)
                    changes.append(InstrumentChange(exchange, ours, "changed", diff, read_at, definition))
        for ours, definition in (old or {}).items():
            if ours not in new:
                self.history_store.end(exchange, ours, read_at)
                changes.append(InstrumentChange(exchange, ours, "delisted", {}, read_at, definition))
        index: dict[str, InstrumentDefinition] = {}
        for definition in new.values():
            index[definition.exchange_symbol] = definition  # native ids first: ours and ccxt's win a clash
            index[definition.ccxt_symbol] = definition
            index[definition.symbol] = definition
        self._current[exchange] = new
        self._index[exchange] = index
        self._loaded_at[exchange] = time.monotonic()
        self.stats["changes"] += len(changes)
        return changes

    async def _announce(self, change: InstrumentChange) -> None:
        if self._redis is not None:
            try:
                await self._redis.publish(CHANGE_CHANNEL, orjson.dumps(change.to_dict()))
                self.stats["published"] += 1
            except Exception as exc:
                self.stats["publish_failures"] += 1
                log.warning(
                    "instruments: change of %s %s not published on Redis: %s",
                    change.exchange,
                    change.symbol,
                    exc,
                )
        for listener in self._listeners:
            try:
                result = listener(change)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.stats["listener_failures"] += 1
                log.exception(
                    "instruments: a listener failed on a change of %s %s", change.exchange, change.symbol
                )

    def _name(self, ccxt_id: str) -> str:
        group = self._groups[ccxt_id]
        return ", ".join(group) + ("" if group == [ccxt_id] else f" ({ccxt_id})")

    async def _try_load(self, ccxt_id: str) -> bool:
        """One load; a failure is a WARNING with its cause (the last good definitions stay)."""
        try:
            await self._load(ccxt_id)
        except Exception as exc:
            failures = self._failures[ccxt_id] = self._failures.get(ccxt_id, 0) + 1
            kept = sum(len(self._current.get(exchange, {})) for exchange in self._groups[ccxt_id])
            log.warning(
                "instruments: %s unreachable (%s: %s); keeping its last good definitions (%d), "
                "retry %d in %.2f s",
                self._name(ccxt_id),
                type(exc).__name__,
                exc,
                kept,
                failures,
                self._retry_delay(ccxt_id),
            )
            return False
        self._failures[ccxt_id] = 0
        return True

    def _retry_delay(self, ccxt_id: str) -> float:
        failures = self._failures.get(ccxt_id, 0)
        if failures == 0:
            return self.refresh_interval
        return min(self.retry_max, self.retry_base * 2 ** (failures - 1), self.refresh_interval)

    async def _refresh_loop(self, ccxt_id: str) -> None:
        while True:
            await asyncio.sleep(self._retry_delay(ccxt_id))
            if self._failures.get(ccxt_id):
                self.stats["retries"] += 1
            await self._try_load(ccxt_id)

    async def _reload_stale(self, exchange: str) -> None:
        """The cache of ``exchange`` is older than ``cache_ttl``: load now, unless the refresh task is
        already retrying with back-off; meanwhile the last good definitions answer (``stale_reads``)."""
        ccxt_id = self.mapper.ccxt_exchange(exchange)
        if self._failures.get(ccxt_id) or not await self._try_load(ccxt_id):
            self.stats["stale_reads"] += 1
