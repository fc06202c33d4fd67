"""Issue 14: what the processor keeps while it runs is bounded (the latency record: test_latency.py);
issue 19: what it holds at start (no pandas, pyarrow, DuckDB, Google clients or ccxt in serve mode)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from market_data_tick_handler.config import ServeConfig
from market_data_tick_handler.streaming_service.hft_features import context as feature_context
from market_data_tick_handler.streaming_service.hft_features.context import FeatureContext
from market_data_tick_handler.streaming_service.modes import serve_mode
from market_data_tick_handler.streaming_service.modes.serve_mode import ENTRY_OVERHEAD, ServeMode
from market_data_tick_handler.streaming_service.transport import Entry, InMemoryBus, InMemoryTransport
from market_data_tick_handler.streaming_service.transport.inmemory import SUBSCRIBER_QUEUE


def _liquidations(context: FeatureContext, ts: int) -> None:
    one = np.ones(1)
    context.on_liquidations(np.zeros(1, dtype=np.int64), np.array([ts]), np.array([1], dtype=np.uint8), one)


def test_liquidations_without_closing_candles_are_capped_newest_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feature_context, "MAX_LIQUIDATIONS", 100)
    context = FeatureContext()
    for ts in range(1, 1_001):  # no prune: no candle closes
        _liquidations(context, ts)
    assert len(context._liquidations) < feature_context.MERGE_EVERY + 1
    events = context._liquidation_events()
    assert len(events[1]) <= 100 + feature_context.MERGE_EVERY
    assert events[1][-1] == 1_000 and context.liquidations_dropped == 1_000 - len(events[1])
    assert context.columns(np.array([0]), 990, 1_001)["liquidation_buy_volume"].tolist() == [11.0]


def test_liquidations_under_the_cap_are_all_kept() -> None:
    context = FeatureContext()
    for ts in range(1, 201):
        _liquidations(context, ts)
    assert context.liquidations_dropped == 0
    assert context.columns(np.array([0]), 0, 1_000)["liquidation_buy_volume"].tolist() == [200.0]


def test_inmemory_subscriber_queue_is_bounded() -> None:
    bus = InMemoryBus()
    queue = bus.subscribe("x")
    assert queue.maxsize == SUBSCRIBER_QUEUE
    for _ in range(SUBSCRIBER_QUEUE + 5):
        bus.publish("x", b"m")
    assert queue.qsize() == SUBSCRIBER_QUEUE and bus.dropped == 5


def test_serve_backlog_counts_what_an_entry_costs_besides_its_payload() -> None:
    serve = ServeMode(
        ServeConfig(transport="inmemory", backlog_mb=1), transport=InMemoryTransport(InMemoryBus())
    )
    entry = Entry(("c",), b"x" * 1_000)
    for _ in range(3):
        serve.backlog.put(serve_mode._Frame([[entry] * 300], 300, 0))  # not started: nothing is sent
    per_frame = 300 * (1_000 + ENTRY_OVERHEAD)
    assert serve.backlog.nbytes == 2 * per_frame <= 1_000_000  # the third went over: the oldest dropped
    assert serve.stats["candles_lost"] == 300


# what a processor in serve mode does not need, and so must not hold (issue 19, memory; docs/ARCHITECTURE.md
# "Bounds"): pandas and pyarrow (~100 MiB together) only for a features warm-up or the local store,
# DuckDB for the local store, the Google clients (~139 MiB) for BigQuery, ccxt (~76 MiB) for the
# instrument sync
NOT_AT_START = ("pandas", "pyarrow", "duckdb", "google.cloud", "grpc", "ccxt")

_IMPORTS_AT_START = """
import json, sys
import market_data_tick_handler.main
from market_data_tick_handler.streaming_service import hot_path
from market_data_tick_handler.streaming_service.modes.serve_mode import ServeMode
from market_data_tick_handler.streaming_service.transport.redis_transport import RedisTransport
hot_path.prepare(True)  # the compiled kernels, loaded as the service does before the first frame
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {"pandas", "pyarrow", "duckdb",
    "google", "grpc", "ccxt"})))
"""


def test_importing_main_and_starting_serve_mode_loads_no_pandas_pyarrow_duckdb_google_or_ccxt() -> None:
    # a child process: this one has imported whatever other tests needed
    out = subprocess.run(
        [sys.executable, "-c", _IMPORTS_AT_START], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert [m for m in loaded if m.startswith(NOT_AT_START)] == []


_LOCAL_STORE_WARM_UP = """
import json, sys
from market_data_tick_handler.streaming_service.local_store.recent_candles import read_recent_candles
from market_data_tick_handler.streaming_service.modes.persist_mode import PersistMode
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {"google", "grpc"})))
"""


def test_persist_mode_and_the_warm_up_from_the_local_store_load_no_google_client() -> None:
    # the local store's warm-up shares the BigQuery one's helpers; the client (~0.4 s to import) is not
    # among them: a backfill into the local store ran 10-15 % slower for it
    out = subprocess.run(
        [sys.executable, "-c", _LOCAL_STORE_WARM_UP], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_hot_path_hands_back_llvm_pages_and_numba_still_compiles_after() -> None:
    """In a fresh process: after ``hot_path.prepare`` the resident memory is lower than before it by at
    least what ``release_file_pages`` reported of LLVM's library alone, and a function compiled afterwards
    runs (the pages it needs fault back in)."""
    script = (
        "import re\n"
        "def rss(): return int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "from market_data_tick_handler.streaming_service import hot_path\n"
        "from market_data_tick_handler.streaming_service.hft_features.feature_engine import compile_step\n"
        "from market_data_tick_handler.streaming_service.candle_json import compile_writer\n"
        "compile_step(); compile_writer()\n"
        "before = rss()\n"
        "llvm = lambda path: path.endswith('libllvmlite.so')\n"
        "released = hot_path.release_file_pages(keep=lambda path: not llvm(path)) // 1024\n"
        "after = rss()\n"
        "from numba import njit\n"
        "f = njit(lambda x: x * 2 + 1)\n"
        "print(before, released, after, f(20))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    before, released, after, value = (int(v) for v in out.stdout.split())
    assert released > 16 * 1024, out.stdout  # kB: LLVM's library pages that loading the kernels touched
    assert after <= before - released + 2048, out.stdout  # (allowing 2 MiB of other movement)
    assert value == 41


def test_the_hot_path_hands_back_clean_file_pages_and_the_libraries_still_run() -> None:
    """In a fresh process: ``release_file_pages`` drops the read-only pages of the mapped files (numpy's,
    libpython's, OpenSSL's...), the resident memory falls by what it reported, and the code in them
    runs after (its pages fault back in from the page cache)."""
    script = (
        "import re, ssl, hashlib\n"
        "import numpy as np\n"
        "def rss(): return int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "from market_data_tick_handler.streaming_service import hot_path\n"
        "before = rss()\n"
        "released = hot_path.release_file_pages() // 1024\n"
        "after = rss()\n"
        "total = int(np.arange(10).sum()) + len(hashlib.sha256(b'x').hexdigest())\n"
        "print(before, released, after, total)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    before, released, after, total = (int(v) for v in out.stdout.split())
    assert released > 16 * 1024, out.stdout  # kB: llvmlite's (imported by hot_path), numpy's, libpython's
    # what the interpreter runs next (libpython's loop, libc) faults straight back: up to 8 MiB
    assert after <= before - released + 8192, out.stdout
    assert total == 45 + 64


_LIVE_STEP_AFTER_PREPARE = """
import numpy as np
from market_data_tick_handler.streaming_service import hot_path
from market_data_tick_handler.streaming_service.candle_processor import LiveCandleProcessor
from market_data_tick_handler.streaming_service.hft_features.kernel import step_lanes
from market_data_tick_handler.streaming_service.hft_features.live_features import LiveFeatures
hot_path.prepare(True)
loaded = len(step_lanes.signatures)
engine = LiveCandleProcessor("A-B").engine
live = LiveFeatures(engine, ("15s", "1m"))
names = [f"S{i}" for i in range(5)]
for second in (1, 16, 31, 61, 62):  # boundaries closing the candles of one and of several instruments
    n = 1 if second == 62 else len(names)
    ts = np.full(n, second * 1_000_000, dtype=np.int64)
    one, sides = np.ones(n), np.ones(n, dtype=np.uint8)
    batch = engine.on_trades(names[:n], np.arange(n, dtype=np.uint16), ts, one, one, sides)
    live.annotate(batch)
print(loaded, len(step_lanes.signatures))
"""


def test_the_feature_step_of_live_boundaries_is_loaded_before_the_first_frame() -> None:
    """After ``hot_path.prepare`` the live engine's boundaries (candles of one instrument and of several,
    whose columns are strided views) step the features with no new specialization of the kernel: one
    loaded at the first boundary would page LLVM's library back in for the rest of the run."""
    cmd = [sys.executable, "-c", _LIVE_STEP_AFTER_PREPARE]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    loaded, after = (int(v) for v in out.stdout.split())
    assert after == loaded, out.stdout


_BURSTS = """
import re, sys
import numpy as np
from market_data_tick_handler.streaming_service import hot_path
def rss(): return int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))
if sys.argv[1] == "steady":
    assert hot_path.steady_malloc()
big = np.ones(1 << 19)  # one 4 MiB buffer freed: left to itself, glibc raises its thresholds to 4 MiB
del big
before, kept = rss(), []
for burst in range(3):  # a boundary's burst of 256 KiB buffers, amid small things that live on
    blocks = []
    for _ in range(160):
        blocks.append(np.ones(1 << 15))
        kept.append(np.ones(512))
    del blocks
print(before, rss())
"""


@pytest.mark.parametrize("malloc", ["steady", "glibc"])
def test_after_steady_malloc_a_burst_of_large_buffers_goes_back_to_the_system(malloc: str) -> None:
    """In a fresh process: bursts of 40 MiB of 256 KiB buffers, each buffer followed by a small allocation
    that lives on. After ``hot_path.steady_malloc`` the resident memory is back where it was; with glibc's
    own thresholds (the case it fixes) the buffers stay in the heap between the small blocks."""
    cmd = [sys.executable, "-c", _BURSTS, malloc]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    before, after = (int(v) for v in out.stdout.split())
    if malloc == "steady":
        assert after - before < 3 * 1024, out.stdout  # kB: the small blocks kept, 1.9 MiB
    else:
        # the holes of a burst, less the free heap start-up left (the next bursts reuse them)
        assert after - before > 16 * 1024, out.stdout
