"""The ingester's command line for one exchange and for several, read back by the ingester's own parser
(ingest-node/src/cli.js parseCli), so that both sides agree on the per-exchange form."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from market_data_tick_handler.config import IngestConfig, JournalConfig
from market_data_tick_handler.streaming_service.ingest.ingester_process import (
    IngestStream,
    find_ingester,
    ingester_args,
    node_flags,
    stream_args,
)

TWO = (
    IngestStream("binance", ("btcusdt",), ("trade", "book_snapshot")),
    IngestStream("deribit", ("BTC-PERPETUAL",), ("trade", "derivative_ticker")),
)


def _parsed(args: list[str]) -> dict:
    """What the ingester makes of ``args`` (its parseCli), as JSON."""
    script = (
        f"import({json.dumps(find_ingester().as_uri())}).then(({{ parseCli }}) =>"
        " process.stdout.write(JSON.stringify(parseCli(process.argv.slice(1)))))"
    )
    run = subprocess.run(
        ["node", "-e", script, "--", *args], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(run.stdout)


def test_one_exchange_as_before():
    ingest = IngestConfig(source="replay", exchange="bitmex", symbols=("XBTUSD",), files=("a.gz",))
    args = ingester_args(ingest, "ipc:///x", ("trade", "liquidation"), 25, 100)
    assert args[:8] == [
        "--source",
        "replay",
        "--exchange",
        "bitmex",
        "--symbols",
        "XBTUSD",
        "--data-types",
        "trade,liquidation",
    ]
    assert args[args.index("--files") + 1] == str(Path("a.gz").resolve())
    assert "--exchanges" not in args
    assert ingester_args(
        ingest, "ipc:///x", ("trade",), streams=(IngestStream("bitmex", ("XBTUSD",), ("trade",), ("a.gz",)),)
    ) == ingester_args(ingest, "ipc:///x", ("trade",))


def test_several_exchanges_per_exchange_arguments():
    args = ingester_args(IngestConfig(source="tardis-realtime"), "ipc:///x", streams=TWO, session="ab")
    assert args[:12] == [
        "--source", "tardis-realtime",
        "--exchanges", "binance,deribit",
        "--symbols", "binance:btcusdt", "--symbols", "deribit:BTC-PERPETUAL",
        "--data-types", "binance:trade,book_snapshot", "--data-types", "deribit:trade,derivative_ticker",
    ]  # fmt: skip
    replay = stream_args(
        (
            IngestStream("binance", ("btcusdt",), ("trade",), ("a.gz", "b.gz")),
            IngestStream("deribit", ("BTC-PERPETUAL",), ("trade",), ("c.txt",)),
        )
    )
    at = replay.index("--files")
    assert replay[at : at + 4] == [
        "--files",
        f"binance:{Path('a.gz').resolve()},{Path('b.gz').resolve()}",
        "--files",
        f"deribit:{Path('c.txt').resolve()}",
    ]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_ingester_reads_them_back():
    cfg = _parsed(ingester_args(IngestConfig(source="replay", files=()), "ipc:///x", streams=(
        IngestStream("binance", ("btcusdt", "ethusdt"), ("trade", "book_snapshot"), ("/d/a.gz",)),
        IngestStream("deribit", ("BTC-PERPETUAL",), ("trade", "derivative_ticker"), ("/d/b.txt",)),
    )))  # fmt: skip
    assert cfg["streams"] == [
        {"exchange": "binance", "symbols": ["btcusdt", "ethusdt"], "dataTypes": ["trade", "book_snapshot"]},
        {"exchange": "deribit", "symbols": ["BTC-PERPETUAL"], "dataTypes": ["trade", "derivative_ticker"]},
    ]
    assert [s["files"] for s in cfg["sourceOptions"]["streams"]] == [["/d/a.gz"], ["/d/b.txt"]]
    one = _parsed(
        ingester_args(
            IngestConfig(source="tardis-realtime", exchange="deribit", symbols=("BTC-PERPETUAL",)),
            "ipc:///x",
            ("trade",),
        )
    )
    assert one["sourceOptions"] == {
        "exchange": "deribit",
        "symbols": ["BTC-PERPETUAL"],
        "dataTypes": ["trade"],
        "bookDepth": 25,
        "bookIntervalMs": 100,
    }


def test_journal_flags_only_when_enabled():
    assert "--journal-dir" not in ingester_args(IngestConfig(), "ipc:///x", session="ab")
    journal = JournalConfig(enabled=True, dir="data/j", file_mb=8, max_mb=100, max_age_h=1.5)
    ingest = IngestConfig(journal=journal)
    spawned = ingester_args(ingest, "ipc:///x", session="ab")
    at = spawned.index("--journal-dir")
    assert spawned[at:] == [
        "--journal-dir", str(Path("data/j").resolve()),
        "--journal-file-mb", "8", "--journal-max-mb", "100", "--journal-max-age-h", "1.5",
        "--when-busy", "wait",
    ]  # fmt: skip
    # not started by a processor (no session): the ingester's own default with a journal (journal only)
    assert "--when-busy" not in ingester_args(ingest, "ipc:///x")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_ingester_reads_the_journal_flags_back():
    ingest = IngestConfig(
        journal=JournalConfig(enabled=True, dir="/d/j", file_mb=8, max_mb=100, max_age_h=1.5)
    )
    spawned = _parsed(ingester_args(ingest, "ipc:///x", session="ab"))
    assert spawned["journal"] == {"dir": "/d/j", "fileMb": 8, "maxMb": 100, "maxAgeH": 1.5}
    assert spawned["whenBusy"] == "wait"
    assert _parsed(ingester_args(ingest, "ipc:///x"))["whenBusy"] == "journal"
    assert _parsed(ingester_args(IngestConfig(), "ipc:///x"))["journal"] is None


@pytest.mark.parametrize("path", ["direct", "websocket"])
def test_replay_path_passed_only_when_chosen(path):
    replay = IngestConfig(source="replay", files=("a.gz",), replay_path=path)
    assert ingester_args(replay, "ipc:///x")[-2:] == ["--replay-path", path]
    assert "--replay-path" not in ingester_args(IngestConfig(source="replay", files=("a.gz",)), "ipc:///x")
    # a live source has nothing to replay: the key is ignored there
    assert "--replay-path" not in ingester_args(IngestConfig(replay_path=path), "ipc:///x")


def test_v8_young_generation_small_for_streams_larger_for_a_replay_at_speed_max():
    """The ingester's V8 flags (ingester_process.node_flags): a capped young generation keeps 1,000 live
    symbols small; a replay at speed max gets a larger one (fewer scavenges) and collects on its own
    thread; node accepts both."""
    replay_max = node_flags(IngestConfig(source="replay", speed="max"))
    assert replay_max == ("--max-semi-space-size=32", "--min-semi-space-size=32", "--single-threaded-gc")
    streams = (IngestConfig(source="replay", speed="20"), IngestConfig(source="synthetic"), IngestConfig())
    for paced in streams:
        assert node_flags(paced) == ("--max-semi-space-size=4",)
    for flags in (replay_max, node_flags(IngestConfig())):
        done = subprocess.run([shutil.which("node"), *flags, "-e", "0"], capture_output=True, text=True)
        assert done.returncode == 0 and done.stderr == "", done.stderr
