"""``/metrics`` (Prometheus text format) and ``/health`` over HTTP, served from the service's event loop.

Why the event loop and not a thread: the collectors read the service's live counters, dicts and deques
the loop changes between two awaits. Read from the loop itself, a scrape sees them all at one moment
between two steps of the pipeline (never a dict resizing under it, never half a frame counted), and so
the scraped counters equal the ledger's by construction; nothing on the hot path takes a lock for it. A
scrape costs the loop the time to render the text (about a millisecond for one exchange and a handful of
symbols) once per scrape interval. A loop blocked for long cannot answer either: ``/health`` then times
out, which is the truth about a stuck processor.

A port that cannot be bound (taken, no permission) is a WARNING naming the address and the cause,
counted (``bind_errors``, in ``--stats-json``'s ``metrics``): the pipeline runs on without metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .collectors import (
    HealthCollector,
    InstrumentsCollector,
    RecorderCollector,
    ServiceCollector,
    SinkCollector,
    sink_targets,
    store_of,
)
from .health import Health
from .recorders import LATENCY_BUCKETS, SIZE_BUCKETS, CloseLag, Histo, LoadTimer, WriteTimer

if TYPE_CHECKING:
    from ...config import StreamingConfig
    from ..service import StreamingService

log = logging.getLogger(__name__)
SAMPLE_S = 1.0  # how often the health sampler (and the loop lag probe) runs
READ_TIMEOUT_S = 5.0  # a client that does not send its request line and headers in this long is dropped
MAX_REQUEST = 16_384
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # text/plain; version=0.0.4; charset=utf-8


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) -> (host, port); a ValueError names what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65_535:
        raise ValueError(f"metrics.address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:9464")
    return host.strip("[]") or "127.0.0.1", int(port)


class MetricsServer:
    """The registry, the HTTP server and the health checks of one process. ``address``: the bound
    ``host:port`` (None when it could not bind); ``bind_errors``: binds that failed."""

    def __init__(
        self, config: StreamingConfig, service: StreamingService | None, extra: Iterable[Any] = ()
    ) -> None:
        self.config = config
        self.service = service
        self.extra = list(extra)
        self.registry = CollectorRegistry(auto_describe=False)
        self.close_lag = CloseLag(self._clock_us)
        self.loop_lag = Histo(LATENCY_BUCKETS)
        self.frame_sizes = Histo(SIZE_BUCKETS)
        self.timers: list[WriteTimer] = []
        self.loads = LoadTimer()
        self.health = Health(config, service, self.sinks)
        self.address: str | None = None
        self.bind_errors = 0
        self.scrapes = 0
        self._server: asyncio.base_events.Server | None = None
        self._sock: socket.socket | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._final: str | None = None
        self._hook_sinks()
        if service is not None:
            self.registry.register(ServiceCollector(service))
        self.registry.register(SinkCollector(self.sinks))
        self.registry.register(
            RecorderCollector(lambda: self.timers, self.close_lag, self.loop_lag, self.frame_sizes, service)
        )
        for sink in self.sinks():
            if getattr(sink, "name", "") == "instruments" and hasattr(sink, "provider"):
                self.registry.register(InstrumentsCollector(sink, self.loads))
        self.registry.register(HealthCollector(self.health))
        ProcessCollector(namespace="mdth", registry=self.registry)  # CPU, memory, open files (Linux)

    def sinks(self) -> list[Any]:
        return (list(self.service.sinks) if self.service is not None else []) + self.extra

    def _clock_us(self, exchange: str) -> int | None:
        """The candles' clock for the close lag: the exchange time reached (event clock) or the wall time."""
        if self.service is None:
            return None
        clock = self.service.handler.clock
        return clock.time_us(exchange) if clock.trades_move_time else clock.now_us()

    def _hook_sinks(self) -> None:
        """Give each sink a write timer, and the close lag to the first that publishes (serve), else to
        persist mode (its rows queued); ask the service for frame sizes."""
        sinks = list(sink_targets(self.sinks()))
        for sink in sinks:
            if hasattr(sink, "write_timer"):
                timer = WriteTimer(sink.name, store_of(sink))
                sink.write_timer = timer
                self.timers.append(timer)
        lagging = [s for s in sinks if s.name == "serve" and hasattr(s, "close_lag")]
        lagging = lagging or [s for s in sinks if s.name == "persist" and hasattr(s, "close_lag")]
        if lagging:
            lagging[0].close_lag = self.close_lag
        for sink in sinks:  # the instruments sync hands it to its provider, made at its start
            if hasattr(sink, "load_timer"):
                sink.load_timer = self.loads
                if getattr(sink, "provider", None) is not None:
                    sink.provider.load_timer = self.loads
        if self.service is not None:
            self.service.on_frame_bytes = self.frame_sizes.observe

    # -- serving ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Bind ``metrics.address`` and serve (on the running loop); a bind that fails is logged and
        counted, and the pipeline goes on."""
        address = self.config.metrics.address
        try:
            host, port = parse_address(address)
            sock = socket.create_server((host, port), family=_family(host), reuse_port=False)
        except (OSError, ValueError) as exc:
            self.bind_errors += 1
            log.warning(
                "metrics: cannot serve on %s (%s): running on without /metrics and /health", address, exc
            )
            return
        sock.setblocking(False)
        bound = sock.getsockname()
        self.address = f"[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"{bound[0]}:{bound[1]}"
        loop = asyncio.get_running_loop()
        self._sock = sock
        self._server_task = loop.create_task(self._serve(sock))
        self._sampler = loop.create_task(self._sample())
        log.info("metrics on http://%s/metrics (health: /health)", self.address)

    async def _serve(self, sock: socket.socket) -> None:
        """Serve until cancelled: by ``close``, or by ``asyncio.run`` ending (a run that returned early
        without ``close``): either way the listening socket closes with it."""
        self._server = await asyncio.start_server(self._client, sock=sock, limit=MAX_REQUEST)
        try:
            await asyncio.Event().wait()
        finally:
            self._server.close()

    async def _sample(self) -> None:
        """Once a second: the health sampler, and how late the loop ran this timer (the loop lag)."""
        while True:
            due = time.monotonic() + SAMPLE_S
            await asyncio.sleep(SAMPLE_S)
            self.loop_lag.observe(max(0.0, time.monotonic() - due))
            try:
                self.health.sample()
            except Exception:  # a bug of ours must not stop the sampler, nor the pipeline
                log.exception("metrics: health sample failed")

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            method, path = _request_line(head)
            try:
                status, ctype, body = self.respond(method, path)
            except Exception:  # a bug of ours: a 500 and its traceback, never the pipeline's end
                log.exception("metrics: %s %s failed", method, path)
                status, ctype, body = "500 Internal Server Error", "text/plain; charset=utf-8", b"error\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + (body if method != "HEAD" else b"")
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def respond(self, method: str, path: str) -> tuple[str, str, bytes]:
        """(status line, content type, body) for one request."""
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain; charset=utf-8", b"GET only\n"
        path = path.split("?", 1)[0]
        if path == "/metrics":
            self.scrapes += 1
            # the classic text format (0.0.4), which every Prometheus reads: our names need nothing newer
            return "200 OK", CONTENT_TYPE, self.exposition().encode()
        if path == "/health":
            report = self.health.report()
            body = json.dumps(report.as_json()).encode()
            status = "200 OK" if report.ok else "503 Service Unavailable"
            return status, "application/json", body
        return "404 Not Found", "text/plain; charset=utf-8", b"/metrics or /health\n"

    def exposition(self) -> str:
        """The registry in Prometheus' text format, now (after ``close``: as it was at close)."""
        if self._final is not None:
            return self._final
        return generate_latest(self.registry).decode()

    def close(self) -> dict[str, Any]:
        """Stop serving; returns what ``--stats-json`` keeps under ``metrics``: the address, the bind
        errors, the scrapes served and the exposition at close (its counters equal the ledger)."""
        if self._final is None:
            try:
                self._final = generate_latest(self.registry).decode()
            except Exception:  # a bug of ours must not cost the run its stats
                log.exception("metrics: the final exposition failed")
                self._final = ""
        if self._sampler is not None:
            self._sampler.cancel()
        if self._server is not None:
            self._server.close()
        elif self._sock is not None:
            self._sock.close()  # the server never started: its socket is ours to close
        if self._server_task is not None:
            self._server_task.cancel()
        return {
            "address": self.address,
            "bind_errors": self.bind_errors,
            "scrapes": self.scrapes,
            "exposition": self._final,
        }


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _request_line(head: bytes) -> tuple[str, str]:
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    return (parts[0], parts[1]) if len(parts) >= 2 else ("", "")


def start_metrics(
    config: StreamingConfig, service: StreamingService | None, extra: Iterable[Any] = ()
) -> MetricsServer:
    """Serve the process's metrics on ``config.metrics.address`` (``/metrics``, ``/health``) from the
    running event loop; ``extra``: sinks not in ``service`` (the instruments sync run alone)."""
    server = MetricsServer(config, service, extra)
    server.start()
    return server
