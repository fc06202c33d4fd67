"""Recording (issue 18 item 6): serve mode with ``--record DIR`` has its ingester write every raw message it
receives to ``DIR/<exchange>/<exchange>-<YYYY-MM-DDTHH>.gz``; replaying that recording gives the same
candles as the original replay, and both equal the candles this test computes itself from the raw sample
(support/binance_reference.py). The recorded trade lines are the sample's trade lines.

The files fall into the hour of the local receive time, i.e. of now (not 2024): recording time is local
time; candles are on exchange time. About 10 s."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import redis

from market_data_tick_handler.config import IngestConfig, RecordConfig
from market_data_tick_handler.streaming_service.ingest.ingester_process import (
    ingester_args,
    ingester_summary,
    parse_ingester_line,
)
from support.binance_reference import assert_candles_match, expected_candles, read_trades
from support.pipeline import replay, stream_candles

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-trades.gz"
TIMEFRAMES = ("15s", "1m", "5m")


def _trade_payloads(path: Path) -> list[dict]:
    """The JSON of every ``@trade`` line of a recording, in order (read with gzip and json only)."""
    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            stamp, _, payload = line.partition(" ")
            assert stamp.isdigit(), line[:80]
            message = json.loads(payload)
            if str(message.get("stream", "")).endswith("@trade"):
                out.append(message)
    return out


def _candles(redis_url: str) -> dict[str, list[dict]]:
    return {tf: stream_candles(redis_url, tf) for tf in TIMEFRAMES}


def _flush(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    finally:
        client.close()


def test_a_recorded_replay_replays_to_the_same_candles(redis_url, tmp_path):
    record_dir = tmp_path / "recordings"
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
    before = datetime.now(UTC)
    first, _ = replay(
        [SAMPLE], "binance", "btcusdt", redis_url, tmp_path / "a",
        extra_args=("--record", str(record_dir), "--no-metrics"),
    )  # fmt: skip
    after = datetime.now(UTC)
    assert first.returncode == 0, first.stderr[-3000:]
    recorded = _candles(redis_url)

    files = sorted((record_dir / "binance").glob("*.gz"))
    hours = {f"binance-{t:%Y-%m-%dT%H}.gz" for t in (before, after)}
    assert files and {f.name for f in files} <= hours, (files, hours)
    assert [m for f in files for m in _trade_payloads(f)] == _trade_payloads(SAMPLE)

    _flush(redis_url)
    second, _ = replay(files, "binance", "btcusdt", redis_url, tmp_path / "b", extra_args=("--no-metrics",))
    assert second.returncode == 0, second.stderr[-3000:]
    replayed = _candles(redis_url)

    raw = read_trades(SAMPLE)
    assert len(raw) == 8020  # data/sample/README.md
    for tf in TIMEFRAMES:
        expected = expected_candles(raw, tf)
        assert_candles_match(recorded[tf], expected, f"original replay {tf}")
        assert_candles_match(replayed[tf], expected, f"replay of the recording {tf}")
        strip = [{k: v for k, v in c.items() if k != "timestamp_out"} for c in recorded[tf]]
        assert strip == [{k: v for k, v in c.items() if k != "timestamp_out"} for c in replayed[tf]]


def test_the_ingester_is_given_the_record_dir_and_metrics_address(tmp_path):
    ingest = IngestConfig(record=RecordConfig(enabled=True, dir=str(tmp_path / "rec")))
    args = ingester_args(ingest, "ipc:///x", metrics_address="127.0.0.1:0")
    assert args[args.index("--record-dir") + 1] == str((tmp_path / "rec").resolve())
    assert args[args.index("--metrics-address") + 1] == "127.0.0.1:0"
    plain = ingester_args(IngestConfig(), "ipc:///x")
    assert "--record-dir" not in plain and "--metrics-address" not in plain


def test_ingester_lines_in_both_log_formats():
    summary = {"reason": "replay_finished", "counts": {"rows": {"trade": 3}}}
    text = f"ingest: summary {json.dumps(summary)}"
    as_json = json.dumps(
        {
            "ts": "2026-12-06T13:36:35.123456Z",
            "level": "INFO",
            "logger": "ingest",
            "msg": f"summary {json.dumps(summary)}",
        }
    )
    assert ingester_summary(text) == summary
    assert ingester_summary(as_json) == summary
    error = json.dumps({"ts": "x", "level": "ERROR", "logger": "ingest", "msg": "fatal: boom"})
    assert parse_ingester_line(error).msg == "fatal: boom"
    assert parse_ingester_line(error).level == 40
    assert parse_ingester_line("ingest: session ab: replay").msg == "session ab: replay"
    assert parse_ingester_line("TypeError: x").msg == "TypeError: x"
    assert ingester_summary("ingest: session ab") is None


def test_json_logs_the_ingester_summary_still_reaches_the_stats(tmp_path):
    """``--log-format json`` (which the spawned ingester gets as $MDTH_LOG_FORMAT; its own JSON lines are
    tested in ingest-node/test/metrics.test.js): the ingester's lines come out as the ``ingest`` logger's
    messages (no ``ingest:`` prefix, no JSON inside JSON), and its summary is still read (stats.json
    ``ingester``)."""
    args = ("--no-metrics", "--transport", "inmemory", "--log-format", "json")
    run, stats = replay([SAMPLE], "binance", "btcusdt", None, tmp_path, extra_args=args)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.strip()]
    ingest = [line for line in lines if line["logger"] == "ingest"]
    assert any(line["msg"].startswith("summary {") for line in ingest), ingest[-3:]
    assert not any(line["msg"].startswith(("ingest:", "{")) for line in ingest)
    assert stats["ingester"]["counts"]["rows"]["trade"] == 8020
    assert stats["ingester"]["reason"] == "replay_finished"
