"""``LiveTickStreamer``: the normalized ticks of the Node ingester as a Python async iterator (the seeds'
name; the legacy ``live_tick_streamer.js`` as a library).

It starts the ingester (``ingest/ingester_process.py``: the same child process, arguments and session
hand-shake as the processor's) on a private ``ipc://`` socket, PULLs its wire frames, decodes them
(``wire/``) and yields one :class:`Tick` per row: ``type`` (tardis' name: trade, book_snapshot,
derivative_ticker, liquidation, option_summary), exchange, our symbol and the exchange's, the exchange
timestamp and the local (receive) timestamp in µs since the epoch, UTC, and the type's fields in
``data`` (``price``, ``amount``, ``side``, ``id`` for a trade; ``bid_price``/``bid_amount`` lists for a
book; ...; missing values are None). No candles, no sinks, no Redis::

    async with LiveTickStreamer(exchange="binance", symbols=["BTC-USDT"], data_types=["trades"]) as ticks:
        async for tick in ticks:
            print(tick.symbol, tick.timestamp, tick["price"], tick["side"])

``source="replay"`` with ``files=[...]`` replays recordings (``speed``: 1 real time, N, or max). The
iteration ends when the ingester's session ends (a replay's end; a live stream only on a stop); an
ingester that exits without ending its session raises :class:`IngesterExited`. Leaving the ``async
with`` asks the ingester to end its session and waits for it (it is killed only when it does not exit
within ``stop_timeout_s``); nothing else is touched. Back-pressure is ZeroMQ's: a consumer that does not
iterate makes the ingester wait (replay) or its socket fill (live).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import zmq
import zmq.asyncio

from ..config import IngestConfig
from ..wire import Frame, WireError, decode_frame, frame_rows, load_schema
from .data_types.registry import TICK_TYPES
from .ingest import IngesterProcess, IngestStream, Sessions
from .instrument_service import InstrumentMapper

__all__ = ["IngesterExited", "LiveTickStreamer", "Tick"]

log = logging.getLogger(__name__)

#: the wire frames that carry ticks, one per row
TICK_FRAMES = ("trade", "book_snapshot", "derivative_ticker", "liquidation", "option_summary")
DRAIN_S = 3.0  # after the ingester exits, how long its last frames may still trickle in
POLL_MS = 500


class IngesterExited(RuntimeError):
    """The ingester exited without ending its session (its last lines are in the message)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """One normalized tick. ``data``: the type's fields (wire names, proto/wire.json); ``tick[name]``
    reads them, and the fields above, by name."""

    type: str
    exchange: str
    symbol: str  # ours: BTC-USDT
    exchange_symbol: str  # the exchange's: BTCUSDT
    timestamp: int | None  # exchange time, µs since the epoch, UTC
    local_timestamp: int | None  # when the ingester received it, µs, UTC
    data: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        if name in self.data:
            return self.data[name]
        if name in _TOP:
            return getattr(self, name)
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """Flat: the fields above and ``data``'s."""
        return {k: getattr(self, k) for k in _TOP} | dict(self.data)


_TOP = ("type", "exchange", "symbol", "exchange_symbol", "timestamp", "local_timestamp")


def wire_types(data_types: Iterable[str]) -> tuple[str, ...]:
    """Data type names (trades, book_snapshots, liquidations, derivative_ticker, options_chain) or
    tardis' (trade, book_snapshot, ...) as the ingester's wire frame types, in order, once each."""
    out: list[str] = []
    for name in data_types:
        frame = TICK_TYPES.get(name)
        if frame is None:
            raise ValueError(f"data type {name!r}: use some of {', '.join(sorted(TICK_TYPES))}")
        if frame not in out:
            out.append(frame)
    return tuple(out)


class LiveTickStreamer:
    def __init__(
        self,
        exchange: str = "binance",
        symbols: Iterable[str] = ("BTC-USDT",),
        data_types: Iterable[str] = ("trades",),
        source: str = "tardis-realtime",
        files: Iterable[str] = (),
        speed: str = "1",
        node: str = "node",
        book_depth: int = 25,
        book_interval_ms: int = 100,
        stop_timeout_s: float = 10.0,
        extra_args: Iterable[str] = (),
    ) -> None:
        """``symbols``: ours (BTC-USDT) or the exchange's (btcusdt); ``source``: tardis-realtime (live)
        or replay (``files``); ``extra_args``: more arguments of the ingester's command line."""
        self.mapper = InstrumentMapper()
        self.exchange = exchange
        natives = tuple(
            (self.mapper.to_exchange_symbol(exchange, s) if "-" in s else s).lower() for s in symbols
        )
        if not natives:
            raise ValueError("symbols: give at least one")
        self.frames = wire_types(data_types)
        self.ingest = IngestConfig(
            source=source,  # type: ignore[arg-type]
            exchange=exchange,
            symbols=natives,
            files=tuple(str(f) for f in files),
            speed=str(speed),
            node=node,
            extra_args=tuple(extra_args),
        )
        if source == "replay" and not self.ingest.files:
            raise ValueError("source replay: give the recordings as files=[...]")
        self.book = (book_depth, book_interval_ms)
        self.stop_timeout_s = stop_timeout_s
        self.sessions = Sessions()
        self.stats: dict[str, int] = {"frames": 0, "ticks": 0, "undecodable": 0, "other_sessions": 0}
        self.end_header: dict[str, Any] | None = None
        self.ingester: IngesterProcess | None = None
        self._schema = load_schema()
        self._pending: deque[Tick] = deque()
        self._symbols: dict[tuple[str, str], str] = {}
        self._ended = False
        self._ctx: zmq.asyncio.Context | None = None
        self._sock: zmq.asyncio.Socket | None = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None

    # -- the context ------------------------------------------------------------------------------
    async def __aenter__(self) -> LiveTickStreamer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind a private socket and start the ingester on it."""
        self._tmpdir = tempfile.TemporaryDirectory(prefix="mdth-ticks-")
        endpoint = f"ipc://{self._tmpdir.name}/ticks.sock"
        self._ctx = zmq.asyncio.Context()
        self._sock = self._ctx.socket(zmq.PULL)
        self._sock.setsockopt(zmq.RCVHWM, self.ingest.rcvhwm)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(endpoint)
        stream = IngestStream(self.exchange, self.ingest.symbols, self.frames, self.ingest.files)
        self.ingester = IngesterProcess(
            self.ingest,
            endpoint,
            self.frames,
            *self.book,
            session=self.sessions.expect_new(),
            streams=[stream],
        )
        await self.ingester.start()

    async def close(self) -> None:
        """Ask the ingester to end its session (unless it has ended), hang up and wait for it to exit
        (terminated, then killed, after ``stop_timeout_s``); close the socket."""
        if self.ingester is not None and self.ingester.returncode is None:
            if not self._ended:  # left early: its session goes on until asked to end
                self.ingester.request_stop()
                await self._drain(time.monotonic() + self.stop_timeout_s)
            self._hang_up()
            if await self.ingester.wait(self.stop_timeout_s) is None:  # it exits once it sees the hang-up
                await self.ingester.stop(timeout=1.0)
        self._hang_up()
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    async def _drain(self, until: float) -> None:
        """After a stop request: read (and drop) what the ingester still sends, up to its end frame, so
        it is not left waiting on a full socket."""
        while not self._ended and self._sock is not None and time.monotonic() < until:
            if self.ingester is not None and self.ingester.returncode is not None:
                return
            if await self._sock.poll(100, zmq.POLLIN):
                self._take((await self._sock.recv(copy=False)).buffer)
        self._pending.clear()

    def _hang_up(self) -> None:
        if self._sock is not None:
            self._sock.close()  # hanging up tells the ingester its end frame arrived
            self._sock = None

    # -- the iterator -----------------------------------------------------------------------------
    def __aiter__(self) -> LiveTickStreamer:
        return self

    async def __anext__(self) -> Tick:
        while not self._pending:
            if self._ended:
                raise StopAsyncIteration
            await self._read()
        return self._pending.popleft()

    async def _read(self) -> None:
        """One frame (or a poll's wait): its ticks queued; the session's end noted."""
        if self._sock is None or self.ingester is None:
            raise RuntimeError("LiveTickStreamer: use it in `async with`, or call start() first")
        exited_at: float | None = None
        while True:
            if await self._sock.poll(POLL_MS, zmq.POLLIN):
                data = await self._sock.recv(copy=False)
                self._take(data.buffer)
                return
            if self.ingester.returncode is None:
                continue
            exited_at = exited_at or time.monotonic()
            if time.monotonic() - exited_at > DRAIN_S:
                self._ended = True
                raise IngesterExited(
                    f"the ingester exited with code {self.ingester.returncode} without ending its session;"
                    " last output:\n  " + "\n  ".join(self.ingester.last_lines[-5:])
                )

    def _take(self, data: memoryview) -> None:
        try:
            frame = decode_frame(data, self._schema)
        except WireError as exc:
            self.stats["undecodable"] += 1
            log.error("undecodable frame of %d bytes: %s", len(data), exc)
            return
        if frame.session != self.sessions.expected:
            self.stats["other_sessions"] += 1
            return
        self.stats["frames"] += 1
        if frame.type == "end":
            self.end_header = dict(frame.header)
            self._ended = True
            self._hang_up()
            if frame.header.get("reason") == "error":
                log.error("the ingester's session ended with an error: %s", frame.header.get("error"))
            return
        if frame.type in TICK_FRAMES:
            ticks = self._ticks(frame)
            self.stats["ticks"] += len(ticks)
            self._pending.extend(ticks)

    def _ticks(self, frame: Frame) -> list[Tick]:
        pairs = frame.symbols
        out = []
        for row in frame_rows(frame, self._schema):
            exchange, exchange_symbol = pairs[row.pop("sym")]
            timestamp = row.pop("timestamp", None)
            local = row.pop("local_timestamp", None)
            symbol = self._symbol(exchange, exchange_symbol)
            data = MappingProxyType(row)
            out.append(Tick(frame.type, exchange, symbol, exchange_symbol, timestamp, local, data))
        return out

    def _symbol(self, exchange: str, exchange_symbol: str) -> str:
        key = (exchange, exchange_symbol)
        got = self._symbols.get(key)
        if got is None:
            got = self._symbols[key] = self.mapper.to_symbol(exchange, exchange_symbol)
        return got
