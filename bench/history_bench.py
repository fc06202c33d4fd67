"""``make bench``, history: us against the peers, on one ~2 M-trade input, in one run.

The input (``build_bench_recording``): the trade frames of the two contiguous spot BTCUSDT recordings in
../shared/data/binance-ws (19,904 trades) repeated ``--repeats`` times (100: 1,990,400 trades, 25 h),
repetition k shifted by k x 15 min (exchange ``E``/``T`` and the recorded ``<ns>``) with trade ids
shifted by k x 100,000,000; as a ``<ns> <json>`` gzip recording, as a DataFrame (timestamp µs, price,
amount, side) and as its Tardis CSV twin (``devtools.tardis_csv``).

Each tool runs in its own process; trades/s is the tool's own timing of its work (interpreter start-up
and imports excluded), peak RSS is the process's (GNU time's ``%M``; for our pipeline the processor's and
the ingester's peak VmHWM, sampled every 50 ms, added). ``--runs N``: N rounds of every tool, each figure
the median. Peers (bench/peers/, installed in ``.venv-bench`` by ``make bench-env``, never in
the project's ``.venv``):

- tardis-dev direct (``tardis-bars.mjs``): the recording's frames through tardis-dev's ``normalizeTrades``
  mapper (its replay's ``normalizeMessages`` loop, localTimestamp = the line's ``<ns>``) and
  ``compute(..., computeTradeBars({kind: 'time', interval}))`` for the six timeframes.
- cryptofeed (``cryptofeed_bars.py``): its Binance feed's ``message_handler`` called with each frame (no
  network), trades into a plain-Python OHLCV aggregator on the trade's exchange time.
- pandas (``pandas_bars.py``): stdlib ``json`` over the frames, a DataFrame, ``resample`` (origin epoch,
  left closed, left labels) to OHLCV + trade count; and ``resample`` alone on the ready DataFrame.

Ours: (1) ``main --source replay --speed max`` (serve mode on the in-memory transport: candles on six
timeframes with features on 15s and 1m, no Redis), with ``ingest.replay_path`` direct and websocket when
the ingester has ``--replay-path``; trades/s from the first frame to the end as the processor reports it
(``--stats-json``'s ``elapsed_s``); its candles are read back from one more, untimed, run in persist mode
into a local store; (2) ``candles_from_trades`` on the ready DataFrame; (3) the CSV backfill into a fresh
local store (trades/s from its own progress line). Every tool's candles are compared with (2)'s, per
timeframe, on OHLCV and trade count; buckets only one side has count as differing.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PEERS = BENCH / "peers"
DATA = Path(os.environ.get("MDTH_SHARED_DATA", ROOT.parent / "shared" / "data")) / "binance-ws"
SOURCES = ("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz")
SHIFT_MS = 15 * 60 * 1000  # per repetition
SHIFT_ID = 100_000_000
BENCH_VENV = ROOT / ".venv-bench"
TIMEFRAMES = ("15s", "1m", "5m", "15m", "4h", "24h")

# the three numbers in a Binance trade frame the repetitions move, in the order Binance writes them
_NUMBERS = re.compile(r'"(E|t|T)":(\d+)')


@dataclass(frozen=True, slots=True)
class BaseTrades:
    """The source recordings' trade frames: each line's template (``%d`` for E, t, T) and its numbers."""

    templates: tuple[str, ...]
    ns: np.ndarray  # recorded receive time
    event_ms: np.ndarray  # E
    trade_id: np.ndarray  # t
    trade_ms: np.ndarray  # T
    price: np.ndarray
    amount: np.ndarray
    seller_maker: np.ndarray  # m: the buyer is the maker, so the taker sold


def read_base_trades(paths: Sequence[Path] = tuple(DATA / s for s in SOURCES)) -> BaseTrades:
    templates: list[str] = []
    cols: dict[str, list] = {k: [] for k in ("ns", "E", "t", "T", "p", "q", "m")}
    for path in paths:
        with gzip.open(path, "rt") as lines:
            for number, line in enumerate(lines, 1):
                ns_text, _, raw = line.rstrip("\n").partition(" ")
                if '"e":"trade"' not in raw:
                    continue
                try:
                    data = json.loads(raw)["data"]
                    found = _NUMBERS.findall(raw)
                    if [k for k, _ in found] != ["E", "t", "T"]:
                        raise ValueError(f"E, t, T not once each in that order: {found}")
                    cols["ns"].append(int(ns_text))
                except ValueError as exc:
                    raise SystemExit(f"{path}:{number}: {exc}") from None
                templates.append(_NUMBERS.sub(lambda m: f'"{m.group(1)}":%d', raw.replace("%", "%%")))
                for key in ("E", "t", "T", "p", "q", "m"):
                    cols[key].append(data[key])
    return BaseTrades(
        templates=tuple(templates),
        ns=np.array(cols["ns"], dtype=np.int64),
        event_ms=np.array(cols["E"], dtype=np.int64),
        trade_id=np.array(cols["t"], dtype=np.int64),
        trade_ms=np.array(cols["T"], dtype=np.int64),
        price=np.array(cols["p"], dtype=np.float64),
        amount=np.array(cols["q"], dtype=np.float64),
        seller_maker=np.array(cols["m"], dtype=bool),
    )


def build_bench_recording(path: Path | str, repeats: int = 100, base: BaseTrades | None = None) -> int:
    """Write the bench input as a ``<ns> <json>`` gzip recording at ``path``: the two spot BTCUSDT
    recordings' trade frames, ``repeats`` times, repetition k shifted by k x 15 min and its trade ids by
    k x 100,000,000. Returns the number of trades (19,904 x ``repeats``)."""
    base = base or read_base_trades()
    rows = list(zip(base.templates, base.ns.tolist(), base.event_ms.tolist(), base.trade_id.tolist(),
                    base.trade_ms.tolist(), strict=True))  # fmt: skip
    with gzip.open(path, "wt", compresslevel=1) as out:
        for k in range(repeats):
            dms, dns, did = k * SHIFT_MS, k * SHIFT_MS * 1_000_000, k * SHIFT_ID
            out.write(
                "".join(f"{ns + dns} {tmpl % (e + dms, t + did, tt + dms)}\n" for tmpl, ns, e, t, tt in rows)
            )
    return len(rows) * repeats


def bench_arrays(repeats: int = 100, base: BaseTrades | None = None) -> dict[str, np.ndarray]:
    """The same trades as columns: timestamp (µs, exchange time), price, amount, seller_maker
    (side "sell" when true, else "buy"), local_ns, id."""
    base = base or read_base_trades()
    k = np.repeat(np.arange(repeats, dtype=np.int64), len(base.ns))
    return {
        "timestamp": (np.tile(base.trade_ms, repeats) + k * SHIFT_MS) * 1000,
        "price": np.tile(base.price, repeats),
        "amount": np.tile(base.amount, repeats),
        "seller_maker": np.tile(base.seller_maker, repeats),
        "local_ns": np.tile(base.ns, repeats) + k * SHIFT_MS * 1_000_000,
        "id": np.tile(base.trade_id, repeats) + k * SHIFT_ID,
    }


# ---------------------------------------------------------------------------------------------- running


@dataclass(frozen=True, slots=True)
class Run:
    tool: str
    input: str
    trades: int = 0
    seconds: float = math.nan
    rss_mib: float = math.nan
    bars: Path | None = None
    note: str = ""
    error: str = ""
    counts: dict[str, int] | None = None  # candles per timeframe, when the bars are not at hand

    @property
    def rate(self) -> float:
        return self.trades / self.seconds if self.seconds > 0 else math.nan


@dataclass(slots=True)
class _Peaks:
    """VmHWM of a process and its descendants, sampled while it runs (for the pipeline's two)."""

    pid: int
    hwm_kib: dict[int, int] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)

    def sample(self) -> None:
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    children = (task / "children").read_text().split()
                    todo.extend(int(c) for c in children)
            except OSError:
                continue
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("Name:"):
                    self.names[pid] = line.split()[1]
                elif line.startswith("VmHWM:"):
                    self.hwm_kib[pid] = max(self.hwm_kib.get(pid, 0), int(line.split()[1]))


TIME = Path("/usr/bin/time")
#: how often a running tool's processes are sampled for their VmHWM (a high-water mark: a sparse sample
#: loses nothing but growth in the last interval). Every 50 ms the sampling cost 2-4 % of a core, which a
#: tool using both cores (our pipeline) pays and a one-thread tool does not
SAMPLE_EVERY_S = 0.25


def run_tool(cmd: Sequence[str], *, cwd: Path | None = None, env: dict | None = None,
             timeout: float = 1800) -> tuple[str, str, float, dict[str, float]]:  # fmt: skip
    """Run ``cmd``; its stdout, stderr, peak RSS (MiB) and per process name the sampled peaks (MiB,
    VmHWM) of it and its children. The peak RSS is GNU time's ``%M`` (the command's own ru_maxrss, from a
    small parent: a child forked from this process would count this process's pages in its maxrss), or
    without /usr/bin/time the sampled VmHWM of the command's process."""
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file,
    ):
        timed = [str(TIME), "-f", "%M", "-o", rss_file.name, *cmd] if TIME.exists() else list(cmd)
        proc = subprocess.Popen(timed, cwd=cwd, env=env, stdout=out, stderr=err)
        peaks = _Peaks(proc.pid)
        stop = threading.Event()

        def sampler() -> None:
            while not stop.wait(SAMPLE_EVERY_S):
                peaks.sample()

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stop.set()
        thread.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        reported = rss_file.read().strip().splitlines()
    by_name: dict[str, float] = {}
    for pid, kib in peaks.hwm_kib.items():
        name = peaks.names.get(pid, str(pid))
        if pid != proc.pid or not TIME.exists():  # not GNU time itself
            by_name[name] = by_name.get(name, 0) + kib / 1024
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} ... exited {proc.returncode}: {stderr.strip()[-1500:]}")
    if TIME.exists() and reported and reported[-1].isdigit():
        rss = int(reported[-1]) / 1024
    else:
        rss = peaks.hwm_kib.get(proc.pid, 0) / 1024
    return stdout, stderr, rss, by_name


def median_of(runs: Sequence[Run]) -> Run:
    """Of several runs of one tool: the run with the median trades/s, with the highest peak RSS."""
    good = [r for r in runs if not r.error]
    if not good:
        return runs[-1]
    mid = sorted(good, key=lambda r: r.rate)[len(good) // 2]
    rates = ", ".join(fmt_rate(r.rate) for r in good)
    note = f"{mid.note}; " if mid.note else ""
    note += f"median of {len(good)} runs ({rates})" if len(good) > 1 else ""
    return replace(mid, rss_mib=max(r.rss_mib for r in good), note=note.rstrip("; "))


def last_json(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON result line in: {stdout[-500:]}")


def peer(tool: str, inp: str, cmd: Sequence[str], bars: Path | None, note: str = "", **kw) -> Run:
    print(f"  running {tool} ({inp}) ...", flush=True)
    try:
        stdout, _, rss, _ = run_tool(cmd, **kw)
    except (RuntimeError, OSError) as exc:
        return Run(tool, inp, error=str(exc), note=note)
    result = last_json(stdout)
    return Run(tool, inp, result["trades"], result["seconds"], rss, bars, result.get("note", note))


def node_accepts_replay_path() -> bool:
    cli = ROOT / "ingest-node" / "src" / "cli.js"
    helped = subprocess.run(["node", str(cli), "--help"], capture_output=True, text=True, check=False)
    return "--replay-path" in helped.stdout + helped.stderr


def ours_pipeline(recording: Path, tmp: Path, replay_path: str) -> Run:
    """``main --source replay --speed max`` on the in-memory transport (serve mode's candles on six
    timeframes, features on 15s and 1m, no Redis); trades/s = trades / the processor's ``elapsed_s``
    (first frame to the end)."""
    label = f"ours: main replay, {replay_path} path"
    print(f"  running {label} ...", flush=True)
    config = tmp / f"replay-{replay_path}.yaml"
    config.write_text(json.dumps({"ingest": {"replay_path": replay_path}}))
    stats = tmp / f"stats-{replay_path}.json"
    cmd = [sys.executable, "-m", "market_data_tick_handler.main", "--config", str(config),
           "--mode", "streaming-candles-serve", "--transport", "inmemory", "--source", "replay",
           "--files", str(recording), "--exchange", "binance", "--symbols", "btcusdt", "--speed", "max",
           "--no-metrics", "--stats-json", str(stats), "--log-level", "WARNING"]  # fmt: skip
    try:
        _, _, _, by_name = run_tool(cmd, cwd=tmp)
    except (RuntimeError, OSError) as exc:
        return Run(label, "raw frames (.gz)", error=str(exc))
    result = json.loads(stats.read_text())
    py = sum(v for k, v in by_name.items() if k.startswith("python"))
    node = sum(v for k, v in by_name.items() if k.startswith("node"))
    counts = result.get("candles_by_timeframe", {}).get("binance", {})
    return Run(label, "raw frames (.gz)", result["ticks_by_type"]["trade"], result["elapsed_s"], py + node,
               note=f"peak RSS: processor {py:.0f} MiB + ingester {node:.0f} MiB", counts=counts)  # fmt: skip


def pipeline_candles(recording: Path, tmp: Path) -> Path | str:
    """Not timed: the same replay (direct path when the ingester has it) in persist mode, into a fresh
    local store, and its candles as bars rows in a file; or why not."""
    store = tmp / "pipeline-store"
    shutil.rmtree(store, ignore_errors=True)
    config = tmp / "replay-persist.yaml"
    config.write_text(json.dumps({"persist": {"local": {"path": str(store)}}}))
    cmd = [sys.executable, "-m", "market_data_tick_handler.main", "--config", str(config),
           "--mode", "streaming-candles-bigquery", "--source", "replay", "--files", str(recording),
           "--exchange", "binance", "--symbols", "btcusdt", "--speed", "max", "--no-metrics",
           "--log-level", "WARNING"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("GCP_PROJECT_ID", "BIGQUERY_EMULATOR")}
    print(
        "  reading the pipeline's candles back (persist mode into a local store, not timed) ...", flush=True
    )
    try:
        run_tool(cmd, cwd=tmp, env=env)
        bars = tmp / "pipeline.json"
        bars.write_text(json.dumps(store_bars(store)))
    except (RuntimeError, OSError, ValueError, ImportError) as exc:
        return f"its candles not read back: {exc}"
    return bars


def write_csv_twin(recording: Path, out: Path) -> list[Path] | str:
    try:
        from market_data_tick_handler.devtools.tardis_csv import write_tardis_trades_csv
    except ImportError:
        return "not available yet (devtools/tardis_csv.py)"
    return write_tardis_trades_csv([recording], out)


def ours_backfill(csv_files: list[Path], tmp: Path, trades: int) -> Run:
    """The CSV backfill into the local store (a fresh one under ``tmp``); trades/s = trades / (wall time
    of the run - wall time of ``backfill --help``, the interpreter and import start-up)."""
    label, inp = "ours: CSV backfill -> local store", "Tardis CSV (.csv.gz)"
    module = ["-m", "market_data_tick_handler.backfill"]
    helped = subprocess.run([sys.executable, *module, "--help"], capture_output=True, text=True, cwd=tmp,
                            check=False)  # fmt: skip
    if helped.returncode != 0:
        return Run(label, inp, error="not available yet (python -m market_data_tick_handler.backfill)")
    print(f"  running {label} ...", flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *module, "--help"], capture_output=True, cwd=tmp, check=False)
    startup = time.perf_counter() - t0
    days = sorted(re.search(r"_(\d{4}-\d\d-\d\d)_", p.name).group(1) for p in csv_files)
    store = tmp / "store"
    shutil.rmtree(store, ignore_errors=True)  # a fresh store each run (a second run would skip done days)
    cmd = [sys.executable, *module, "--exchange", "binance", "--symbols", "BTC-USDT", "--from", days[0],
           "--to", days[-1], "--data-dir", str(csv_files[0].parent)]  # fmt: skip
    for flag in ("--store", "--local-path", "--warehouse", "--out"):
        if flag in helped.stdout:
            cmd += [flag, str(store)]
            break
    env = {k: v for k, v in os.environ.items() if k not in ("GCP_PROJECT_ID", "BIGQUERY_EMULATOR")}
    t0 = time.perf_counter()
    try:
        stdout, stderr, rss, _ = run_tool(cmd, cwd=tmp, env=env)
    except (RuntimeError, OSError) as exc:
        return Run(label, inp, error=str(exc))
    wall = time.perf_counter() - t0
    last = (stdout + stderr).strip().splitlines()[-1:] or [""]
    own = re.search(r"trades ([\d,]+), ([\d,]+) trades/s", last[0])
    note = f"wall {wall:.2f} s - start-up {startup:.2f} s = {trades / (wall - startup):,.0f} trades/s"
    if own:  # the backfill's own clock, from its last progress line
        trades = int(own.group(1).replace(",", ""))
        seconds = trades / float(own.group(2).replace(",", ""))
        note = f"its own progress line: {last[0].strip()!r}; " + note
    else:
        seconds = wall - startup
    bars = tmp / "backfill.json"
    try:
        bars.write_text(json.dumps(store_bars(store)))
    except (OSError, ValueError, ImportError) as exc:
        bars, note = None, note + f"; its candles not read back: {exc}"
    return Run(label, inp, trades, seconds, rss, bars, note)


def store_bars(store: Path) -> list[list]:
    """The candle tables of a local store as bars rows (the highest revision of each bucket)."""
    import pandas as pd

    rows: list[list] = []
    for tf in TIMEFRAMES:
        tables = list(store.glob(f"*/candles_{tf}"))
        if not tables:
            continue
        frame = pd.concat(pd.read_parquet(t) for t in tables)
        frame = frame.sort_values("revision").drop_duplicates(
            ["exchange", "symbol", "timestamp_in"], keep="last"
        )
        starts = frame["timestamp_in"].astype("datetime64[ms, UTC]").astype("int64").tolist()
        cols = [frame[c].tolist() for c in ("open", "high", "low", "close", "volume", "trade_count")]
        rows += [[tf, start, *(c[i] for c in cols)] for i, start in enumerate(starts)]
    return rows


# ------------------------------------------------------------------------------------------- comparing

Bar = tuple[float | None, float | None, float | None, float | None, float, int]


def load_bars(path: Path) -> dict[tuple[str, int], Bar]:
    out: dict[tuple[str, int], Bar] = {}
    for tf, start, o, h, lo, c, v, n in json.loads(path.read_text()):
        out[(tf, int(start))] = (o, h, lo, c, float(v or 0), int(n or 0))
    return out


def same(a: Bar, b: Bar) -> bool:
    if a[5] != b[5] or not math.isclose(a[4], b[4], rel_tol=1e-9, abs_tol=1e-12):
        return False
    # an empty bucket has no prices to compare (ours carries the last close, pandas has NaN)
    return a[5] == 0 or all(x is not None and y is not None and float(x) == float(y)
                            for x, y in zip(a[:4], b[:4], strict=True))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Diff:
    values: int  # buckets both have, OHLCV or count differ
    only_ours: int
    only_theirs: int
    only_ours_empty: int = 0  # of only_ours, buckets without trades

    @property
    def total(self) -> int:
        return self.values + self.only_ours + self.only_theirs


def compare(ours: dict, theirs: dict) -> dict[str, Diff]:
    out = {}
    for tf in TIMEFRAMES:
        a = {k: v for k, v in ours.items() if k[0] == tf}
        b = {k: v for k, v in theirs.items() if k[0] == tf}
        values = sum(1 for k in a.keys() & b.keys() if not same(a[k], b[k]))
        only_ours = a.keys() - b.keys()
        empty = sum(1 for k in only_ours if a[k][5] == 0)
        out[tf] = Diff(values, len(only_ours), len(b.keys() - a.keys()), empty)
    return out


def describe(diffs: dict[str, Diff]) -> str:
    if all(d.total == 0 for d in diffs.values()):
        return "equal (every bucket)"
    return " ".join(f"{tf}:{d.total}" for tf, d in diffs.items())


def detail(diffs: dict[str, Diff]) -> str:
    return "; ".join(
        f"{tf} {d.values} differ, {d.only_ours} only ours ({d.only_ours_empty} of them empty), "
        f"{d.only_theirs} only theirs"
        for tf, d in diffs.items()
        if d.total
    )


# ---------------------------------------------------------------------------------------------- report


def fmt_rate(rate: float) -> str:
    if math.isnan(rate):
        return "-"
    return f"{rate / 1e6:.2f} M/s" if rate >= 1e6 else f"{rate / 1e3:.0f} k/s"


def fmt_ratio(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2f}x"


def table(runs: list[Run], reference: dict[str, Run], ours_bars: dict | None, trades: int) -> list[str]:
    head = ("tool", "input", "trades/s", "it/ours", "ours/it", "peak RSS", "candles vs ours")
    rows = [head]
    notes = []
    for run in runs:
        ref = reference.get(run.input)
        if run.error:
            rows.append((run.tool, run.input, "n/a", "", "", "", ""))
            notes.append(f"{run.tool}: {run.error.splitlines()[0][:300]}")
            continue
        ratio = run.rate / ref.rate if ref and not ref.error and ref is not run else math.nan
        candles = "(reference)" if run.bars is not None and run.tool.startswith("ours: candles_from") else ""
        if run.bars is not None and ours_bars is not None and not candles:
            diffs = compare(ours_bars, load_bars(run.bars))
            candles = describe(diffs)
            if any(d.total for d in diffs.values()):
                notes.append(f"{run.tool} ({run.input}) against ours: {detail(diffs)}")
        elif run.counts is not None and ours_bars is not None:
            want = {tf: sum(1 for k in ours_bars if k[0] == tf) for tf in TIMEFRAMES}
            got = {tf: run.counts.get(tf, 0) for tf in TIMEFRAMES}
            candles = "same count per timeframe" if got == want else f"counts {got} (ours batch {want})"
        elif not candles:
            candles = "-"
        inverse = 1 / ratio if ratio else math.nan
        rss = f"{run.rss_mib:.0f} MiB"
        rows.append(
            (run.tool, run.input, fmt_rate(run.rate), fmt_ratio(ratio), fmt_ratio(inverse), rss, candles)
        )
        if run.note:
            notes.append(f"{run.tool}: {run.note}")
        if run.trades != trades:
            notes.append(f"{run.tool}: took {run.trades:,} trades of the {trades:,}")
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return [*lines, "notes:", *(f"  - {n}" for n in notes)]


def target(name: str, ours: Run | None, theirs: Run | None, want: float, absolute: bool = False) -> str:
    if ours is None or ours.error or (not absolute and (theirs is None or theirs.error)):
        return f"n/a   {name}: not measured"
    if absolute:
        got = ours.rate
        verdict = "PASS" if got >= want else "FAIL"
        return f"{verdict}  {name}: {got / 1e6:.2f} M trades/s (target {want / 1e6:.0f} M)"
    got = ours.rate / theirs.rate
    return (
        f"{'PASS' if got >= want else 'FAIL'}  {name}: {got:.2f}x "
        f"({fmt_rate(ours.rate)} against {fmt_rate(theirs.rate)}; target {want:.0f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeats", type=int, default=100, help="repetitions of the 19,904 trades (default 100)"
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="rounds of every tool; each figure is the median (default 1)"
    )
    parser.add_argument(
        "--keep", type=Path, help="build the inputs and write the bars in this directory, and keep it"
    )
    args = parser.parse_args()
    from pipeline_bench import machine

    print(f"machine: {machine()}", flush=True)
    print(
        f"history bench: {args.repeats} x 19,904 trades; each tool in its own process, one after another, "
        "sharing the machine with whatever else runs on it",
        flush=True,
    )
    bench_py = BENCH_VENV / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="mdth-history-") as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        base = read_base_trades()
        recording = tmp / "bench-recording.gz"
        trades = build_bench_recording(recording, args.repeats, base)
        arrays = tmp / "bench-trades.npz"
        np.savez(arrays, **bench_arrays(args.repeats, base))
        csv_dir = tmp / "csv"
        csv_files = write_csv_twin(recording, csv_dir)
        twin = csv_files if isinstance(csv_files, str) else ", ".join(p.name for p in csv_files)
        size = recording.stat().st_size / 2**20
        print(
            f"input: {trades:,} trades: {recording.name} ({size:.0f} MiB), the DataFrame, CSV: {twin}",
            flush=True,
        )

        raw, frame, csv = "raw frames (.gz)", "DataFrame", "Tardis CSV (.csv.gz)"
        jobs: list[Callable[[], Run]] = []
        paths = ("direct", "websocket") if node_accepts_replay_path() else ("auto",)
        for path in paths:
            jobs.append(partial(ours_pipeline, recording, tmp, path))
        tardis_cmd = ["node", str(PEERS / "tardis-bars.mjs"), str(recording), str(tmp / "tardis.json")]
        jobs.append(
            partial(peer, "tardis-dev direct (computeTradeBars)", raw, tardis_cmd, tmp / "tardis.json")
        )
        for tool, inp, script, kind, src, out in (
            (
                "cryptofeed handler + plain OHLCV",
                raw,
                "cryptofeed_bars.py",
                None,
                recording,
                "cryptofeed.json",
            ),
            ("pandas: json + resample", raw, "pandas_bars.py", "frames", recording, "pandas-frames.json"),
            ("pandas: resample alone", frame, "pandas_bars.py", "frame", arrays, "pandas-frame.json"),
        ):
            if not bench_py.exists():
                missing = Run(tool, inp, error="not available: .venv-bench missing (make bench-env)")
                jobs.append(partial(lambda r: r, missing))
                continue
            cmd = [str(bench_py), str(PEERS / script), *([kind] if kind else []), str(src), str(tmp / out)]
            jobs.append(partial(peer, tool, inp, cmd, tmp / out))
        for kind, tool, out in (
            ("objects", "ours: candles_from_trades", "ours.json"),
            ("table", "ours: candle_table_from_trades().frame()", "ours-table.json"),
        ):
            ours_cmd = [sys.executable, str(PEERS / "ours_batch.py"), kind, str(arrays), str(tmp / out)]
            jobs.append(partial(peer, tool, frame, ours_cmd, tmp / out))
        if isinstance(csv_files, str):
            jobs.append(partial(lambda r: r, Run("ours: CSV backfill -> local store", csv, error=csv_files)))
        else:
            jobs.append(partial(ours_backfill, csv_files, tmp, trades))
        # in rounds, each tool once a round, so a change in the machine's load falls on every tool alike
        results: list[list[Run]] = [[] for _ in jobs]
        for round_no in range(args.runs):
            if args.runs > 1:
                print(f"round {round_no + 1} of {args.runs}", flush=True)
            for i, job in enumerate(jobs):
                run = job()
                results[i].append(run)
                said = (
                    run.error.splitlines()[0][:200]
                    if run.error
                    else f"{fmt_rate(run.rate)}, {run.rss_mib:.0f} MiB"
                )
                print(f"    {run.tool}: {said}", flush=True)
        runs = [median_of(r) for r in results]
        for i, run in enumerate(runs):
            if run.tool.startswith("ours: main") and not run.error and run.counts is not None:
                got = pipeline_candles(recording, tmp)
                if isinstance(got, Path):
                    runs[i] = replace(
                        run, bars=got, note=f"{run.note}; candles: from a persist-mode run of it"
                    )
                else:
                    runs[i] = replace(run, note=f"{run.note}; {got}")
                break
        pipeline = {r.tool.split(", ")[1].split()[0]: r for r in runs if r.tool.startswith("ours: main")}
        batch = next(r for r in runs if r.tool == "ours: candles_from_trades")

        direct = pipeline.get("direct") or pipeline.get("auto")
        reference = {raw: direct, frame: batch}
        ours_bars = load_bars(batch.bars) if not batch.error and batch.bars else None
        print()
        print("\n".join(table(runs, reference, ours_bars, trades)))
        print(
            "trades/s: each tool's own clock over its work (interpreter start-up and imports excluded); "
            "ours on raw frames: the processor's first frame to the end. it/ours: its rate / ours on the "
            "same input (raw frames: ours' direct replay; DataFrame: candles_from_trades). Candles: "
            "buckets differing from candles_from_trades' per timeframe (OHLC, volume to 1e-9, trade "
            "count; both empty = equal), buckets only one side has included."
        )
        tardis = next((r for r in runs if r.tool.startswith("tardis-dev")), None)
        pandas_frame = next((r for r in runs if r.tool == "pandas: resample alone"), None)
        backfill = next((r for r in runs if r.tool.startswith("ours: CSV")), None)
        print()
        print(target("raw frames -> candles + features >= 2x tardis-dev direct", direct, tardis, 2))
        print(
            target(
                "DataFrame -> candles >= 10x pandas resample (candles_from_trades)", batch, pandas_frame, 10
            )
        )
        table_run = next((r for r in runs if r.tool.startswith("ours: candle_table")), None)
        if table_run is not None and not table_run.error:
            print(target("DataFrame -> candles >= 10x pandas resample (candle_table_from_trades().frame())",
                         table_run, pandas_frame, 10))  # fmt: skip
        print(target("CSV backfill -> candles + features in the local store >= 1 M trades/s", backfill, None,
                     1e6, absolute=True))  # fmt: skip


if __name__ == "__main__":
    main()
