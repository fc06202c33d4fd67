"""``--mode live-instruments-sync``: the instrument definitions of ``live_instruments.exchanges``
(``instrument_service.LiveInstrumentProvider``: ccxt, or ``live_instruments.markets_dir`` offline) kept
current in Redis and, with persist mode, as rows of the ``instruments`` table (docs/ARCHITECTURE.md
"Live instrument definitions").

Redis: a hash per exchange, ``instruments:{exchange}``, one field per instrument (our symbol,
``BTC-USDT``) holding the definition's JSON (``InstrumentDefinition.to_dict``). At start each hash is
replaced whole (written under ``instruments:{exchange}:loading`` and renamed in one transaction, so a
reader never sees half of it and instruments no longer listed are gone); then every change the provider
detects at a refresh (listed, changed: the field set; delisted: the field deleted) is applied as it comes,
and the provider itself publishes it on ``instruments:changes``. A write Redis refuses or cannot take is
counted and logged, and the exchange's whole hash is written again with back-off (1 s doubling to 30 s)
until it lands: nothing is lost, a change may land late.

The table: one row per version of a definition (``bigquery_client/tables.py``, ``instruments``), through
persist mode's machinery (batches, retries, the spill; BigQuery, its emulator or the local store as
``persist_mode.make_sink`` picks): at start a row per instrument (``change`` = ``loaded``), then a row per
change. Every start writes the current versions again; the ``instruments_dedup`` view shows each
``(exchange, symbol, version)`` once.

It runs alone (``main.run_instruments``: no ingester, no candles) or beside the candle modes as one more
sink of the service, after the stores (``main.run``): it takes no frames, only its own provider's
changes."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...config import StreamingConfig
from ...redact import redact_url
from ...timeutil import now_us
from ..bigquery_client import RowSink
from ..bigquery_client.tables import instruments_table
from ..ledger import Entry, sink_entry
from ..modes.persist_mode import PersistMode, make_sink
from .base import FrameOutput

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ..instrument_service import InstrumentChange, InstrumentDefinition, LiveInstrumentProvider

log = logging.getLogger(__name__)
#: the hash of an exchange's current definitions
HASH_KEY = "instruments:{exchange}"
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 30.0
#: how long a version's row may wait before its batch is written
ROW_TIMEOUT_S = 1.0


def hash_key(exchange: str) -> str:
    return HASH_KEY.format(exchange=exchange)


def definition_json(definition: InstrumentDefinition) -> str:
    return json.dumps(definition.to_dict(), separators=(",", ":"), sort_keys=True)


def version_of(definition: InstrumentDefinition) -> str:
    """A name for the definition's values: a hash of every field but when it was read."""
    names = [f.name for f in dataclasses.fields(definition) if f.name != "read_at_us"]
    values = [(name, getattr(definition, name)) for name in names]
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


@dataclass(frozen=True, slots=True)
class InstrumentRow:
    """A row of the ``instruments`` table but its ``timestamp_out`` (the store's encoders read the
    columns by name from it, as from a tick record)."""

    exchange: str
    symbol: str
    version: str
    change: str
    effective_from: int
    local_timestamp: int  # the definition's read_at
    ccxt_symbol: str
    exchange_symbol: str
    ccxt_exchange: str
    base: str
    quote: str
    settle: str | None
    type: str
    linear: bool | None
    inverse: bool | None
    contract_size: float | None
    tick_size: float | None
    lot_step: float | None
    min_size: float | None
    min_notional: float | None
    trading_fees_maker: float | None
    trading_fees_taker: float | None
    expiry: int | None
    strike: float | None
    option_type: str | None
    active: bool

    @classmethod
    def of(cls, d: InstrumentDefinition, change: str, effective_from_us: int) -> InstrumentRow:
        return cls(
            exchange=d.exchange,
            symbol=d.symbol,
            version=version_of(d),
            change=change,
            effective_from=int(effective_from_us),
            local_timestamp=int(d.read_at_us),
            ccxt_symbol=d.ccxt_symbol,
            exchange_symbol=d.exchange_symbol,
            ccxt_exchange=d.ccxt_exchange,
            base=d.base,
            quote=d.quote,
            settle=d.settle,
            type=d.type,
            linear=_bool(d.linear),
            inverse=_bool(d.inverse),
            contract_size=_float(d.contract_size),
            tick_size=_float(d.tick_size),
            lot_step=_float(d.lot_step),
            min_size=_float(d.min_size),
            min_notional=_float(d.min_notional),
            trading_fees_maker=_float(d.trading_fees_maker),
            trading_fees_taker=_float(d.trading_fees_taker),
            expiry=None if d.expiry_us is None else int(d.expiry_us),
            strike=_float(d.strike),
            option_type=d.option_type,
            active=bool(d.active),
        )


class InstrumentRows(PersistMode):
    """The ``instruments`` table's writer: persist mode's buffer, backlog and spill with one table."""

    name = "instruments"

    def __init__(self, config: StreamingConfig, sink: RowSink | None = None) -> None:
        bigquery = config.persist.bigquery
        if sink is None:
            sink = make_sink(bigquery, config.persist.local.path)
        table = instruments_table(bigquery)
        tables = {"instruments": table}
        super().__init__(bigquery, (), "tardis-realtime", sink, tables=tables, spill=config.persist)
        self.handed = 0

    async def start(self) -> None:
        await self._ensure_tables()
        await self._start_backlog()

    def add_rows(self, rows: list[InstrumentRow]) -> None:
        if not rows:
            return
        self.handed += len(rows)
        self._buffer("instruments", self.sink.encode_records(self.tables["instruments"], rows, now_us()))
        self.backlog.wake()

    def _timeout_s(self, key: str) -> float:
        return min(ROW_TIMEOUT_S, self.config.batch_timeout_ms / 1000)


class InstrumentsSync:
    """The sink of ``live-instruments-sync``: a provider of its own, the Redis hashes, and (``persist``)
    the table's rows. ``provider``: one made already (tests, embedding); None: made at start from
    ``live_instruments``."""

    name = "instruments"

    def __init__(
        self,
        config: StreamingConfig,
        persist: bool = False,
        sink: RowSink | None = None,
        provider: LiveInstrumentProvider | None = None,
    ) -> None:
        self.config = config
        self.settings = config.live_instruments
        self.exchanges = tuple(self.settings.exchanges)
        self.redis_url = config.serve.redis_url
        self.rows = InstrumentRows(config, sink) if persist else None
        self.provider = provider
        self._redis: Redis | None = None
        self._queue: asyncio.Queue[InstrumentChange | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty: dict[str, int] = {}  # exchange -> changes waiting for its hash to be written whole
        self._unloaded: set[str] = set()  # exchanges the provider could not load yet
        #: metrics (``metrics/``; None when off): handed to the provider, which times each load with it
        self.load_timer: Callable[[str, float, str], None] | None = None
        self.stats: dict[str, Any] = {
            "instruments": {},  # exchange -> definitions written at start
            "changes": {"listed": 0, "changed": 0, "delisted": 0},
            "changes_written": 0,  # applied to its hash as it came
            "changes_rewritten": 0,  # landed with a whole rewrite of its hash after a failure
            "hash_rewrites": 0,
            "redis_errors": 0,
        }

    @classmethod
    def from_config(cls, config: StreamingConfig, option: str | None = None) -> InstrumentsSync:
        """``option`` ``persist``: the table too."""
        return cls(config, persist=option == "persist")

    # -- the sink's life ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the definitions, write each exchange's hash whole and a row per instrument, then follow
        the provider's changes. A Redis that cannot be reached at start is an error (ConnectionError)."""
        from redis.asyncio import Redis

        from ..instrument_service import LiveInstrumentProvider  # ccxt loads only here

        self._loop = asyncio.get_running_loop()
        db = self.config.serve.redis_db
        self._redis = Redis.from_url(self.redis_url, **({"db": db} if db is not None else {}))
        await self._redis.ping()
        if self.rows is not None:
            await self.rows.start()
        if self.provider is None:
            s = self.settings
            self.provider = LiveInstrumentProvider(
                exchanges=self.exchanges,
                refresh_interval=s.refresh_interval,
                cache_ttl=s.cache_ttl,
                markets_dir=s.markets_dir,
                redis_url=self.redis_url,
                config=s,
            )
        if self.load_timer is not None:
            self.provider.load_timer = self.load_timer
        await self.provider.start()
        self.provider.add_listener(self._on_change)
        for exchange in self.exchanges:
            definitions = self.provider.instruments(exchange)
            if definitions:
                await self._write_hash(exchange, definitions)
                self._loaded(exchange, definitions)
            else:
                self._unloaded.add(exchange)
                log.warning(
                    "instruments: no definitions of %s yet (the provider retries): its hash %s is left as it"
                    " is until they load",
                    exchange,
                    hash_key(exchange),
                )
        log.info(
            "instrument definitions in Redis (%s), hashes %s: %s%s",
            redact_url(self.redis_url),
            hash_key("{exchange}"),
            ", ".join(f"{x} {n}" for x, n in self.stats["instruments"].items()) or "none yet",
            "; a row per version to the instruments table" if self.rows is not None else "",
        )
        self._task = asyncio.create_task(self._follow(), name="instruments-sync")

    async def accept(self, output: FrameOutput) -> None:
        return None  # the frames carry no definitions: the provider does

    async def close(self) -> None:
        """Stop the provider, apply the changes it gave, write the rows left (``close_timeout_s``) and
        close Redis."""
        if self.provider is not None:
            await self.provider.stop()
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
        if self.rows is not None:
            await self.rows.close()
        if self._redis is not None:
            await self._redis.aclose()

    def _loaded(self, exchange: str, definitions: list[InstrumentDefinition]) -> None:
        """An exchange's first definitions are in its hash: a row each (``loaded``)."""
        self.stats["instruments"][exchange] = len(definitions)
        if self.rows is not None:
            self.rows.add_rows([InstrumentRow.of(d, "loaded", d.read_at_us) for d in definitions])

    # -- changes --------------------------------------------------------------------------------------
    def _on_change(self, change: InstrumentChange) -> None:
        """The provider's listener (called on its loop, or another thread): queued, applied in order."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._queue.put_nowait, change)

    async def _follow(self) -> None:
        """Apply the changes in order; while an exchange's hash waits for a rewrite, retry it with
        back-off; an exchange not loaded at start is written whole once the provider has loaded it (its
        first load is no change)."""
        delay = RETRY_FIRST_S
        while True:
            timeout = delay if self._dirty or self._unloaded else None
            try:
                change = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                self._check_unloaded()
                delay = RETRY_FIRST_S if await self._rewrite_dirty() else min(delay * 2, RETRY_MAX_S)
                continue
            if change is None:
                if self._dirty:
                    await self._rewrite_dirty()
                return
            await self._apply(change)

    async def _apply(self, change: InstrumentChange) -> None:
        d = change.definition
        self.stats["changes"][change.kind] = self.stats["changes"].get(change.kind, 0) + 1
        if self.rows is not None:
            self.rows.add_rows([InstrumentRow.of(d, change.kind, change.effective_from_us)])
        if change.exchange in self._dirty:
            self._dirty[change.exchange] += 1  # the rewrite takes it along
            return
        assert self._redis is not None
        try:
            if change.kind == "delisted":
                await self._redis.hdel(hash_key(change.exchange), d.symbol)
            else:
                await self._redis.hset(hash_key(change.exchange), d.symbol, definition_json(d))
        except Exception as exc:  # redis' errors, OSError, timeouts: the whole hash is written again
            self.stats["redis_errors"] += 1
            self._dirty[change.exchange] = 1
            log.warning(
                "instruments: %s %s %s not written to Redis (%s): the hash is written whole again",
                change.exchange,
                d.symbol,
                change.kind,
                exc,
            )
            return
        self.stats["changes_written"] += 1

    def _check_unloaded(self) -> None:
        """Exchanges loaded since the start: their hash to be written whole (with the rewrites)."""
        assert self.provider is not None
        for exchange in list(self._unloaded):
            definitions = self.provider.instruments(exchange)
            if definitions:
                self._unloaded.discard(exchange)
                self._loaded(exchange, definitions)
                self._dirty.setdefault(exchange, 0)
                log.info("instruments: %s loaded, %d definitions", exchange, len(definitions))

    async def _rewrite_dirty(self) -> bool:
        """Write the hashes of the exchanges that missed a change whole again; True when all landed."""
        assert self.provider is not None
        for exchange in list(self._dirty):
            try:
                await self._write_hash(exchange, self.provider.instruments(exchange))
            except Exception as exc:
                self.stats["redis_errors"] += 1
                log.warning("instruments: %s's hash not written to Redis again (%s)", exchange, exc)
                return False
            self.stats["changes_rewritten"] += self._dirty.pop(exchange)
            self.stats["hash_rewrites"] += 1
        return True

    async def _write_hash(self, exchange: str, definitions: list[InstrumentDefinition]) -> None:
        """The exchange's hash replaced by ``definitions`` in one transaction."""
        assert self._redis is not None
        key = hash_key(exchange)
        loading = key + ":loading"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(loading)
            if definitions:
                pipe.hset(loading, mapping={d.symbol: definition_json(d) for d in definitions})
                pipe.rename(loading, key)
            else:
                pipe.delete(key)
            await pipe.execute()

    # -- reporting ------------------------------------------------------------------------------------
    def get_stats(self) -> dict[str, Any]:
        stats = dict(self.stats, changes_waiting=sum(self._dirty.values()))
        if self.provider is not None:
            stats["provider"] = dict(self.provider.stats)
        if self.rows is not None:
            stats["table"] = self.rows.get_stats()
        return stats

    def progress_line(self) -> str | None:
        s = self.stats
        line = (
            f"instruments {sum(s['instruments'].values())} changes {sum(s['changes'].values())}"
            f" redis_errors {s['redis_errors']}"
        )
        if self.rows is not None:
            line += " " + self.rows.progress_line()
        return line

    def summary_lines(self) -> list[str]:
        s = self.stats
        lines = [
            "instruments         "
            + ", ".join(f"{x} {n}" for x, n in s["instruments"].items())
            + f" in Redis; changes {', '.join(f'{k} {v}' for k, v in s['changes'].items())}"
            f" (redis errors {s['redis_errors']}, hash rewrites {s['hash_rewrites']})"
        ]
        if self.rows is not None:
            lines += [line.replace("persisted  ", "instruments", 1) for line in self.rows.summary_lines()]
        return lines

    def ledger_entries(self, handed: Mapping[str, int]) -> list[Entry]:
        """Every change the provider gave: applied to its hash, landed with a rewrite, or waiting; and the
        table's rows (handed = written + waiting + lost + refused)."""
        s = self.stats
        entries = [
            sink_entry(
                "redis",
                "instrument changes",
                sum(s["changes"].values()),
                {
                    "written": s["changes_written"],
                    "rewritten": s["changes_rewritten"],
                    "waiting": sum(self._dirty.values()),
                },
            )
        ]
        if self.rows is not None:
            entries.append(self.rows._ledger_entry("instrument rows", self.rows.handed))
        return entries

    # -- checkpoints: the definitions are read again at every start, nothing to carry -------------------
    def durable_through(self) -> int | None:
        return None

    def checkpoint_state(self) -> Any:
        return None

    async def restore(self, state: Any, durable_through: int | None) -> None:
        return None

    async def recovered(self) -> None:
        return None
