"""The Makefile's run targets (issue 18 item 1): `make run-serve SYMBOL=...`, `make run-persist SYMBOLS=...`
and `make replay SYMBOLS=...` are the command lines the README gives, and SYMBOL/SYMBOLS (one setting,
main's --symbols, which takes BTC-USDT and btcusdt alike) drive a replay of the sample in our spelling.

The command lines come from `make -n -o setup` (what make would run, setup taken as done); the replay runs
for real into a private redis-server, its 1m candles checked against the raw trades
(support/binance_reference.py). Takes ~5 s.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

from support.binance_reference import assert_candles_match, expected_candles, read_trades
from support.pipeline import stream_candles

REPO = Path(__file__).resolve().parents[1]
SAMPLE = "data/sample/binance-spot-btcusdt-trades.gz"
MAIN = [".venv/bin/python", "-m", "market_data_tick_handler.main"]


def planned(*args: str) -> list[str]:
    """The one command `make -n -o setup ARGS` prints, as argv."""
    overrides = ("MODES", "SYMBOL", "SYMBOLS", "ARGS", "FILES", "EXCHANGE", "SPEED", "MAKEFLAGS", "MFLAGS")
    env = {k: v for k, v in os.environ.items() if k not in overrides}  # make takes its variables from them
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", "setup", *args],
        cwd=REPO, capture_output=True, text=True, check=True, env=env,
    ).stdout  # fmt: skip
    return shlex.split(out.replace("\\\n", " "))


def test_run_persist_takes_several_symbols_in_our_spelling():
    assert planned("run-persist", "SYMBOLS=BTC-USDT,ETH-USDT") == [
        *MAIN, "--mode", "streaming-candles-bigquery", "--config", "streaming.yaml",
        "--symbols", "BTC-USDT,ETH-USDT", "--exchange", "binance",
    ]  # fmt: skip


def test_run_persist_modes_are_comma_separated_names():
    argv = planned("run-persist", "MODES=persist,ticks,serve")
    mode = argv[argv.index("--mode") + 1]
    assert mode == "streaming-candles-bigquery,streaming-ticks-bigquery,streaming-candles-serve"


def test_run_serve_keeps_the_seeds_symbol():
    assert planned("run-serve", "SYMBOL=ETH-USDT") == [
        *MAIN, "--mode", "streaming-candles-serve", "--config", "streaming.yaml",
        "--symbols", "ETH-USDT", "--exchange", "binance", "--print-candles",
    ]  # fmt: skip


def test_make_replay_in_our_spelling_gives_the_samples_candles(tmp_path, redis_url):
    stats = tmp_path / "stats.json"
    argv = planned("replay", "SYMBOLS=BTC-USDT", f"ARGS=--stats-json {stats}")
    assert argv[argv.index("--symbols") + 1] == "BTC-USDT" and argv[argv.index("--files") + 1] == SAMPLE
    argv = [str(REPO / argv[0]), *argv[1:]]
    argv[argv.index("--files") + 1] = str(REPO / SAMPLE)
    env = {**os.environ, "REDIS_URL": redis_url}  # as the Makefile exports it
    # in a folder of its own: its journal and checkpoints (data/journal) are not the repository's
    run = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    expected = expected_candles(read_trades(REPO / SAMPLE), "1m")
    assert_candles_match(stream_candles(redis_url, "1m"), expected, "1m")
    assert all(entry["ok"] for entry in json.loads(stats.read_text())["ledger"])
