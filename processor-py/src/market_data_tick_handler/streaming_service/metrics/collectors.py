"""The processor's metrics, read from the service's own counters when scraped (docs/OPERATIONS.md).

Nothing here counts anything itself: every counter is the value the service, its sinks and the ledger
hold at the moment of the scrape, so a scrape and the ledger cannot disagree. The scrape runs on the
service's event loop (``server.py``), between two steps of the pipeline, so the values are those of one
moment and no dict changes while it is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import ledger as ledger_lines
from ..ledger import Entry
from ..tick_processor.counters import FRAME_COUNTS
from .recorders import LATENCY_BUCKETS, CloseLag, Histo, LoadTimer, WriteTimer

if TYPE_CHECKING:
    from ..service import StreamingService
    from .health import Health

#: a sink's stats -> (metric, its ``what`` label); every sink's, under its name (``sink`` label)
SINK_COUNTERS: dict[str, tuple[str, str | None]] = {
    "candles_published": ("mdth_sink_published", "candles"),
    "records_published": ("mdth_sink_published", "records"),
    "rows_written": ("mdth_sink_written", "rows"),
    "batches_written": ("mdth_sink_written", "batches"),
    "candles_lost": ("mdth_sink_lost", "candles"),
    "records_lost": ("mdth_sink_lost", "records"),
    "rows_lost": ("mdth_sink_lost", "rows"),
    "candles_refused": ("mdth_sink_refused", "candles"),
    "records_refused": ("mdth_sink_refused", "records"),
    "rows_refused": ("mdth_sink_refused", "rows"),
    "publish_retries": ("mdth_sink_retries", None),
    "write_retries": ("mdth_sink_retries", None),
    "publish_errors": ("mdth_sink_errors", None),
    "write_errors": ("mdth_sink_errors", None),
    "spilled_rows_total": ("mdth_sink_spilled", "rows"),
    "spilled_bytes_total": ("mdth_sink_spilled", "bytes"),
    "messages_published": ("mdth_sink_messages_published", None),
    "round_trips": ("mdth_sink_round_trips", None),
    "stream_duplicates": ("mdth_sink_duplicates", "candles"),
    "duplicate_appends": ("mdth_sink_duplicates", "batches"),
    "spill_errors": ("mdth_sink_spill_errors", None),
}
SINK_HELP = {
    "mdth_sink_published": "Candles and records a sink published (Redis, the in-memory bus)",
    "mdth_sink_written": "Rows and batches a sink wrote (BigQuery, its emulator, the local store)",
    "mdth_sink_lost": "What a sink dropped: over its backlog's bound, or not written by the end",
    "mdth_sink_refused": "What the store refused (never sent again)",
    "mdth_sink_retries": "Tries that failed and were made again (unreachable, timed out)",
    "mdth_sink_errors": "Writes the store refused",
    "mdth_sink_spilled": "Rows and bytes a sink spilled to disk while its store was unreachable",
    "mdth_sink_messages_published": "Redis messages (PUBLISHes) sent",
    "mdth_sink_round_trips": "Redis round trips",
    "mdth_sink_duplicates": "Writes found already there (a retry of one that had landed): not written twice",
    "mdth_sink_spill_errors": "Spill files that could not be written or read",
}
#: a sink's stats -> (gauge, its ``what`` label): what waits now
SINK_GAUGES: dict[str, tuple[str, str]] = {
    "backlog_candles": ("mdth_sink_backlog", "candles"),
    "backlog_frames": ("mdth_sink_backlog", "frames"),
    "backlog_rows": ("mdth_sink_backlog", "rows"),
    "spilled_rows": ("mdth_sink_backlog_spilled", "rows"),
}
GAUGE_HELP = {
    "mdth_sink_backlog": "What waits in a sink's backlog now, in memory and spilled (candles, frames, rows)",
    "mdth_sink_backlog_spilled": "Of that, what waits spilled to disk now",
}


def _counter(name: str, doc: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def histogram(
    name: str, doc: str, labels: Sequence[str], series: Iterable[tuple[Sequence[str], Histo]]
) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    for values, h in series:
        family.add_metric(list(values), h.cumulative(), sum_value=h.sum)
    return family


def sink_targets(sinks: Iterable[Any]) -> Iterator[Any]:
    """Every sink, and the table writer inside the instruments sync (``rows``)."""
    for sink in sinks:
        yield sink
        rows = getattr(sink, "rows", None)
        if rows is not None and hasattr(rows, "backlog"):
            yield rows


def backlog_bytes(sink: Any) -> dict[str, int]:
    """What a sink holds waiting for its store, in bytes: ``memory`` (its backlog) and ``disk`` (its
    spill); a sink without a backlog holds nothing."""
    backlog = getattr(sink, "backlog", None)
    memory = int(getattr(backlog, "nbytes", 0) or 0)
    spill = getattr(sink, "spill", None)
    disk = int(spill.stats.get("spilled_bytes", 0)) if spill is not None else 0
    return {"memory": memory, "disk": disk}


def store_of(sink: Any) -> str:
    """Where a sink writes, for the ``store`` label: ``redis``/``inmemory`` (serve), ``bigquery``,
    ``local store``, ``memory`` (persist, ticks, the instruments table)."""
    inner = getattr(sink, "sink", None)
    if inner is not None and hasattr(inner, "kind"):
        return str(inner.kind)
    config = getattr(sink, "config", None)
    return str(getattr(config, "transport", "unknown"))


class ServiceCollector(Collector):
    """The pipeline's counters (frames, rows, records, drops, gaps, candles, the ledger) from a
    :class:`StreamingService`, read at each scrape."""

    def __init__(self, service: StreamingService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        s = self.service
        h = s.handler  # read now: a restart from a checkpoint replaces it
        counts = dict(h.counts)
        yield from self._frames(counts)
        yield from self._rows(counts, dict(h.drops), dict(h.bad_rows))
        yield from self._symbols({k: dict(v) for k, v in h.ticks_by_symbol.items()})
        records = _counter("mdth_records_out", "Records made of the other data types, by type", ["type"])
        for kind, n in sorted(dict(h.records_by_type).items()):
            records.add_metric([kind], n)
        yield records
        handed = _counter("mdth_handed_to_sinks", "What the service handed every sink", ["what"])
        for what, n in sorted(dict(s.handed).items()):
            handed.add_metric([what], n)
        yield handed
        yield from self._candles(h)
        yield from self._gaps(h, counts)
        yield from self._ledger()

    @staticmethod
    def _frames(counts: Mapping[str, int]) -> Iterator[Metric]:
        received = _counter("mdth_frames_received", "Wire frames read from ZeroMQ (or the journal)")
        received.add_metric([], counts.get("frames_received", 0))
        yield received
        frames = _counter(
            "mdth_frames",
            "Frames by outcome: decoded or undecodable; decoded ones applied, duplicate, seq_jump, failed"
            " or unhandled",
            ["outcome"],
        )
        for key in FRAME_COUNTS:
            if key not in ("frames_received", "frames_lost"):
                frames.add_metric([key.removeprefix("frames_")], counts.get(key, 0))
        yield frames
        lost = _counter(
            "mdth_frames_lost", "Frames that never arrived (seq jumps): each opens a frames_lost gap"
        )
        lost.add_metric([], counts.get("frames_lost", 0))
        yield lost
        events = _counter(
            "mdth_events",
            "Events of the run: disconnect frames (an exchange connection lost and remade), ingester exits,"
            " processor restarts, sessions, ledger mismatches, warm-up errors",
            ["event"],
        )
        for key in ("disconnects", "ingester_exits", "processor_restarts", "sessions", "ledger_mismatches",
                    "warmup_errors"):  # fmt: skip
            events.add_metric([key], counts.get(key, 0))
        yield events

    @staticmethod
    def _rows(
        counts: Mapping[str, int], drops: Mapping[str, int], bad: Mapping[str, int]
    ) -> Iterator[Metric]:
        received = _counter(
            "mdth_rows_received", "Rows (messages) received in frames, by frame type", ["type"]
        )
        applied = _counter("mdth_rows_applied", "Rows applied, by frame type", ["type"])
        for key, n in sorted(counts.items()):
            if key.startswith("rows_received."):
                received.add_metric([key.removeprefix("rows_received.")], n)
            elif key.startswith("rows_applied."):
                applied.add_metric([key.removeprefix("rows_applied.")], n)
        yield received
        yield applied
        dropped = _counter(
            "mdth_rows_dropped",
            "Rows dropped, by frame type and reason (frame: undecodable frames by reason)",
            ["type", "reason"],
        )
        for key, n in sorted(drops.items()):
            kind, _, reason = key.partition(".")
            dropped.add_metric([kind, reason], n)
        yield dropped
        bad_rows = _counter("mdth_bad_rows", "Rows that failed a check, by frame type", ["type"])
        for kind, n in sorted(bad.items()):
            bad_rows.add_metric([kind], n)
        yield bad_rows

    @staticmethod
    def _symbols(by_symbol: Mapping[str, Mapping[str, int]]) -> Iterator[Metric]:
        family = _counter(
            "mdth_symbol_rows", "Rows received per instrument and frame type", ["exchange", "symbol", "type"]
        )
        for key, per_type in sorted(by_symbol.items()):
            exchange, _, symbol = key.partition(":")
            for kind, n in sorted(per_type.items()):
                family.add_metric([exchange, symbol, kind], n)
        yield family

    @staticmethod
    def _candles(h: Any) -> Iterator[Metric]:
        closed = _counter(
            "mdth_candles_closed", "Candles closed (first versions and revisions)", ["exchange", "timeframe"]
        )
        late = _counter(
            "mdth_late_ticks", "Trades whose bucket had closed (dropped, or revising a candle)", ["exchange"]
        )
        dropped = _counter(
            "mdth_candle_trades_dropped",
            "Trades the candle engines dropped, by reason (late, late_too_old, ahead, jump)",
            ["exchange", "reason"],
        )
        open_trades = _gauge("mdth_candle_open_trades", "Trades in candles not closed yet", ["exchange"])
        for name, engine in sorted(dict(h.engines).items()):
            stats = engine.get_stats()
            for timeframe, n in stats["candles_by_timeframe"].items():
                closed.add_metric([name, timeframe], n)
            late.add_metric([name], stats["late_ticks"])
            for reason, n in dict(engine.ledger).items():
                if reason != "applied":
                    dropped.add_metric([name, reason], n)
            open_trades.add_metric([name], engine.open_trades)
        yield from (closed, late, dropped, open_trades)

    @staticmethod
    def _gaps(h: Any, counts: Mapping[str, int]) -> Iterator[Metric]:
        opened = _counter("mdth_gaps_opened", "Gaps opened, by reason", ["reason"])
        for reason, n in sorted(dict(h.gaps.opened).items()):
            opened.add_metric([reason], n)
        yield opened
        now = _gauge("mdth_gaps_open", "Gaps open now (instruments not heard from since)")
        now.add_metric([], h.gaps.open_gaps)
        yield now

    def live_ledger(self) -> list[Entry]:
        """The processor's side of the ledger now (``apply``, ``candles``, ``sinks``); at the end, the
        whole ledger the service drew up (with the ingester's ``source``, ``normalize`` and ``wire``)."""
        s = self.service
        if s.ledger:
            return list(s.ledger)
        h = s.handler
        rows = h.row_ledger()
        entries = ledger_lines.apply_entries(rows)
        if "trade" in rows:
            engines = list(h.engines.values())
            late = sum(e.get_stats()["late_ticks"] for e in engines)
            still_open = sum(e.open_trades for e in engines)
            entries.append(
                ledger_lines.candle_entry(
                    rows["trade"]["candles"], late, s.trades_in_candles, s.base_timeframe, still_open
                )
            )
        handed = dict(s.handed)
        entries += [e for sink in s.sinks for e in sink.ledger_entries(handed)]
        return entries

    def _ledger(self) -> Iterator[Metric]:
        entries = self.live_ledger()
        final = _gauge("mdth_ledger_final", "1 once the run's whole ledger is drawn up (the end), 0 before")
        final.add_metric([], 1 if self.service.ledger else 0)
        yield final
        into = _gauge("mdth_ledger_in", "What went into a stage of the ledger", ["stage", "what"])
        parts = _gauge("mdth_ledger_accounted", "Where it went, by part", ["stage", "what", "part"])
        diff = _gauge(
            "mdth_ledger_difference", "In minus accounted for (0 when the line adds up)", ["stage", "what"]
        )
        for e in entries:
            into.add_metric([e.stage, e.what], e.expected)
            for part, n in e.parts.items():
                parts.add_metric([e.stage, e.what, part], n)
            diff.add_metric([e.stage, e.what], e.expected - e.accounted)
        yield from (into, parts, diff)


class SinkCollector(Collector):
    """Every sink's counters and backlog (``sinks()``: read at each scrape)."""

    def __init__(self, sinks: Callable[[], Iterable[Any]]) -> None:
        self.sinks = sinks

    def collect(self) -> Iterator[Metric]:
        counters: dict[str, CounterMetricFamily] = {}
        gauges: dict[str, GaugeMetricFamily] = {}
        backlog = _gauge(
            "mdth_sink_backlog_bytes",
            "Bytes a sink holds waiting for its store: in memory, on disk (spill)",
            ["sink", "where"],
        )
        for sink in sink_targets(self.sinks()):
            stats = sink.get_stats() if hasattr(sink, "backlog") else {}
            for key, (name, what) in SINK_COUNTERS.items():
                if key in stats:
                    family = counters.get(name) or counters.setdefault(
                        name, _counter(name, SINK_HELP[name], ["sink", "what"] if what else ["sink"])
                    )
                    family.add_metric([sink.name, what] if what else [sink.name], stats[key])
            for key, (name, what) in SINK_GAUGES.items():
                if key in stats:
                    family = gauges.get(name) or gauges.setdefault(
                        name,
                        _gauge(name, GAUGE_HELP[name], ["sink", "what"]),
                    )
                    family.add_metric([sink.name, what], stats[key])
            if hasattr(sink, "backlog"):
                for where, n in backlog_bytes(sink).items():
                    backlog.add_metric([sink.name, where], n)
        yield from counters.values()
        yield from gauges.values()
        yield backlog


class RecorderCollector(Collector):
    """The observed histograms: each sink's write durations, candle close lag, frame latency (folded in
    from the service's ring of per-frame latencies at each scrape), frame sizes, event loop lag."""

    def __init__(
        self,
        timers: Callable[[], Iterable[WriteTimer]],
        close_lag: CloseLag,
        loop_lag: Histo,
        frame_sizes: Histo,
        service: StreamingService | None,
    ) -> None:
        self.timers = timers
        self.close_lag = close_lag
        self.loop_lag = loop_lag
        self.frame_sizes = frame_sizes
        self.service = service
        self.frame_latency = {"handled": Histo(LATENCY_BUCKETS), "done": Histo(LATENCY_BUCKETS)}
        self._folded = 0  # frames of the ring folded in so far
        self._ring: Any = None

    def fold_latencies(self) -> None:
        """The frames recorded since the last scrape, from ``service.latencies``' ring (µs) into the
        histograms: no work per frame. Frames that fell out of the ring before a scrape (more than its
        window between two scrapes) are not in them; ``mdth_frame_latency_seconds_count`` says how many
        are."""
        if self.service is None:
            return
        lat = self.service.latencies
        if lat is not self._ring:  # a new service (tests), or its first scrape
            self._ring, self._folded = lat, 0
        new = lat.frames - self._folded
        if new <= 0:
            return
        window = lat.window
        take = min(new, window)
        for key, ring in (("handled", lat._handled), ("done", lat._done)):
            end = lat.frames % window
            start = (lat.frames - take) % window
            part = np.concatenate([ring[start:], ring[:end]]) if take and start >= end else ring[start:end]
            self.frame_latency[key].observe_many(part.astype(np.float64) / 1e6)
        self._folded = lat.frames

    def collect(self) -> Iterator[Metric]:
        timers = list(self.timers())
        yield histogram(
            "mdth_sink_write_seconds",
            "A sink's writes (Redis round trips, BigQuery or local store appends), by outcome: ok, failed"
            " (to be tried again), refused",
            ["sink", "store", "outcome"],
            [((t.sink, t.store, outcome), h) for t in timers for outcome, h in t.by_outcome.items()],
        )
        yield histogram(
            "mdth_candle_close_lag_seconds",
            "From a candle's bucket end to its publish returning (persist mode alone: its rows queued), on"
            " the candles' clock: wall time live, the exchange time a replay has reached",
            ["timeframe"],
            (((tf,), h) for tf, h in sorted(self.close_lag.by_timeframe.items())),
        )
        self.fold_latencies()
        if self.service is not None:
            yield histogram(
                "mdth_frame_latency_seconds",
                "From the ingester's receipt of a frame's oldest message to the processor having handled"
                " the frame (stage handled) and published what it closed (stage done): grows when frames"
                " queue in ZeroMQ (back-pressure)",
                ["stage"],
                (((k,), h) for k, h in self.frame_latency.items()),
            )
            yield histogram(
                "mdth_frame_size_bytes", "Wire frames received, by size", [], [((), self.frame_sizes)]
            )
        yield histogram(
            "mdth_event_loop_lag_seconds",
            "How late the event loop ran a 1 s timer: the processor busy (or blocked) for that long",
            [],
            [((), self.loop_lag)],
        )


class InstrumentsCollector(Collector):
    """The instrument definitions' sync (``sinks/instruments_sync.py``) and its provider's refreshes."""

    def __init__(self, sync: Any, loads: LoadTimer) -> None:
        self.sync = sync
        self.loads = loads

    def collect(self) -> Iterator[Metric]:
        stats = dict(self.sync.stats)
        provider = self.sync.provider
        p = dict(provider.stats) if provider is not None else {}
        refreshes = _counter(
            "mdth_instrument_refreshes",
            "Loads of the markets (ccxt or market files), by outcome",
            ["outcome"],
        )
        refreshes.add_metric(["ok"], p.get("loads", 0))
        refreshes.add_metric(["failed"], p.get("load_failures", 0))
        yield refreshes
        changes = _counter("mdth_instrument_changes", "Definition changes found, by kind", ["kind"])
        for kind, n in sorted(dict(stats.get("changes", {})).items()):
            changes.add_metric([kind], n)
        yield changes
        errors = _counter(
            "mdth_instrument_redis_errors", "Instrument writes to Redis that failed (the hash is rewritten)"
        )
        errors.add_metric([], stats.get("redis_errors", 0))
        yield errors
        count = _gauge("mdth_instruments", "Instruments in the last load, by exchange", ["exchange"])
        took = _gauge(
            "mdth_instrument_load_seconds", "How long the last load of an exchange took", ["exchange"]
        )
        last = _gauge(
            "mdth_instrument_last_load_timestamp_seconds",
            "When an exchange's markets last loaded (Unix time)",
            ["exchange"],
        )
        for exchange, e in sorted(dict(p.get("exchanges", {})).items()):
            count.add_metric([exchange], e.get("instruments") or 0)
            if e.get("load_seconds") is not None:
                took.add_metric([exchange], e["load_seconds"])
            if e.get("last_load_us") is not None:
                last.add_metric([exchange], e["last_load_us"] / 1e6)
        yield from (count, took, last)
        yield histogram(
            "mdth_instrument_refresh_seconds",
            "Each load of an exchange's markets (ccxt, or the market files), by ccxt exchange and outcome",
            ["ccxt_exchange", "outcome"],
            sorted(self.loads.series.items()),
        )


class HealthCollector(Collector):
    """``/health``'s verdict as gauges: ``mdth_healthy`` and each stream's silence."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        report = self.health.report()
        healthy = _gauge("mdth_healthy", "1 when /health answers 200, 0 when 503")
        healthy.add_metric([], 1 if report.ok else 0)
        yield healthy
        unhealthy = _gauge("mdth_unhealthy", "The reasons /health answers 503 now, by kind", ["kind"])
        for kind in ("stale_stream", "backlog", "ingester_down"):
            unhealthy.add_metric([kind], sum(1 for r in report.reasons if r.startswith(kind)))
        yield unhealthy
        silence = _gauge(
            "mdth_stream_silence_seconds",
            "Wall-clock seconds since a subscribed stream's last message (since the start when none came)",
            ["exchange", "symbol"],
        )
        for (exchange, symbol), seconds in sorted(report.silence.items()):
            silence.add_metric([exchange, symbol], seconds)
        yield silence
