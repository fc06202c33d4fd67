"""``streaming.yaml``: one typed configuration, with every default written here once.

Values may reference the environment as ``${NAME}`` or ``${NAME:-default}`` (secrets stay out of the
file). Unknown keys are errors that name the key, so a typo never silently falls back to a default.
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
    enabled: bool = True
    source: str = "tardis_realtime"
    batch_timeout: int = 60_000
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class ServeConfig:
    transport: Literal["redis", "inmemory"] = "redis"
    redis_url: str = "redis://localhost:6379"
    redis_db: int | None = None  # overrides the URL's database when set
    publish_attempts: int = 3


@dataclass(frozen=True, slots=True)
class CandlesConfig:
    timeframes: tuple[str, ...] = ("15s", "1m", "5m", "15m", "4h", "24h")
    enable_hft_features: bool = True
    hft_timeframes: tuple[str, ...] = ("15s", "1m")
    hft_warmup_file: str | None = None  # recent candles (JSON lines or CSV) to warm the features up
    grace_ms: int = 250
    late_policy: Literal["drop", "revise"] = "drop"
    revise_window: int = 4
    clock: Literal["auto", "wall", "event"] = "auto"  # auto: wall for live sources, event for replays


@dataclass(frozen=True, slots=True)
class IngestConfig:
    source: Literal["tardis-realtime", "replay", "synthetic"] = "tardis-realtime"
    exchange: str = "binance"
    symbols: tuple[str, ...] = ("btcusdt",)
    data_types: tuple[str, ...] = ("trade",)
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
    data_types: dict[str, DataTypeConfig] = field(default_factory=dict)
    serve: ServeConfig = field(default_factory=ServeConfig)
    persist: dict[str, Any] = field(default_factory=dict)
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


def config_from_dict(raw: dict[str, Any]) -> StreamingConfig:
    raw = _expand(raw or {})
    top = {f.name for f in dataclasses.fields(StreamingConfig)}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise ConfigError(
            f"streaming.yaml: unknown top-level key(s) {', '.join(unknown)}; known: {', '.join(sorted(top))}"
        )
    return StreamingConfig(
        modes=tuple(raw.get("modes") or ("serve",)),
        data_types={
            k: _build(DataTypeConfig, v, f"data_types.{k}") for k, v in (raw.get("data_types") or {}).items()
        },
        serve=_build(ServeConfig, raw.get("serve"), "serve"),
        persist=dict(raw.get("persist") or {}),
        candles=_build(CandlesConfig, raw.get("candles"), "candles"),
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
