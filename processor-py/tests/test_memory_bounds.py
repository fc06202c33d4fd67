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


def test_the_hot_path_hands_back_llvm_pages_and_numba_still_compiles_after() -> None:
    """In a fresh process: after ``hot_path.prepare`` the resident memory is lower than before it by at
    least what ``release_llvm_code`` reported, and a function compiled afterwards runs (the pages it needs
    fault back in)."""
    script = (
        "import re\n"
        "def rss(): return int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "from market_data_tick_handler.streaming_service import hot_path\n"
        "from market_data_tick_handler.streaming_service.hft_features.feature_engine import compile_step\n"
        "from market_data_tick_handler.streaming_service.candle_json import compile_writer\n"
        "compile_step(); compile_writer()\n"
        "before = rss()\n"
        "released = hot_path.release_llvm_code() // 1024\n"
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
