"""``streaming.yaml``: one typed configuration, with every default written here once.

Values may reference the environment as ``${NAME}`` or ``${NAME:-default}`` (secrets stay out of the
file). Unknown keys are errors that name the key, so a typo never silently falls back to a default.

``data_types`` (the seeds' walkthrough 10) is the one place that says what is streamed: the ingester's
``--data-types``, ``--book-depth`` and ``--book-interval-ms`` are computed from it by
``DataTypeRouter`` (there is no ``ingest.data_types`` any more). A data type left out of the file keeps
its defaults below; ``fallback`` defaults to whether ``source`` is a fallback source (and must agree
with it when given). See docs/DATA_TYPES.md.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DataTypeConfig:
    """One entry of ``data_types``: ``batch_timeout`` (ms) is how long a batch of the type may wait
    before it is flushed, for the tick tables of persist mode (not built yet; candle rows use
    ``persist.bigquery.batch_timeout_ms``, and serve mode publishes every frame at once)."""

    enabled: bool = True
    source: str = "tardis_realtime"
    batch_timeout: int = 60_000
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class BookSnapshotsConfig(DataTypeConfig):
    depth: int = 25  # levels per side
    interval_ms: int = 100  # one snapshot per interval (0 = on every change)


@dataclass(frozen=True, slots=True)
class GapsConfig(DataTypeConfig):
    stale_after_ms: int = 30_000  # no message on a subscribed symbol for this long = a stale gap


#: the sources each data type may have; the first is its default. Native sources read the exchange's own
#: feed through tardis-dev; the others are fallbacks derived from another type.
DATA_TYPE_SOURCES: dict[str, tuple[str, ...]] = {
    "trades": ("tardis_realtime",),
    "book_snapshots": ("tardis_realtime",),
    "liquidations": ("trade_transformation", "tardis_realtime"),
    "derivative_ticker": ("tardis_realtime",),
    "options_chain": ("tardis_realtime",),
    "funding_rates": ("derivative_ticker_extraction",),
    "gaps": ("disconnect_and_stale_detection",),
    "candles": ("trade_aggregation",),
}
NATIVE_SOURCES = frozenset({"tardis_realtime"})


@dataclass(frozen=True, slots=True)
class DataTypesConfig:
    """``data_types``: the seeds' walkthrough 10, plus ``gaps`` and ``candles``; field order is the order
    ``DataTypeRouter.get_supported_data_types()`` lists them in."""

    trades: DataTypeConfig = field(default_factory=lambda: DataTypeConfig(batch_timeout=60_000))
    book_snapshots: BookSnapshotsConfig = field(
        default_factory=lambda: BookSnapshotsConfig(batch_timeout=60_000)
    )
    liquidations: DataTypeConfig = field(
        default_factory=lambda: DataTypeConfig(
            source="trade_transformation", batch_timeout=900_000, fallback=True
        )
    )
    derivative_ticker: DataTypeConfig = field(default_factory=lambda: DataTypeConfig(batch_timeout=900_000))
    options_chain: DataTypeConfig = field(default_factory=lambda: DataTypeConfig(batch_timeout=900_000))
    funding_rates: DataTypeConfig = field(
        default_factory=lambda: DataTypeConfig(
            source="derivative_ticker_extraction", batch_timeout=900_000, fallback=True
        )
    )
    gaps: GapsConfig = field(
        default_factory=lambda: GapsConfig(
            source="disconnect_and_stale_detection", batch_timeout=900_000, fallback=True
        )
    )
    candles: DataTypeConfig = field(
        default_factory=lambda: DataTypeConfig(
            source="trade_aggregation", batch_timeout=60_000, fallback=True
        )
    )

    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self))

    def __getitem__(self, name: str) -> DataTypeConfig:
        if name not in DATA_TYPE_SOURCES:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str) -> DataTypeConfig | None:
        return getattr(self, name) if name in DATA_TYPE_SOURCES else None


@dataclass(frozen=True, slots=True)
class ServeConfig:
    transport: Literal["redis", "inmemory"] = "redis"
    redis_url: str = "redis://localhost:6379"
    redis_db: int | None = None  # overrides the URL's database when set
    stream_maxlen: int = 1000  # entries kept per candle stream (XADD MAXLEN ~)
    backlog_mb: int = 256  # frames kept while Redis is unreachable; beyond it the oldest are dropped
    close_timeout_s: float = 10.0  # at shutdown, how long to keep trying to publish the backlog
    reply_timeout_ms: int = 2000  # a publish not acknowledged by then waits in the backlog (Redis frozen)


@dataclass(frozen=True, slots=True)
class PartitioningConfig:
    """Time partitioning of a BigQuery table: ``type`` HOUR (the finest BigQuery has), DAY, MONTH or
    YEAR on the TIMESTAMP column ``field``; partitions older than ``ttl_days`` are deleted (null: kept)."""

    type: Literal["HOUR", "DAY", "MONTH", "YEAR"] = "DAY"
    field: str = "timestamp_out"
    ttl_days: float | None = None


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
    target: Literal["auto", "live", "historical"] = "auto"
    location: str = "US"  # of datasets this creates
    batch_size: int = 1000  # rows per append, at most
    batch_timeout_ms: int = 60_000  # a row waits at most this long before its batch is sent
    live_partitioning: PartitioningConfig = field(
        default_factory=lambda: PartitioningConfig(type="HOUR", ttl_days=30)
    )
    historical_partitioning: PartitioningConfig = field(default_factory=PartitioningConfig)
    clustering_fields: tuple[str, ...] = ("exchange", "symbol")
    backlog_mb: int = 256  # encoded rows kept while BigQuery is unreachable; beyond it the oldest are dropped
    close_timeout_s: float = 30.0  # at shutdown, how long to keep trying to write what is left
    request_timeout_s: float = 30.0  # one API call, at most
    emulator: EmulatorConfig | None = None

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
class PersistConfig:
    bigquery: BigQueryConfig = field(default_factory=BigQueryConfig)


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
    hft_warmup_candles: int = 500
    grace_ms: int = 250
    late_policy: Literal["drop", "revise"] = "drop"
    revise_window: int = 4
    clock: Literal["auto", "wall", "event"] = "auto"  # auto: wall for live sources, event for replays


@dataclass(frozen=True, slots=True)
class IngestConfig:
    source: Literal["tardis-realtime", "replay", "synthetic"] = "tardis-realtime"
    exchange: str = "binance"
    symbols: tuple[str, ...] = ("btcusdt",)  # what to stream is data_types (the ingester's --data-types)
    files: tuple[str, ...] = ()
    speed: str = "1"
    endpoint: str = "auto"  # auto: a private ipc:// socket; tcp://host:port to bind a TCP port
    spawn: bool = True  # start the Node ingester as a child process
    node: str = "node"
    sndhwm: int = 4
    rcvhwm: int = 4
    max_batch: int = 1000
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StreamingConfig:
    modes: tuple[str, ...] = ("serve",)
    data_types: DataTypesConfig = field(default_factory=DataTypesConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    persist: PersistConfig = field(default_factory=PersistConfig)
    candles: CandlesConfig = field(default_factory=CandlesConfig)
    live_instruments: dict[str, Any] = field(default_factory=dict)
    ingest: IngestConfig = field(default_factory=IngestConfig)


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


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    kwargs = {}
    for name, value in raw.items():
        default = fields[name].default
        if isinstance(default, tuple) or (name in ("timeframes", "hft_timeframes", "symbols", "files")):
            value = tuple(value) if isinstance(value, list | tuple) else tuple(str(value).split(","))
        elif isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{where}.{name}: expected true or false, got {value!r}")
        elif isinstance(default, int) and not isinstance(default, bool) and value is not None:
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}.{name}: expected an integer, got {value!r}") from None
        kwargs[name] = value
    return cls(**kwargs)


def _data_types(raw: Any) -> DataTypesConfig:
    defaults = DataTypesConfig()
    if raw is None:
        return defaults
    if not isinstance(raw, dict):
        raise ConfigError(f"data_types: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(DATA_TYPE_SOURCES))
    if unknown:
        raise ConfigError(
            f"data_types: unknown data type(s) {', '.join(unknown)}; known: {', '.join(DATA_TYPE_SOURCES)}"
        )
    changes = {}
    for name, entry in raw.items():
        where = f"data_types.{name}"
        default = defaults[name]
        given = _build(type(default), entry, where)
        values = {k: getattr(given, k) for k in (entry or {})}
        source = values.get("source", default.source)
        if source not in DATA_TYPE_SOURCES[name]:
            raise ConfigError(
                f"{where}.source: {source!r} is not a source of {name};"
                f" known: {', '.join(DATA_TYPE_SOURCES[name])}"
            )
        fallback = source not in NATIVE_SOURCES
        if "fallback" in values and values["fallback"] != fallback:
            raise ConfigError(
                f"{where}.fallback: {str(values['fallback']).lower()} disagrees with source {source}"
                f" ({'a fallback' if fallback else 'native'})"
            )
        values["fallback"] = fallback
        for key in ("batch_timeout", "depth", "interval_ms", "stale_after_ms"):
            if key in values and values[key] < (1 if key == "depth" else 0):
                raise ConfigError(f"{where}.{key}: must be {'positive' if key == 'depth' else '>= 0'}")
        changes[name] = dataclasses.replace(default, **values)
    return dataclasses.replace(defaults, **changes)


def _persist(raw: Any) -> PersistConfig:
    if raw is None:
        return PersistConfig()
    if not isinstance(raw, dict) or set(raw) - {"bigquery"}:
        raise ConfigError(f"persist: expected a mapping with the one key bigquery, got {raw!r}")
    bq = dict(raw.get("bigquery") or {})
    nested = {
        "live_partitioning": PartitioningConfig(type="HOUR", ttl_days=30),
        "historical_partitioning": PartitioningConfig(),
        "emulator": EmulatorConfig(),
    }
    for name, default in nested.items():
        if bq.get(name) is not None:
            given = _build(type(default), bq[name], f"persist.bigquery.{name}")
            bq[name] = dataclasses.replace(default, **{k: getattr(given, k) for k in bq[name]})
    config = _build(BigQueryConfig, bq, "persist.bigquery")
    for name in ("live_partitioning", "historical_partitioning"):
        part = getattr(config, name)
        if part.type not in ("HOUR", "DAY", "MONTH", "YEAR"):
            raise ConfigError(
                f"persist.bigquery.{name}.type: {part.type!r}; BigQuery partitions by HOUR (its finest:"
                " there are no 5-minute partitions), DAY, MONTH or YEAR"
            )
        if part.ttl_days is not None and float(part.ttl_days) <= 0:
            raise ConfigError(f"persist.bigquery.{name}.ttl_days: must be positive or null")
    if config.target not in ("auto", "live", "historical"):
        raise ConfigError(f"persist.bigquery.target: {config.target!r}; known: auto, live, historical")
    if config.batch_size < 1 or config.batch_timeout_ms < 0:
        raise ConfigError("persist.bigquery: batch_size must be positive and batch_timeout_ms >= 0")
    return PersistConfig(config)


def _candles(raw: Any) -> CandlesConfig:
    config = _build(CandlesConfig, raw, "candles")
    if config.hft_warmup_candles < 1:
        raise ConfigError(f"candles.hft_warmup_candles: must be positive, got {config.hft_warmup_candles}")
    return config


def config_from_dict(raw: dict[str, Any]) -> StreamingConfig:
    raw = _expand(raw or {})
    top = {f.name for f in dataclasses.fields(StreamingConfig)}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise ConfigError(
            f"streaming.yaml: unknown top-level key(s) {', '.join(unknown)}; known: {', '.join(sorted(top))}"
        )
    if isinstance(raw.get("ingest"), dict) and "data_types" in raw["ingest"]:
        raise ConfigError(
            "ingest.data_types: removed; what is streamed is set under data_types (the ingester's"
            " --data-types are computed from it, see docs/DATA_TYPES.md)"
        )
    modes = tuple(raw.get("modes") or ("serve",))
    unknown_modes = sorted(set(modes) - {"serve", "persist"})
    if unknown_modes:
        raise ConfigError(
            f"modes: unknown {', '.join(unknown_modes)}; known: serve (Redis), persist (BigQuery)"
        )
    return StreamingConfig(
        modes=modes,
        data_types=_data_types(raw.get("data_types")),
        serve=_build(ServeConfig, raw.get("serve"), "serve"),
        persist=_persist(raw.get("persist")),
        candles=_candles(raw.get("candles")),
        live_instruments=dict(raw.get("live_instruments") or {}),
        ingest=_build(IngestConfig, raw.get("ingest"), "ingest"),
    )


def load_config(path: str | Path | None) -> StreamingConfig:
    if path is None:
        return StreamingConfig()
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
