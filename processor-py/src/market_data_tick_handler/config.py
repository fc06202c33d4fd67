"""``streaming.yaml``: one typed configuration, with every default written here once.

Values may reference the environment as ``${NAME}`` or ``${NAME:-default}`` (secrets stay out of the
file). Everything is checked at load, before anything starts: unknown keys in every section, types,
enumerations, ranges, timeframes, URLs and the ingester's endpoint. An error names the key path, the
value and what is allowed, e.g. ``candles.timeframes: '7x' is not a timeframe (use <n>s|m|h|d, e.g. 15s,
1m, 4h)``, so a typo never silently falls back to a default. :func:`validate` runs the same checks again
on a configuration the command line changed (main.py).

``serve.redis_url``: ``--redis-url`` > the file's ``serve.redis_url`` > ``$REDIS_URL`` > the default.

``data_types`` is the one place that says what is streamed: the ingester's ``--data-types``,
``--book-depth`` and ``--book-interval-ms`` are computed from it by ``DataTypeRouter`` (there is no
``ingest.data_types`` any more). Its entries, their defaults and their allowed sources come from the
data-type registry (``streaming_service/data_types/registry.py``); a data type left out of the file keeps
its defaults; ``fallback`` follows from whether ``source`` is a fallback source (and must agree with it
when given). See docs/DATA_TYPES.md.

``ingest.exchanges`` runs several exchanges in one ingester session (merged by exchange time in a replay):
a mapping exchange -> ``{symbols, files, data_types}`` instead of ``ingest.exchange``, ``symbols`` and
``files`` (one form or the other); ``data_types`` narrows, for that exchange, the types enabled under
``data_types``. ``IngestConfig.streams()`` is what is streamed, per exchange, in either form.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import yaml

from .redact import redact_url

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: the Redis URL when neither ``--redis-url`` nor the file's ``serve.redis_url`` gives one
REDIS_URL_ENV = "REDIS_URL"
#: the processor's ZeroMQ CURVE secret key (Z85, 40 characters): required by a ``tcp://`` endpoint that
#: is not loopback (streaming_service/ingest/curve.py)
CURVE_SECRET_ENV = "MDTH_CURVE_SECRET_KEY"
#: optional: the ingesters' CURVE public keys (Z85, comma-separated) allowed to connect; unset = any
CURVE_CLIENT_KEYS_ENV = "MDTH_CURVE_CLIENT_KEYS"
#: ``live_instruments.markets_dir`` when the file does not give one: offline instrument definitions
MARKETS_DIR_ENV = "MDTH_MARKETS_DIR"
#: the processor's and the spawned ingester's metrics addresses, when streaming.yaml does not give them
METRICS_ADDRESS_ENV = "MDTH_METRICS_ADDRESS"
INGESTER_METRICS_ADDRESS_ENV = "MDTH_INGESTER_METRICS_ADDRESS"
_Z85_KEY = re.compile(r"[0-9a-zA-Z.:+=^!/*?&<>()\[\]{}@%$#-]{40}")

# the timeframe grammar of candle_processor/timeframes.py (Timeframe.parse), which config must not import
# (it would load the whole streaming_service package); test_config checks that the two agree
_TIMEFRAME = re.compile(r"^(\d+)([smhd])$")
_TIMEFRAME_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_TIMEFRAME_USE = "use <n>s|m|h|d, e.g. 15s, 1m, 4h"
_SPEED = re.compile(r"^(max|\d+(\.\d*)?|\.\d+)$")
_EXCHANGE_ID = re.compile(r"^[a-z][a-z0-9-]*$")


class ConfigError(ValueError):
    pass


def _at_least(minimum: float, default: Any) -> Any:
    """A field whose value, when set, must be >= ``minimum`` (checked at load)."""
    return field(default=default, metadata={"min": minimum})


def _above(bound: float, default: Any) -> Any:
    """A field whose value, when set, must be > ``bound`` (checked at load)."""
    return field(default=default, metadata={"above": bound})


def _one_of(what: str, default: Any, use: str | None = None) -> Any:
    """A ``Literal`` field: a value outside it is '``x`` is not <what> (use <use>)'; ``use`` defaults to
    the Literal's values."""
    return field(default=default, metadata={"what": what, "use": use})


@dataclass(frozen=True, slots=True)
class DataTypeConfig:
    """One entry of ``data_types`` (the configuration class of a data type without options of its own):
    ``batch_timeout`` (ms) is how long a batch of the type's tick rows may wait before it is written
    (``streaming-ticks-bigquery``; candle rows use ``persist.bigquery.batch_timeout_ms``, and serve mode
    publishes every frame at once). Defaults: the data-type registry's."""

    enabled: bool = True
    source: str = "tardis_realtime"
    batch_timeout: int = _at_least(0, 60_000)
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class BookSnapshotsConfig(DataTypeConfig):
    depth: int = _at_least(1, 25)  # levels per side
    interval_ms: int = _at_least(0, 100)  # one snapshot per interval (0 = on every change)


@dataclass(frozen=True, slots=True)
class GapsConfig(DataTypeConfig):
    # no message on a subscribed symbol for this long = a stale gap
    stale_after_ms: int = _at_least(0, 30_000)


class DataTypesConfig:
    """``data_types``: one entry per data type of the data-type registry, in its order (the order
    ``DataTypeRouter.get_supported_data_types()`` lists them in), each of the type's configuration class
    with the registry's defaults, e.g. ``DataTypesConfig(gaps=GapsConfig(stale_after_ms=5000))``.

    ``DataTypesConfig(...)`` makes a frozen dataclass with one field per type: a subclass made from the
    registry on first use (``_data_types_class``), as the registry, which imports the configuration
    classes above, cannot be read while this module loads."""

    __slots__ = ()
    _names: tuple[str, ...] = ()

    def __new__(cls, **entries: DataTypeConfig) -> DataTypesConfig:
        return super().__new__(_data_types_class() if cls is DataTypesConfig else cls)

    def names(self) -> tuple[str, ...]:
        return self._names

    def __getitem__(self, name: str) -> DataTypeConfig:
        if name not in self._names:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str) -> DataTypeConfig | None:
        return getattr(self, name) if name in self._names else None

    def __reduce__(self) -> tuple[Any, tuple[dict[str, DataTypeConfig]]]:
        """Pickled by its entries (the made class is not importable by name): the processor's
        checkpoints hold it."""
        return _data_types_from, ({name: getattr(self, name) for name in self._names},)


def _data_types_from(entries: dict[str, DataTypeConfig]) -> DataTypesConfig:
    return DataTypesConfig(**entries)


@functools.cache
def _data_types_class() -> type[DataTypesConfig]:
    """The dataclass ``DataTypesConfig`` makes: a field per data type of the registry, defaulting to the
    type's default entry."""
    from .streaming_service.data_types.registry import DATA_TYPES

    cls = dataclasses.make_dataclass(
        "DataTypesConfig",
        [(t.name, t.config_class, field(default=t.config)) for t in DATA_TYPES],
        bases=(DataTypesConfig,),
        frozen=True,
        slots=True,
    )
    cls.__module__, cls.__qualname__ = __name__, DataTypesConfig.__qualname__
    cls.__doc__ = DataTypesConfig.__doc__
    cls._names = tuple(t.name for t in DATA_TYPES)
    return cls


@dataclass(frozen=True, slots=True)
class ServeConfig:
    transport: Literal["redis", "inmemory"] = _one_of("a transport", "redis")
    redis_url: str = "redis://localhost:6379"  # without it in the file: $REDIS_URL, then this
    redis_db: int | None = _at_least(0, None)  # overrides the URL's database when set
    stream_maxlen: int = _at_least(1, 1000)  # entries kept per candle stream (XADD MAXLEN ~)
    # frames kept while Redis is unreachable; beyond it the oldest are dropped
    backlog_mb: int = _at_least(1, 256)
    close_timeout_s: float = _at_least(0, 10.0)  # at shutdown, how long to keep trying to publish the backlog
    # a publish not acknowledged by then waits in the backlog (Redis frozen)
    reply_timeout_ms: int = _at_least(1, 2000)


@dataclass(frozen=True, slots=True)
class PartitioningConfig:
    """Time partitioning of a BigQuery table: ``type`` HOUR (the finest BigQuery has), DAY, MONTH or
    YEAR on the TIMESTAMP column ``field``; partitions older than ``ttl_days`` are deleted (null: kept)."""

    type: Literal["HOUR", "DAY", "MONTH", "YEAR"] = _one_of(
        "a BigQuery partitioning",
        "DAY",
        "HOUR (BigQuery's finest: there are no 5-minute partitions), DAY, MONTH or YEAR",
    )
    field: str = "timestamp_out"
    ttl_days: float | None = _above(0, None)


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """A local BigQuery emulator (``bqemulator``): its REST URL and its gRPC ``host:port`` (Storage Write
    API). Set, it is used with anonymous credentials instead of the environment's."""

    rest_url: str = "http://127.0.0.1:9050"
    grpc_target: str = "127.0.0.1:9060"


@dataclass(frozen=True, slots=True)
class BigQueryConfig:
    """``persist.bigquery``: where and how closed candles are written (docs/ARCHITECTURE.md "Persist mode").
    ``target`` picks the dataset: ``auto`` = ``dataset_live`` for live sources, ``dataset_historical``
    for replays. Credentials come only from the environment (GOOGLE_APPLICATION_CREDENTIALS or ADC)."""

    project_id: str | None = None
    dataset_live: str = "market_data_streaming_live"
    dataset_historical: str = "market_data_streaming"
    target: Literal["auto", "live", "historical"] = _one_of("a target", "auto")
    location: str = "US"  # of datasets this creates
    batch_size: int = _at_least(1, 1000)  # rows per append, at most
    batch_timeout_ms: int = _at_least(0, 60_000)  # a row waits at most this long before its batch is sent
    live_partitioning: PartitioningConfig = field(
        default_factory=lambda: PartitioningConfig(type="HOUR", ttl_days=30)
    )
    historical_partitioning: PartitioningConfig = field(default_factory=PartitioningConfig)
    clustering_fields: tuple[str, ...] = ("exchange", "symbol")
    # encoded rows kept while BigQuery is unreachable; beyond it the oldest are dropped
    backlog_mb: int = _at_least(1, 256)
    close_timeout_s: float = _at_least(0, 30.0)  # at shutdown, how long to keep trying to write what is left
    request_timeout_s: float = _above(0, 30.0)  # one API call, at most
    emulator: EmulatorConfig | None = None

    def configured(self) -> bool:
        """Whether rows go to BigQuery (a project set) or its emulator (one given); else to the local
        store (``persist.local``)."""
        project = self.project_id
        return self.emulator is not None or bool(project and not project.startswith("${"))

    def project(self) -> str:
        """``project_id``, or a ConfigError saying how to set it."""
        project = self.project_id
        if not project or project.startswith("${"):
            raise ConfigError(
                "persist.bigquery.project_id is not set: set GCP_PROJECT_ID (streaming.yaml reads it) or pass"
                " --bigquery-project"
            )
        return project


@dataclass(frozen=True, slots=True)
class LocalStoreConfig:
    """``persist.local``: the embedded store persist mode and the tick sink write to when no BigQuery
    project (``persist.bigquery.project_id``, ``$GCP_PROJECT_ID``) and no emulator is configured: the same
    datasets, tables and columns as Parquet files under ``path``, read through DuckDB
    (docs/ARCHITECTURE.md "The local store")."""

    path: str = "data/warehouse"


@dataclass(frozen=True, slots=True)
class PersistConfig:
    bigquery: BigQueryConfig = field(default_factory=BigQueryConfig)
    local: LocalStoreConfig = field(default_factory=LocalStoreConfig)
    # rows waiting for an unreachable store are kept in memory up to this, then spilled to files under
    # spill_dir (which survive a restart and are written first, in order, when the store is back)
    spill_mb: int = _at_least(1, 64)
    spill_dir: str = "data/spill"


@dataclass(frozen=True, slots=True)
class CandlesConfig:
    timeframes: tuple[str, ...] = ("15s", "1m", "5m", "15m", "4h", "24h")
    enable_hft_features: bool = True
    hft_timeframes: tuple[str, ...] = ("15s", "1m")
    hft_warmup_file: str | None = None  # recent candles (JSON lines or CSV) to warm the features up
    # at start, read recent candles from persist mode's tables (persist.bigquery: project, emulator,
    # dataset as persist mode would write them), whether or not persist mode runs in this process
    hft_warmup_bigquery: bool = False
    # candles per series a warm-up loads. EMA and RSI carry all history; after 500 candles what older
    # history still weighs in EMA_20 ((19/21)^480, ~1e-21) and RSI_20 (Wilder's (19/20)^479, ~2e-11) is
    # below ~1e-9, so the 500 give the values a series of any length would
    hft_warmup_candles: int = _at_least(1, 500)
    grace_ms: int = _at_least(0, 250)  # and below the smallest timeframe
    late_policy: Literal["drop", "revise"] = _one_of("a late policy", "drop")
    revise_window: int = _at_least(1, 4)
    clock: Literal["auto", "wall", "event"] = _one_of(
        "a clock", "auto", "auto (wall for live sources, event for replays), wall or event"
    )
    # the largest jump of the candle clock the engine takes as time passing (read by the candle engine)
    max_clock_jump_ms: int = _at_least(1000, 60_000)


@dataclass(frozen=True, slots=True)
class IngestExchangeConfig:
    """One exchange the ingester streams: an entry of ``ingest.exchanges`` (``exchange`` is its key), or
    the one-exchange form's ``ingest.exchange``, ``symbols`` and ``files``. ``data_types``: names of data
    types enabled under ``data_types`` (trades, book_snapshots, ...) to stream for this exchange; None:
    every enabled type it can have."""

    exchange: str
    symbols: tuple[str, ...]  # exchange-native ids
    files: tuple[str, ...] = ()  # replay: this exchange's recordings
    data_types: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class JournalConfig:
    """``ingest.journal``: every wire frame appended to a local journal by the ingester before the
    processor acts on it, and the processor's checkpoints of its state in ``dir``/checkpoints; a processor
    started again replays the journal from its last checkpoint (docs/ARCHITECTURE.md "Journal and
    checkpoints"). Files rotate at ``file_mb``; the oldest are deleted past ``max_mb`` in all or
    ``max_age_h`` of age."""

    enabled: bool = False
    dir: str = "data/journal"
    file_mb: int = _at_least(1, 64)
    max_mb: int = _at_least(1, 4096)
    max_age_h: float = _above(0, 72.0)
    # the processor checkpoints at the first candle boundary after this long since its last checkpoint
    checkpoint_interval_s: float = _at_least(0, 1.0)


@dataclass(frozen=True, slots=True)
class RecordConfig:
    """``ingest.record``: the ingester writes every raw exchange message it receives (before
    normalization) to ``dir``/<exchange>/<exchange>-<YYYY-MM-DDTHH>.gz, one gzip file per exchange and UTC
    hour, lines ``<local ns> <json>``: the replay format (``make replay FILES=...``)."""

    enabled: bool = False
    dir: str = "data/recordings"


@dataclass(frozen=True, slots=True)
class IngestConfig:
    source: Literal["tardis-realtime", "replay", "synthetic"] = _one_of("a source", "tardis-realtime")
    exchange: str = "binance"
    symbols: tuple[str, ...] = ("btcusdt",)  # what to stream is data_types (the ingester's --data-types)
    files: tuple[str, ...] = ()
    # several exchanges in one session, instead of exchange/symbols/files (``streams()``)
    exchanges: tuple[IngestExchangeConfig, ...] = ()
    speed: str = "1"
    # how a replay reaches tardis-dev: auto = straight into its mappers at speed max, through its real-time
    # WebSocket client otherwise; direct / websocket force one path (ingest-node/README.md "Replay paths")
    replay_path: Literal["auto", "direct", "websocket"] = _one_of("a replay path", "auto")
    # auto: a private ipc:// socket; tcp://127.0.0.1:port to bind a TCP port (another host: CURVE)
    endpoint: str = "auto"
    spawn: bool = True  # start the Node ingester as a child process
    node: str = "node"
    sndhwm: int = _at_least(1, 4)
    rcvhwm: int = _at_least(1, 4)
    max_batch: int = _at_least(1, 2000)
    extra_args: tuple[str, ...] = ()
    journal: JournalConfig = field(default_factory=JournalConfig)
    record: RecordConfig = field(default_factory=RecordConfig)

    def streams(self) -> tuple[IngestExchangeConfig, ...]:
        """What is streamed, per exchange: ``exchanges``, or the one exchange of ``exchange``,
        ``symbols`` and ``files`` (every enabled data type)."""
        return self.exchanges or (IngestExchangeConfig(self.exchange, self.symbols, self.files),)


def _markets_dir_from_env() -> str | None:
    return os.environ.get(MARKETS_DIR_ENV) or None


@dataclass(frozen=True, slots=True)
class LiveInstrumentsConfig:
    """``live_instruments``: instrument definitions loaded from the exchanges through ccxt and refreshed
    (``LiveInstrumentProvider``; ``--mode live-instruments-sync`` writes them to Redis and, with persist
    mode, to the ``instruments`` table: ``sinks/instruments_sync.py``). ``markets_dir``: a folder of
    ``<ccxt id>.json`` files in ccxt's market format, read instead of the network (reproducible runs,
    tests); ``$MDTH_MARKETS_DIR`` when the file does not say."""

    enabled: bool = True
    exchanges: tuple[str, ...] = ("binance", "deribit", "coinbase")  # Tardis exchange ids
    refresh_interval: int = _at_least(1, 300)  # seconds between two refreshes
    cache_ttl: int = _at_least(1, 600)  # seconds a definition is kept
    markets_dir: str | None = field(default_factory=_markets_dir_from_env)


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """``metrics``: Prometheus metrics over HTTP, ``/metrics`` and ``/health`` (docs/OPERATIONS.md).
    ``address`` is the processor's ``HOST:PORT``, ``ingester_address`` the ingester's (a spawned one is
    given it); port 0 picks a free port (logged). Loopback unless set otherwise. When the file does not
    say, ``$MDTH_METRICS_ADDRESS`` and ``$MDTH_INGESTER_METRICS_ADDRESS`` before the defaults."""

    enabled: bool = True
    address: str = field(default_factory=lambda: os.environ.get(METRICS_ADDRESS_ENV) or "127.0.0.1:9464")
    ingester_address: str = field(
        default_factory=lambda: os.environ.get(INGESTER_METRICS_ADDRESS_ENV) or "127.0.0.1:9465"
    )


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """``health``: when ``/health`` answers 503 instead of 200 (docs/OPERATIONS.md "Health")."""

    stale_after_s: float = _above(0, 60.0)  # a subscribed stream without a message for this long
    backlog_limit_mb: float = _above(0, 64.0)  # a sink's backlog (memory and spill) above this
    # an ingester that runs elsewhere (ingest.spawn: false) counts as down after this long without a
    # frame (it sends a ledger frame every 10 s)
    ingester_silent_s: float = _above(0, 30.0)


@dataclass(frozen=True, slots=True)
class ShutdownConfig:
    """``shutdown``: on SIGTERM or SIGINT the processor stops taking frames, closes the open candles as
    partial, publishes and writes what it holds and exits within ``timeout_s``; what could not be written
    by then is counted and logged (docs/OPERATIONS.md "Stopping")."""

    timeout_s: float = _above(0, 60.0)


@dataclass(frozen=True, slots=True)
class StreamingConfig:
    modes: tuple[str, ...] = ("serve",)
    data_types: DataTypesConfig = field(default_factory=DataTypesConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    persist: PersistConfig = field(default_factory=PersistConfig)
    candles: CandlesConfig = field(default_factory=CandlesConfig)
    live_instruments: LiveInstrumentsConfig = field(default_factory=LiveInstrumentsConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)


_MODES = {"serve": "Redis", "persist": "BigQuery", "ticks": "BigQuery tick tables"}


def _expand(value: Any) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            got = os.environ.get(m.group(1))
            if got is None:
                if m.group(2) is None:
                    return m.group(0)  # left as is; a mode that needs it says so
                return m.group(2)
            return got

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


# -- building: keys and types --------------------------------------------------------------------------
@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _without_none(hint: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(hint, False)``."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(get_args(hint))
    return hint, False


def _coerce(hint: Any, value: Any, path: str) -> Any:
    """``value`` as the field's type: YAML and ``${NAME}`` give strings and numbers loosely."""
    hint, optional = _without_none(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{path}: null is not allowed here (use a value or leave the key out)")
    if get_origin(hint) is Literal:
        return value  # checked by validate, with the allowed values
    if get_origin(hint) is tuple:
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        if any(isinstance(v, dict | list | tuple | bool) or v is None for v in items):
            raise ConfigError(f"{path}: {value!r} is not a list of names (use [a, b] or a,b)")
        return tuple(str(v).strip() for v in items)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected an integer, got {value!r}") from None
    if hint is float:
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    if hint is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return str(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and not isinstance(value, hint):
        raise ConfigError(f"{path}: expected a mapping, got {value!r}")
    return value


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(fields)})")
    hints = _hints(cls)
    return cls(**{name: _coerce(hints[name], value, f"{where}.{name}") for name, value in raw.items()})


def _data_types(raw: Any) -> DataTypesConfig:
    """``data_types``: the registry's types, sources and defaults (``DataTypesConfig``)."""
    defaults = DataTypesConfig()
    if raw is None:
        return defaults
    if not isinstance(raw, dict):
        raise ConfigError(f"data_types: expected a mapping, got {type(raw).__name__}")
    from .streaming_service.data_types.registry import NATIVE_SOURCES, SOURCES

    unknown = sorted(str(k) for k in set(raw) - set(SOURCES))
    if unknown:
        raise ConfigError(
            f"data_types: unknown data type(s) {', '.join(unknown)} (known: {', '.join(SOURCES)})"
        )
    changes = {}
    for name, entry in raw.items():
        where = f"data_types.{name}"
        default = defaults[name]
        given = _build(type(default), entry, where)
        values = {k: getattr(given, k) for k in (entry or {})}
        source = values.get("source", default.source)
        if source not in SOURCES[name]:
            raise ConfigError(
                f"{where}.source: {source!r} is not a source of {name} (use {' or '.join(SOURCES[name])})"
            )
        fallback = source not in NATIVE_SOURCES
        if "fallback" in values and values["fallback"] != fallback:
            raise ConfigError(
                f"{where}.fallback: {str(values['fallback']).lower()} disagrees with source {source}"
                f" ({'a fallback' if fallback else 'native'}; use {str(fallback).lower()} or leave it out)"
            )
        values["fallback"] = fallback
        changes[name] = dataclasses.replace(default, **values)
    return dataclasses.replace(defaults, **changes)


#: the one-exchange form of ``ingest``, which ``ingest.exchanges`` replaces
_ONE_EXCHANGE = ("exchange", "symbols", "files")
_ONE_FORM = (
    "use one form: ingest.exchanges (exchange -> symbols, files, data_types) for one or more exchanges, or"
    " ingest.exchange, symbols and files for one"
)


def _ingest(raw: Any) -> IngestConfig:
    """``ingest``; its ``exchanges`` (``_exchanges``) instead of ``exchange``, ``symbols`` and ``files``."""
    if isinstance(raw, dict) and raw.get("journal") is not None:
        raw = {**raw, "journal": _build(JournalConfig, raw["journal"], "ingest.journal")}
    if isinstance(raw, dict) and raw.get("record") is not None:
        raw = {**raw, "record": _build(RecordConfig, raw["record"], "ingest.record")}
    if not isinstance(raw, dict) or "exchanges" not in raw:
        return _build(IngestConfig, raw, "ingest")
    rest = {k: v for k, v in raw.items() if k != "exchanges"}
    given = [f"ingest.{k}" for k in _ONE_EXCHANGE if k in rest]
    if given:
        raise ConfigError(f"ingest.exchanges: given together with {', '.join(given)} ({_ONE_FORM})")
    ingest = _build(IngestConfig, rest, "ingest")
    return dataclasses.replace(ingest, exchanges=_exchanges(raw["exchanges"]))


def _exchanges(raw: Any) -> tuple[IngestExchangeConfig, ...]:
    """``ingest.exchanges``: a mapping exchange -> ``{symbols, files, data_types}``, in the file's order
    (the rules beyond types are ``_check_exchanges``'s)."""
    use = "use a mapping of exchange -> {symbols: [...], files: [...], data_types: [...]}"
    if not isinstance(raw, dict):
        raise ConfigError(f"ingest.exchanges: expected a mapping, got {raw!r} ({use})")
    if not raw:
        raise ConfigError(f"ingest.exchanges: empty ({use}, or leave it out for ingest.exchange)")
    keys = [f.name for f in dataclasses.fields(IngestExchangeConfig) if f.name != "exchange"]
    hints = _hints(IngestExchangeConfig)
    out = []
    for name, entry in raw.items():
        where = f"ingest.exchanges.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping of symbols (files, data_types), got {entry!r}")
        unknown = sorted(str(k) for k in set(entry) - set(keys))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(keys)})")
        if "symbols" not in entry:
            raise ConfigError(f"{where}.symbols: missing (use one or more exchange ids, e.g. btcusdt)")
        values = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in entry.items()}
        out.append(IngestExchangeConfig(str(name), **values))
    return tuple(out)


def _persist(raw: Any) -> PersistConfig:
    if raw is None:
        return PersistConfig()
    known = [f.name for f in dataclasses.fields(PersistConfig)]
    if not isinstance(raw, dict):
        raise ConfigError(f"persist: expected a mapping of {', '.join(known)}, got {raw!r}")
    if set(raw) - set(known):
        unknown = sorted(str(k) for k in set(raw) - set(known))
        raise ConfigError(f"persist: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    rest = {k: v for k, v in raw.items() if k != "bigquery"}
    if rest.get("local") is not None:
        rest["local"] = _build(LocalStoreConfig, rest["local"], "persist.local")
    bq = raw.get("bigquery") or {}
    if not isinstance(bq, dict):
        raise ConfigError(f"persist.bigquery: expected a mapping, got {type(bq).__name__}")
    bq = dict(bq)
    nested = {
        "live_partitioning": PartitioningConfig(type="HOUR", ttl_days=30),
        "historical_partitioning": PartitioningConfig(),
        "emulator": EmulatorConfig(),
    }
    for name, default in nested.items():
        if bq.get(name) is not None:
            given = _build(type(default), bq[name], f"persist.bigquery.{name}")
            bq[name] = dataclasses.replace(default, **{k: getattr(given, k) for k in bq[name]})
    return _build(
        PersistConfig, {**rest, "bigquery": _build(BigQueryConfig, bq, "persist.bigquery")}, "persist"
    )


def _live_instruments(raw: Any) -> LiveInstrumentsConfig:
    """``live_instruments``; a ``markets_dir`` of null is not set: ``$MDTH_MARKETS_DIR`` applies, as when
    the key is left out (streaming.yaml states it as null)."""
    if isinstance(raw, dict) and "markets_dir" in raw and raw["markets_dir"] is None:
        raw = {k: v for k, v in raw.items() if k != "markets_dir"}
    return _build(LiveInstrumentsConfig, raw, "live_instruments")


def _modes(raw: Any) -> tuple[str, ...]:
    if raw is None or raw == []:
        return ("serve",)
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    return tuple(str(m).strip() for m in items)


def _serve(raw: Any) -> ServeConfig:
    """``serve``; without ``redis_url`` in it, ``$REDIS_URL`` (when set) before the default."""
    from_env = os.environ.get(REDIS_URL_ENV)
    if from_env and (raw is None or (isinstance(raw, dict) and "redis_url" not in raw)):
        raw = {**(raw or {}), "redis_url": from_env}
    return _build(ServeConfig, raw, "serve")


def config_from_dict(raw: dict[str, Any]) -> StreamingConfig:
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping of sections, got {type(raw).__name__}")
    raw = _expand(raw or {})
    top = {f.name for f in dataclasses.fields(StreamingConfig)}
    unknown = sorted(str(k) for k in set(raw) - top)
    if unknown:
        raise ConfigError(
            f"streaming.yaml: unknown top-level key(s) {', '.join(unknown)} (known: {', '.join(sorted(top))})"
        )
    if isinstance(raw.get("ingest"), dict) and "data_types" in raw["ingest"]:
        raise ConfigError(
            "ingest.data_types: removed; what is streamed is set under data_types (the ingester's"
            " --data-types are computed from it, see docs/DATA_TYPES.md)"
        )
    return validate(
        StreamingConfig(
            modes=_modes(raw.get("modes")),
            data_types=_data_types(raw.get("data_types")),
            serve=_serve(raw.get("serve")),
            persist=_persist(raw.get("persist")),
            candles=_build(CandlesConfig, raw.get("candles"), "candles"),
            live_instruments=_live_instruments(raw.get("live_instruments")),
            ingest=_ingest(raw.get("ingest")),
            metrics=_build(MetricsConfig, raw.get("metrics"), "metrics"),
            health=_build(HealthConfig, raw.get("health"), "health"),
            shutdown=_build(ShutdownConfig, raw.get("shutdown"), "shutdown"),
        )
    )


def load_config(path: str | Path | None) -> StreamingConfig:
    """The file's configuration, checked; without a file, the defaults (and ``$REDIS_URL``)."""
    if path is None:
        return config_from_dict({})
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# -- checking: the rules beyond types -----------------------------------------------------------------
def validate(config: StreamingConfig) -> StreamingConfig:
    """``config`` if every rule holds, else a ConfigError naming the key path, the value and what is
    allowed. Run at load and again after the command line's overrides; reads the environment for the
    CURVE keys a non-loopback endpoint needs."""
    _check_fields(config, "")
    unknown = [m for m in config.modes if m not in _MODES]
    if unknown:
        use = " and/or ".join(f"{m} ({what})" for m, what in _MODES.items())
        raise ConfigError(f"modes: unknown {', '.join(unknown)} (use {use})")
    _check_candles(config.candles)
    _check_ingest(config.ingest, config.data_types)
    if config.serve.transport == "redis":
        _check_redis_url(config.serve.redis_url, "serve.redis_url")
    _check_bigquery(config.persist.bigquery)
    _check_live_instruments(config.live_instruments)
    if config.metrics.enabled:
        _check_listen(config.metrics.address, "metrics.address")
        _check_listen(config.metrics.ingester_address, "metrics.ingester_address")
    return config


def _check_listen(address: str, path: str) -> None:
    """``HOST:PORT`` to listen on (port 0: any free one)."""
    host, port = _host_port(address)
    if not host or port is None or not 0 <= port <= 65535:
        raise ConfigError(f"{path}: {address!r} (use HOST:PORT, e.g. 127.0.0.1:9464; port 0 = any free port)")


def _check_fields(obj: Any, where: str) -> None:
    """The per-field rules: ``Literal`` values and the ``_at_least`` / ``_above`` bounds, in every
    section."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        path = f"{where}.{f.name}" if where else f.name
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _check_fields(value, path)
            continue
        hint, _ = _without_none(hints[f.name])
        if get_origin(hint) is Literal and value not in get_args(hint):
            use = f.metadata.get("use") or " or ".join(get_args(hint))
            raise ConfigError(f"{path}: {value!r} is not {f.metadata.get('what', 'allowed')} (use {use})")
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        kind = "an integer" if hint is int else "a number"
        if "min" in f.metadata and value < f.metadata["min"]:
            low = f.metadata["min"]
            rule = "positive" if low == 1 and hint is int else f">= {low}"
            raise ConfigError(f"{path}: must be {rule}, got {value!r} (use {kind} >= {low})")
        if "above" in f.metadata and value <= f.metadata["above"]:
            bound = f.metadata["above"]
            raise ConfigError(f"{path}: must be > {bound}, got {value!r} (use {kind} > {bound})")


def timeframe_us(name: str) -> int | None:
    """The length of timeframe ``name`` in microseconds, or None if it is not one (``<n>s|m|h|d``,
    n >= 1): the grammar of ``Timeframe.parse``."""
    match = _TIMEFRAME.match(name.strip()) if isinstance(name, str) else None
    if not match or int(match.group(1)) == 0:
        return None
    return int(match.group(1)) * _TIMEFRAME_US[match.group(2)]


def _check_candles(c: CandlesConfig) -> None:
    if not c.timeframes:
        raise ConfigError(f"candles.timeframes: empty ({_TIMEFRAME_USE})")
    lengths: dict[str, int] = {}
    for name in c.timeframes:
        us = timeframe_us(name)
        if us is None:
            raise ConfigError(f"candles.timeframes: {name!r} is not a timeframe ({_TIMEFRAME_USE})")
        if name in lengths:
            raise ConfigError(f"candles.timeframes: {name!r} is listed twice (use each timeframe once)")
        lengths[name] = us
    base = min(lengths, key=lengths.__getitem__)
    for name, us in lengths.items():
        if us % lengths[base]:
            raise ConfigError(
                f"candles.timeframes: {name!r} is not a multiple of the smallest timeframe {base}"
                f" (use multiples of {base}: every timeframe is rolled up from it)"
            )
    for name in c.hft_timeframes:
        if name not in lengths:
            what = "a timeframe" if timeframe_us(name) is None else "in candles.timeframes"
            raise ConfigError(
                f"candles.hft_timeframes: {name!r} is not {what} (use some of {', '.join(c.timeframes)})"
            )
    if c.grace_ms * 1000 >= lengths[base]:
        raise ConfigError(
            f"candles.grace_ms: must be below the smallest timeframe {base}, got {c.grace_ms}"
            f" (use 0 to {lengths[base] // 1000 - 1} ms)"
        )


def _host_port(text: str) -> tuple[str, int | None]:
    """``host:port`` (``[v6]:port``) -> (host, port); port None when it is not a number."""
    host, _, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port) if port.isdigit() else None


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_needs_curve(endpoint: str) -> bool:
    """A ``tcp://`` endpoint whose host is not loopback: frames cross a network, so CURVE is required."""
    return endpoint.startswith("tcp://") and not is_loopback(_host_port(endpoint[len("tcp://") :])[0])


def _check_ingest(i: IngestConfig, data_types: DataTypesConfig) -> None:
    if i.exchanges:
        _check_exchanges(i, data_types)
    elif not i.symbols or not all(i.symbols):
        raise ConfigError(f"ingest.symbols: {list(i.symbols)!r} (use one or more exchange ids, e.g. btcusdt)")
    if not _SPEED.match(str(i.speed)) or (i.speed != "max" and float(i.speed) <= 0):
        raise ConfigError(
            f"ingest.speed: {i.speed!r} is not a speed (use 1 for real time, N for N times faster, or max)"
        )
    if not i.node:
        raise ConfigError("ingest.node: empty (use node, or the path of a Node 20+ binary)")
    _check_endpoint(i.endpoint, "ingest.endpoint")


def _check_exchanges(i: IngestConfig, data_types: DataTypesConfig) -> None:
    """``ingest.exchanges``: alone (not with the one-exchange form), each exchange once, with symbols,
    files only for a replay, and data types among those enabled."""
    defaults = IngestConfig()
    mixed = [f"ingest.{k}" for k in _ONE_EXCHANGE if getattr(i, k) != getattr(defaults, k)]
    if mixed:
        raise ConfigError(f"ingest.exchanges: given together with {', '.join(mixed)} ({_ONE_FORM})")
    if i.source == "synthetic" and len(i.exchanges) > 1:
        raise ConfigError(
            f"ingest.exchanges: {len(i.exchanges)} exchanges with ingest.source synthetic (synthetic trades"
            " are of one exchange: list one)"
        )
    enabled = [t for t in data_types.names() if data_types[t].enabled]
    seen: set[str] = set()
    for e in i.exchanges:
        where = f"ingest.exchanges.{e.exchange}"
        if not is_exchange_id(e.exchange):
            raise ConfigError(
                f"ingest.exchanges: {e.exchange!r} is not an exchange id (use Tardis ids: binance, deribit)"
            )
        if e.exchange in seen:
            raise ConfigError(f"ingest.exchanges: {e.exchange!r} is listed twice (use each exchange once)")
        seen.add(e.exchange)
        if not e.symbols or not all(e.symbols):
            raise ConfigError(
                f"{where}.symbols: {list(e.symbols)!r} (use one or more exchange ids, e.g. btcusdt)"
            )
        if e.files and i.source != "replay":
            raise ConfigError(
                f"{where}.files: recordings given with ingest.source {i.source} (files are replayed: use"
                " ingest.source: replay, or leave files out)"
            )
        if e.data_types is None:
            continue
        use = f"use some of the enabled {', '.join(enabled)}, or leave data_types out for all of them"
        if not e.data_types:
            raise ConfigError(f"{where}.data_types: empty ({use})")
        for name in e.data_types:
            if name not in data_types.names():
                raise ConfigError(f"{where}.data_types: {name!r} is not a data type ({use})")
            if not data_types[name].enabled:
                raise ConfigError(
                    f"{where}.data_types: {name!r} is not enabled (set data_types.{name}.enabled, or {use})"
                )


def is_exchange_id(name: str) -> bool:
    """A Tardis exchange id: lower case, digits and dashes (binance, binance-futures, deribit, ...)."""
    return bool(_EXCHANGE_ID.match(name))


def _check_endpoint(endpoint: str, path: str) -> None:
    use = "use auto (a private ipc socket), ipc://PATH or tcp://127.0.0.1:PORT"
    scheme, sep, rest = endpoint.partition("://")
    if endpoint == "auto" or (scheme == "ipc" and sep and rest):
        return
    if scheme != "tcp" or not sep:
        raise ConfigError(f"{path}: {endpoint!r} is not a ZeroMQ endpoint ({use})")
    host, port = _host_port(rest)
    if not host or port is None or not 1 <= port <= 65535:
        raise ConfigError(
            f"{path}: {endpoint!r} needs a host and a port 1..65535 (e.g. tcp://127.0.0.1:5555)"
        )
    secret = os.environ.get(CURVE_SECRET_ENV)
    if endpoint_needs_curve(endpoint) and not secret:
        raise ConfigError(
            f"{path}: {endpoint!r} is not a loopback address, so the frames must be encrypted with ZeroMQ"
            f" CURVE: set {CURVE_SECRET_ENV} to the processor's secret key (Z85, 40 characters: python -c"
            f" 'import zmq; print(zmq.curve_keypair()[1].decode())'), or use auto or tcp://127.0.0.1:PORT"
        )
    if secret and not _Z85_KEY.fullmatch(secret):
        raise ConfigError(
            f"{CURVE_SECRET_ENV}: not a Z85 CURVE key of 40 characters (the value is not shown)"
        )
    for key in (k.strip() for k in os.environ.get(CURVE_CLIENT_KEYS_ENV, "").split(",")):
        if key and not _Z85_KEY.fullmatch(key):
            raise ConfigError(
                f"{CURVE_CLIENT_KEYS_ENV}: {key!r} is not a Z85 CURVE public key of 40 characters"
                " (use comma-separated public keys)"
            )


def _check_redis_url(url: str, path: str) -> None:
    parts = urlsplit(url)
    try:
        shown = redact_url(url)  # the password never reaches a message
    except ValueError:  # a port that is no port: redact by hand
        userinfo, at, host = parts.netloc.rpartition("@")
        shown = url.replace(parts.netloc, f"{userinfo.split(':')[0]}:***@{host}", 1) if at else url
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"{path}: {shown!r} is not a Redis URL (use redis://[[user]:password@]host[:port][/db],"
            " rediss://... for TLS, or unix://PATH; a password is best kept in $REDIS_URL)"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"{path}: {shown!r}: the port is not 1..65535")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"{path}: {shown!r} has no host (use redis://host:port)")


def _check_bigquery(b: BigQueryConfig) -> None:
    if len(b.clustering_fields) > 4 or not all(b.clustering_fields):
        raise ConfigError(
            f"persist.bigquery.clustering_fields: {list(b.clustering_fields)!r} (use up to four column names)"
        )
    if b.emulator is not None:
        url = urlsplit(b.emulator.rest_url)
        try:
            port = url.port
        except ValueError:
            port = 0
        if url.scheme not in ("http", "https") or not url.hostname or not 1 <= (port or 80) <= 65535:
            raise ConfigError(
                f"persist.bigquery.emulator.rest_url: {b.emulator.rest_url!r} (use http://HOST:PORT)"
            )
        host, port = _host_port(b.emulator.grpc_target)
        if not host or port is None or not 1 <= port <= 65535:
            raise ConfigError(
                f"persist.bigquery.emulator.grpc_target: {b.emulator.grpc_target!r}"
                " (use HOST:PORT, port 1..65535)"
            )


def _check_live_instruments(li: LiveInstrumentsConfig) -> None:
    for k, name in enumerate(li.exchanges):
        if not _EXCHANGE_ID.match(name):
            raise ConfigError(
                f"live_instruments.exchanges: {name!r} is not an exchange id"
                " (use Tardis ids: binance, deribit, coinbase, ...)"
            )
        if name in li.exchanges[:k]:
            raise ConfigError(f"live_instruments.exchanges: {name!r} is listed twice (use each once)")
    if li.enabled and not li.exchanges:
        raise ConfigError("live_instruments.exchanges: empty while enabled (use e.g. [binance, deribit])")
