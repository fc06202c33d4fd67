"""Start and watch the Node ingester (ingest-node/src/cli.js) as a child process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config import ConfigError, IngestConfig
from .curve import ingester_environ

log = logging.getLogger("ingest")


def find_ingester() -> Path:
    override = os.environ.get("MDTH_INGEST_NODE")
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "ingest-node" / "src" / "cli.js"
        if candidate.is_file():
            return candidate
    raise ConfigError("ingest-node/src/cli.js not found: set MDTH_INGEST_NODE to its path")


@dataclass(frozen=True, slots=True)
class IngestStream:
    """One exchange's part of an ingester session: what the ingester streams of it."""

    exchange: str  # tardis exchange id
    symbols: tuple[str, ...]  # exchange-native ids
    data_types: tuple[str, ...]  # wire frame types (DataTypeRouter.ingester_data_types(exchange))
    files: tuple[str, ...] = ()  # replay: this exchange's recordings


def _paths(files: Sequence[str]) -> str:
    return ",".join(str(Path(f).resolve()) for f in files)


def stream_args(streams: Sequence[IngestStream]) -> list[str]:
    """The ingester's arguments for what it streams. One exchange: ``--exchange``, ``--symbols``,
    ``--data-types`` (and ``--files``) as ever; several: ``--exchanges a,b`` and each of the others once
    per exchange with its ``<exchange>:`` prefix (ingest-node/README.md "Several exchanges")."""
    if not streams:
        raise ConfigError("the ingester needs at least one exchange to stream")
    if len(streams) == 1:
        (s,) = streams
        args = [
            "--exchange",
            s.exchange,
            "--symbols",
            ",".join(s.symbols),
            "--data-types",
            ",".join(s.data_types),
        ]
        return args + (["--files", _paths(s.files)] if s.files else [])
    args = ["--exchanges", ",".join(s.exchange for s in streams)]
    for s in streams:
        args += ["--symbols", f"{s.exchange}:{','.join(s.symbols)}"]
    for s in streams:
        args += ["--data-types", f"{s.exchange}:{','.join(s.data_types)}"]
    for s in streams:
        if s.files:
            args += ["--files", f"{s.exchange}:{_paths(s.files)}"]
    return args


def ingester_args(
    ingest: IngestConfig,
    endpoint: str,
    data_types: Sequence[str] = ("trade",),
    book_depth: int = 25,
    book_interval_ms: int = 100,
    session: str | None = None,
    streams: Sequence[IngestStream] = (),
    metrics_address: str | None = None,
) -> list[str]:
    """The ingester's command line; ``data_types`` (wire frame types) and the book shape come from
    ``data_types`` in streaming.yaml through ``DataTypeRouter.ingester_data_types``. What it streams is
    ``ingest.exchange``, ``ingest.symbols``, ``data_types`` and ``ingest.files``, or, with ``streams``,
    those of each exchange (several exchanges in one session). With ``session`` the ingester uses that
    session id (the processor takes no other) and exits when its parent is gone. With
    ``ingest.journal.enabled`` it journals every frame (proto/README.md "Journal"); one the processor
    starts (``session``) still waits when ZeroMQ cannot take a frame (``--when-busy wait``: the
    back-pressure that keeps a replay from outrunning its processor), where one run on its own would
    leave the frame in the journal and go on. With ``metrics_address`` (``metrics.ingester_address`` when
    ``metrics.enabled``) it serves ``/metrics`` and ``/health`` there; with ``ingest.record.enabled`` it
    records every raw exchange message it receives under ``ingest.record.dir`` (ingest-node/README.md
    "Recording")."""
    what = streams or (
        IngestStream(ingest.exchange, tuple(ingest.symbols), tuple(data_types), tuple(ingest.files)),
    )
    args = [
        "--source",
        ingest.source,
        *stream_args(what),
        "--book-depth",
        str(book_depth),
        "--book-interval-ms",
        str(book_interval_ms),
        "--speed",
        str(ingest.speed),
        "--endpoint",
        endpoint,
        "--sndhwm",
        str(ingest.sndhwm),
        "--max-batch",
        str(ingest.max_batch),
    ]
    if session is not None:
        args += ["--session", session, "--watch-parent"]
    journal = ingest.journal
    if journal.enabled:
        args += [
            "--journal-dir",
            str(Path(journal.dir).resolve()),
            "--journal-file-mb",
            str(journal.file_mb),
            "--journal-max-mb",
            str(journal.max_mb),
            "--journal-max-age-h",
            str(journal.max_age_h),
        ]
        if session is not None:
            args += ["--when-busy", "wait"]
    if ingest.source == "replay" and ingest.replay_path != "auto":
        args += ["--replay-path", ingest.replay_path]
    if ingest.record.enabled:
        args += ["--record-dir", str(Path(ingest.record.dir).resolve())]
    if metrics_address is not None:
        args += ["--metrics-address", metrics_address]
    return args + list(ingest.extra_args)


#: V8 grows each semi-space of its young generation to 16 MiB under the ingester's steady allocation, 32
#: MiB of its RSS; capped at 4 MiB they take 8 (ingester 95 -> 73 MiB with 1,000 symbols), measured no
#: slower (1 M synthetic trades through main: 5.4 s against 5.6 s). Smaller caps do not pay: at 2 the
#: ingester was 69-72 MiB alone on the cores but 81-82 with a second run beside it (4: 75-76; more is
#: promoted to the old generation), at 1 79; --optimize-for-size took 7 MiB off but sent 35% slower
NODE_FLAGS = ("--max-semi-space-size=4",)
#: a replay at speed max allocates as fast as it can parse: with 4 MiB semi-spaces V8 scavenges so often
#: that the ingester ran at 165-176 k trades/s on the bench recording, at 16 MiB at 251-316 k/s (8: 226-275,
#: 32: 210-245; alternating runs on 2 cores). Its garbage is collected on its own thread only: V8's
#: parallel and concurrent helpers cost more CPU than they save on two cores that the processor shares
#: (the 2 M-trade bench replay: elapsed 5.99 -> 5.23 s, the ingester's CPU 8.5 -> 7.6 s, medians of 6
#: alternating pairs, every pair faster). Collected so, the young generation is best held at 32 MiB from
#: the start (V8 otherwise grows it slowly): 112 scavenges instead of 230, its main thread 0.2-0.4 s less
#: busy, the replay 4.73 -> 4.52 s (5 pairs, every one faster), for about 45 MiB more RSS while it runs
#: (210-227 -> 260-265 MiB). 16 MiB held from the start was pathological (2.5 s of scavenges).
REPLAY_MAX_NODE_FLAGS = ("--max-semi-space-size=32", "--min-semi-space-size=32", "--single-threaded-gc")


def node_flags(ingest: IngestConfig) -> tuple[str, ...]:
    """The ingester's V8 flags: its young generation capped small (memory), larger for a replay at speed
    max (throughput)."""
    return REPLAY_MAX_NODE_FLAGS if ingest.source == "replay" and ingest.speed == "max" else NODE_FLAGS


@dataclass(frozen=True, slots=True)
class IngesterLine:
    """One stderr line of the ingester: ``ingest: <msg>`` (text) or a JSON object ``{ts, level, logger,
    msg}`` (``--log-format json`` / ``$MDTH_LOG_FORMAT=json``)."""

    msg: str
    level: int = logging.INFO


def parse_ingester_line(line: str) -> IngesterLine:
    """The message and level of an ingester stderr line in either format; anything else (a Node crash
    trace) as it is, at INFO."""
    if line.startswith("{"):
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict) and obj.get("logger") == "ingest" and isinstance(obj.get("msg"), str):
                level = logging.getLevelName(str(obj.get("level", "INFO")).upper())
                return IngesterLine(obj["msg"], level if isinstance(level, int) else logging.INFO)
    return IngesterLine(line.removeprefix("ingest: "))


def ingester_summary(line: str) -> dict[str, Any] | None:
    """The ``summary {json}`` of an ingester stderr line (either format), or None."""
    msg = parse_ingester_line(line).msg
    if not msg.startswith("summary "):
        return None
    try:
        summary = json.loads(msg.removeprefix("summary "))
    except json.JSONDecodeError:
        return None
    return summary if isinstance(summary, dict) else None


class IngesterProcess:
    def __init__(
        self,
        ingest: IngestConfig,
        endpoint: str,
        data_types: Sequence[str] = ("trade",),
        book_depth: int = 25,
        book_interval_ms: int = 100,
        session: str | None = None,
        streams: Sequence[IngestStream] = (),
        metrics_address: str | None = None,
    ) -> None:
        self.ingest = ingest
        self.metrics_address = metrics_address
        self.session = session
        self.streams = tuple(streams)
        self.endpoint = endpoint
        self.data_types = tuple(data_types)
        self.book = (book_depth, book_interval_ms)
        self.summary: dict[str, Any] | None = None
        self.last_lines: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        script = find_ingester()
        node = shutil.which(self.ingest.node)
        if node is None:
            raise ConfigError(
                f"'{self.ingest.node}' (Node.js) not found on PATH: the ingester needs Node 20+"
            )
        if not (script.parent.parent / "node_modules").is_dir():
            raise ConfigError(f"{script.parent.parent}/node_modules is missing: run `make setup` (npm ci)")
        cmd = [
            node,
            *node_flags(self.ingest),
            str(script),
            *ingester_args(
                self.ingest,
                self.endpoint,
                self.data_types,
                *self.book,
                self.session,
                self.streams,
                self.metrics_address,
            ),
        ]
        log.info("starting ingester: %s %s", Path(node).name, " ".join(cmd[1:]))
        self._proc = await asyncio.create_subprocess_exec(
            *cmd,
            env=ingester_environ(self.endpoint),  # CURVE's public keys; no server secret, no $REDIS_URL
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        async for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self.last_lines = [*self.last_lines[-19:], line]
            parsed = parse_ingester_line(line)
            summary = ingester_summary(line)
            if summary is not None:
                self.summary = summary
            log.log(parsed.level, "%s", parsed.msg)

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    async def wait(self, timeout: float | None = None) -> int | None:
        if self._proc is None:
            return None
        try:
            await asyncio.wait_for(self._proc.wait(), timeout)
        except TimeoutError:
            return None
        if self._reader is not None:
            await self._reader
        return self._proc.returncode

    def request_stop(self) -> None:
        """SIGTERM: the ingester sends its ``end`` frame (reason ``source_closed``) and exits."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()

    async def stop(self, timeout: float = 5.0) -> None:
        if self._proc is None or self._proc.returncode is not None:
            return
        self._proc.terminate()
        if await self.wait(timeout) is None:
            self._proc.kill()
            await self.wait()
