"""The whole pipeline as a user runs it (`python -m market_data_tick_handler.main`, which starts the Node
ingester), and a Redis subscriber that keeps every message it is sent."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis

from market_data_tick_handler.streaming_service.keys import STREAM_FIELD


def us(iso: str | None) -> int | None:
    """ISO 8601 UTC with microseconds -> µs since the epoch (None stays None)."""
    if iso is None:
        return None
    dt = datetime.fromisoformat(iso)
    return int((dt - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000 + dt.microsecond


class Subscriber:
    """PSUBSCRIBEs before the pipeline starts and keeps every (channel, message), in order."""

    def __init__(self, url: str, *patterns: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.pubsub.psubscribe(*patterns)
        for _ in patterns:
            assert self.pubsub.get_message(timeout=5)["type"] == "psubscribe"
        self.messages: list[tuple[str, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.1)
            if message and message["type"] == "pmessage":
                self.messages.append((message["channel"].decode(), orjson.loads(message["data"])))

    def stop(self, expected: int, timeout: float = 10.0) -> None:
        """Waits until ``expected`` messages arrived (at most ``timeout`` s), then unsubscribes."""
        wait = threading.Event()
        for _ in range(int(timeout / 0.1)):
            if len(self.messages) >= expected:
                break
            wait.wait(0.1)
        self._stop.set()
        self._thread.join()
        self.pubsub.close()
        self.client.close()

    def of_type(self, kind: str) -> list[tuple[str, dict]]:
        return [(c, m) for c, m in self.messages if m["type"] == kind]


def stream_candles(
    url: str, timeframe: str, exchange: str = "binance", symbol: str = "BTC-USDT"
) -> list[dict]:
    """Every candle in the capped stream of one series, as reference-comparable rows."""
    client = redis.Redis.from_url(url)
    try:
        entries = client.xrange(f"candles:stream:{exchange}:{symbol}:{timeframe}")
    finally:
        client.close()
    rows = []
    for _, fields in entries:
        message = orjson.loads(fields[STREAM_FIELD.encode()])
        c = message["candle"]
        rows.append(
            {
                **c,
                "timestamp_in": us(message["timestamp_in"]),
                "first_trade_time": us(c["first_trade_time"]),
                "last_trade_time": us(c["last_trade_time"]),
            }
        )
    return rows


#: streaming.yaml for live mode against a stand-in exchange (support/replay_server.mjs)
LIVE_CONFIG = """
candles:
  clock: event          # recorded exchange times, not this machine's clock
data_types:
  book_snapshots:
    enabled: false      # live book data would ask the real exchange for a REST snapshot
"""


def replay_command(
    files: list[Path],
    exchange: str,
    symbols: str,
    redis_url: str | None,
    tmp_path: Path,
    config: str | None = None,
    ingest_args: tuple[str, ...] = (),
    speed: str = "max",
    mode: str = "streaming-candles-serve",
    extra_args: tuple[str, ...] = (),
) -> list[str]:
    """The command line of a replay of ``files`` through the whole pipeline in ``mode`` (into ``redis_url``
    when given); its final stats go to ``tmp_path/stats.json``. ``config``: a streaming.yaml text (default:
    the built-in one); ``extra_args``: more options of the command line."""
    cmd = [
        sys.executable, "-m", "market_data_tick_handler.main", "--mode", mode,
        "--source", "replay", "--files", *map(str, files), "--exchange", exchange, "--symbols", symbols,
        "--speed", speed, "--stats-json", str(tmp_path / "stats.json"), *extra_args,
    ]  # fmt: skip
    if redis_url is not None:
        cmd += ["--redis-url", redis_url]
    if config is not None:
        (tmp_path / "streaming.yaml").write_text(config)
        cmd += ["--config", str(tmp_path / "streaming.yaml")]
    for arg in ingest_args:
        cmd.append(f"--ingest-arg={arg}")
    return cmd


def read_stats(tmp_path: Path) -> dict:
    stats = tmp_path / "stats.json"
    return json.loads(stats.read_text()) if stats.exists() else {}


def replay(
    files, exchange, symbols, redis_url, tmp_path, **options
) -> tuple[subprocess.CompletedProcess, dict]:
    """Runs ``replay_command`` (at full speed unless ``speed`` is in ``options``) to its end; returns the
    run and its final stats (``--stats-json``)."""
    cmd = replay_command(files, exchange, symbols, redis_url, tmp_path, **options)
    run = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=240)
    return run, read_stats(tmp_path)


class LineReader:
    """Starts ``cmd`` and keeps its stdout lines (decoded as JSON unless ``json_lines`` is False) as they
    come."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None, json_lines: bool = True) -> None:
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.decode = json.loads if json_lines else str.rstrip
        self.lines: list = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(self.decode(line))

    def wait_for(self, count: int, timeout: float) -> bool:
        """Waits until ``count`` lines arrived (at most ``timeout`` s)."""
        wait = threading.Event()
        for _ in range(int(timeout / 0.05)):
            if len(self.lines) >= count:
                return True
            wait.wait(0.05)
        return len(self.lines) >= count

    def finish(self, timeout: float = 30) -> str:
        """Waits for the process to exit (killing it after ``timeout`` s); returns its stderr."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(5)
        return self.proc.stderr.read() if self.proc.stderr else ""
