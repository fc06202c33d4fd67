"""The pip extras (issue 18 item 2): the base install is what a consumer service needs, the extras are the
processor's, and README.md says which is which.

The packages of an extra are "not installed" in a child process by refusing their modules
(``import_blocker.py``): every top-level module of every distribution that the extras bring and the base
install does not, worked out from pyproject.toml and the installed distributions' own requirements, so
that a dependency added to an extra is refused here too without editing this file.

- a consumer (``LiveFeatureStream``) reads candles from a real redis-server with only the base install;
  the candles are written here in the published form (README "Using the candles": a stream entry
  ``{bucket start ms}-{revision}`` with field ``data``, the latest in ``candles:latest:...``), and the
  values expected back are the ones written, with the hole worked out by hand;
- an execution service's ``LiveInstrumentProvider`` reads ccxt's market files with the base install and
  the ``instruments`` extra only;
- the processor replays the sample recording into Redis and the local store with the ``streaming`` extra
  only (no ``bigquery``, no ``instruments``: the seeds' ``pip install -e .[streaming]``), its 1m candles
  checked against the raw trades (tests/support/binance_reference.py, none of the project's code);
- README's Install table lists exactly pyproject's base dependencies and extras.

Takes ~8 s (the two replays ~5 s of it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

import orjson
import pytest
import redis
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from support.binance_reference import assert_candles_match, expected_candles, read_trades
from support.pipeline import stream_candles

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PYPROJECT = tomllib.loads((REPO / "processor-py" / "pyproject.toml").read_text())["project"]
SELF = canonicalize_name(PYPROJECT["name"])
SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-trades.gz"
BLOCKER = HERE / "import_blocker.py"

# what the issue names as not a consumer's: each must be among the refused modules
PROCESSOR_ONLY = {"zmq", "numba", "llvmlite", "pandas", "pyarrow", "duckdb", "msgspec", "yaml",
                  "prometheus_client", "google", "ccxt"}  # fmt: skip
BASE_MODULES = {"redis", "hiredis", "orjson", "numpy"}


def _requirements(extras: set[str]) -> list[Requirement]:
    """pyproject's base requirements and those of ``extras``, self-references expanded."""
    reqs = [Requirement(r) for r in PYPROJECT["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in PYPROJECT["optional-dependencies"][extra]:
            req = Requirement(text)
            if canonicalize_name(req.name) == SELF:
                todo += req.extras
            else:
                reqs.append(req)
    return reqs


def _installed_closure(reqs: list[Requirement]) -> set[str]:
    """Every distribution ``reqs`` bring, as installed here (their own requirements, markers and extras
    evaluated)."""
    found: set[str] = set()
    visited: set[tuple[str, str]] = set()
    todo = list(reqs)
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        for extra in ("", *sorted(req.extras)):
            if (name, extra) in visited:
                continue
            visited.add((name, extra))
            try:
                dist = distribution(req.name)
            except PackageNotFoundError:
                continue  # an optional dependency not installed here cannot be imported anyway
            found.add(name)
            for text in dist.requires or ():
                sub = Requirement(text)
                if sub.marker is None or sub.marker.evaluate({"extra": extra}):
                    todo.append(sub)
    return found


def _modules_of(dists: set[str]) -> set[str]:
    """Top-level module names provided only by ``dists``."""
    return {
        module
        for module, owners in packages_distributions().items()
        if owners and all(canonicalize_name(o) in dists for o in owners)
    }


def blocked_modules(installed: set[str]) -> set[str]:
    """The modules of what every extra brings beyond the base install and ``installed`` extras."""
    everything = set(PYPROJECT["optional-dependencies"])
    extra_dists = _installed_closure(_requirements(everything)) - {SELF}
    kept = _installed_closure(_requirements(installed)) - {SELF}
    return _modules_of(extra_dists - kept)


def _run_blocked(
    blocked: set[str], tmp_path: Path, *args: str, env=None
) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp_path / "imports.json"
    cmd = [sys.executable, str(BLOCKER), "--block", ",".join(sorted(blocked)), "--report", str(report), *args]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    return run, json.loads(report.read_text()) if report.exists() else {}


def test_the_blocked_set_is_the_processors_packages_and_not_the_consumers():
    blocked = blocked_modules(set())
    assert blocked >= PROCESSOR_ONLY
    assert not blocked & BASE_MODULES
    streaming_installed = blocked_modules({"streaming"})
    assert streaming_installed >= {"google", "ccxt"}
    assert not streaming_installed & {
        "zmq",
        "numba",
        "pandas",
        "pyarrow",
        "duckdb",
        "yaml",
        "prometheus_client",
    }


# --- a consumer with the base install only --------------------------------------------------------------

T0_MS = 1_723_161_600_000  # 2024-08-09T00:00:00Z: 19,944 days after the epoch (19,723 to 2024, 221 in it)


def _message(minute: int, close: float, rsi_5: float | None) -> dict:
    """A 1m candle message of binance BTC-USDT as the processor publishes it, starting at T0 + minute."""
    start = f"2024-08-09T00:{minute:02d}:00.000000Z"
    return {
        "type": "candle", "exchange": "binance", "symbol": "BTC-USDT", "exchange_symbol": "BTCUSDT",
        "timeframe": "1m", "timestamp_in": start,
        "local_timestamp": f"2024-08-09T00:{minute + 1:02d}:00.251000Z",
        "timestamp_out": f"2024-08-09T00:{minute + 1:02d}:00.252000Z",
        "candle": {"open": close - 1.0, "high": close + 2.0, "low": close - 3.0, "close": close,
                   "volume": 1.5, "buy_volume": 1.0, "sell_volume": 0.5, "vwap": close - 0.5,
                   "trade_count": 12, "first_trade_time": start, "last_trade_time": start,
                   "is_empty": False, "has_gap": False, "is_partial": False, "revision": 0},
        "hft_features": {"sma_5": None, "rsi_5": rsi_5},
    }  # fmt: skip


def _publish(client, message: dict) -> str:
    """XADD + HSET as serve mode does (keys.py, serve_mode.py): id = bucket start in ms, then revision."""
    minute = int(message["timestamp_in"][14:16])
    entry_id = f"{T0_MS + minute * 60_000}-0"
    payload = orjson.dumps(message)
    client.xadd("candles:stream:binance:BTC-USDT:1m", {"data": payload}, id=entry_id)
    client.hset("candles:latest:BTC-USDT:1m", "binance", payload)
    return entry_id


CONSUMER = """
import asyncio, json, sys
import redis.asyncio as aioredis
from market_data_tick_handler.streaming_service import LiveFeatureStream

url, live = sys.argv[1], sys.argv[2]

async def main():
    got = []
    stream = LiveFeatureStream(symbol="BTC-USDT", timeframe="1m", redis_url=url, last=3, block_ms=200)
    async with stream:
        async for candle in stream:
            got.append(candle)
            if len(got) == 3:  # the three already there; the fourth published now, as a processor would
                client = aioredis.Redis.from_url(url)
                await client.xadd("candles:stream:binance:BTC-USDT:1m", {"data": live}, id="%s")
                await client.hset("candles:latest:BTC-USDT:1m", "binance", live)
                await client.aclose()
            if len(got) == 4:
                break
    print(json.dumps({"candles": got, "stats": stream.stats, "last_ids": stream.last_ids}))

asyncio.run(main())
"""


def test_a_consumer_reads_candles_from_redis_with_the_base_install_only(tmp_path, redis_url):
    client = redis.Redis.from_url(redis_url)
    ids = [_publish(client, _message(m, c, r)) for m, c, r in ((0, 61717.64, None), (1, 61685.99, 41.7),
                                                                  (3, 61700.0, 55.25))]  # fmt: skip
    assert ids == ["1723161600000-0", "1723161660000-0", "1723161780000-0"]  # 00:02 never published: a hole
    live = _message(4, 61710.5, 60.0)
    code = CONSUMER % "1723161840000-0"
    blocked = blocked_modules(set())
    run, imports = _run_blocked(blocked, tmp_path, "-c", code, redis_url, orjson.dumps(live).decode())
    assert run.returncode == 0, run.stderr[-3000:]
    assert imports["loaded"] == []
    print("refused on the way (optional imports, caught):", imports["refused"])
    out = json.loads(run.stdout)
    candles = out["candles"]
    assert [c["timestamp_in"] for c in candles] == [
        "2024-08-09T00:00:00.000000Z",
        "2024-08-09T00:01:00.000000Z",
        "2024-08-09T00:03:00.000000Z",
        "2024-08-09T00:04:00.000000Z",
    ]
    assert [c["candle"]["close"] for c in candles] == [61717.64, 61685.99, 61700.0, 61710.5]
    assert [c["hft_features"]["rsi_5"] for c in candles] == [None, 41.7, 55.25, 60.0]
    assert candles[3] == live
    assert out["stats"] == {
        "received": 4,
        "reconnects": 0,
        "holes": 1,
        "missing_candles": 1,
        "undecodable": 0,
    }
    assert out["last_ids"] == {"candles:stream:binance:BTC-USDT:1m": "1723161840000-0"}
    assert "hole in candles:stream:binance:BTC-USDT:1m: 1 candle(s) missing" in run.stderr


# --- an execution service: the base install and the instruments extra -----------------------------------

MARKETS = REPO.parent / "shared" / "data" / "ccxt-markets"

PROVIDER = """
import asyncio, json, sys
from market_data_tick_handler.streaming_service import LiveInstrumentProvider

async def main():
    async with LiveInstrumentProvider(exchanges=["binance"], markets_dir=sys.argv[1]) as provider:
        btc = await provider.get_instrument("binance", "BTC/USDT")
        print(json.dumps([btc.symbol, btc.exchange_symbol, btc.tick_size, btc.min_size]))

asyncio.run(main())
"""


@pytest.mark.skipif(not (MARKETS / "binance.json").is_file(), reason="shared/data/ccxt-markets is not here")
def test_the_instrument_provider_runs_with_the_instruments_extra_only(tmp_path):
    derived = MARKETS / "derived" / "binance.markets.ccxt-4.5.90.json"  # ccxt's markets, as ccxt wrote them
    market = json.loads(derived.read_text())["BTC/USDT"]
    assert (market["precision"]["price"], market["limits"]["amount"]["min"]) == (0.01, 1e-05)
    run, imports = _run_blocked(blocked_modules({"instruments"}), tmp_path, "-c", PROVIDER, str(MARKETS))
    assert run.returncode == 0, run.stderr[-3000:]
    assert imports["loaded"] == [], imports
    assert json.loads(run.stdout) == ["BTC-USDT", "BTCUSDT", 0.01, 1e-05]


# --- the processor with the streaming extra only --------------------------------------------------------


def _replay_with_streaming_only(
    tmp_path: Path, redis_url: str, modes: str
) -> tuple[subprocess.CompletedProcess, dict]:
    config = tmp_path / "streaming.yaml"
    config.write_text(
        f"persist:\n  local:\n    path: {tmp_path / 'warehouse'}\n  spill_dir: {tmp_path / 'spill'}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GCP_PROJECT_ID", "BIGQUERY_EMULATOR")}
    blocked = blocked_modules({"streaming"})
    return _run_blocked(
        blocked, tmp_path, "-m", "market_data_tick_handler.main", "--mode", modes, "--config", str(config),
        "--source", "replay", "--files", str(SAMPLE), "--exchange", "binance", "--symbols", "btcusdt",
        "--speed", "max", "--redis-url", redis_url, "--stats-json", str(tmp_path / "stats.json"),
        env=env,
    )  # fmt: skip


def test_the_processor_serves_with_the_streaming_extra_only(tmp_path, redis_url):
    run, imports = _replay_with_streaming_only(tmp_path, redis_url, "streaming-candles-serve")
    assert run.returncode == 0, run.stderr[-3000:]
    assert imports["loaded"] == [], imports  # refused: optional imports that were caught (cryptography ...)
    expected = expected_candles(read_trades(SAMPLE), "1m")
    assert_candles_match(stream_candles(redis_url, "1m"), expected, "1m from Redis")


def test_persist_to_the_local_store_with_the_streaming_extra_only(tmp_path, redis_url):
    modes = "streaming-candles-bigquery,streaming-ticks-bigquery"
    run, imports = _replay_with_streaming_only(tmp_path, redis_url, modes)
    assert run.returncode == 0, run.stderr[-3000:]
    assert imports["loaded"] == [], imports
    assert f"rows go to the local store at {tmp_path / 'warehouse'}" in run.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["persist"]["rows_written"] == sum(stats["candles_by_timeframe"]["binance"].values()) > 0
    assert stats["ticks"]["rows_written"] == 8020  # the sample's trades (tests/test_local_store_pipeline.py)
    assert stats["persist"]["rows_lost"] == stats["ticks"]["rows_lost"] == 0


# --- README says what pyproject says --------------------------------------------------------------------


def _names(cell: str) -> set[str]:
    """The backticked package names of a table cell, as pyproject spells them (extras kept)."""
    return {name for name in re.findall(r"`([A-Za-z0-9_.\-]*(?:\[[a-z,]+\])?)`", cell) if name}


def _install_table() -> dict[str, set[str]]:
    """README's Install section: ``{"base" or the extra: its packages}``."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        match = re.search(r"\[(\w+)\]", cells[0])
        rows["base" if match is None else match.group(1)] = _names(cells[1])
    return rows


def _spelled(reqs: list[str]) -> set[str]:
    out = set()
    for text in reqs:
        req = Requirement(text)
        out.add(req.name + (f"[{','.join(sorted(req.extras))}]" if req.extras else ""))
    return out


def test_the_readme_install_table_lists_pyprojects_dependencies_and_extras():
    table = _install_table()
    assert set(table) == {"base", *PYPROJECT["optional-dependencies"]}
    assert table["base"] == _spelled(PYPROJECT["dependencies"])
    for extra, reqs in PYPROJECT["optional-dependencies"].items():
        own = [r for r in reqs if canonicalize_name(Requirement(r).name) != SELF]
        included = {
            e for r in reqs if canonicalize_name(Requirement(r).name) == SELF for e in Requirement(r).extras
        }
        assert table[extra] == _spelled(own) | {f"[{e}]" for e in included}, extra
