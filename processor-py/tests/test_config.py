"""config.py: every value checked at load (the error names the key path, the value and what is allowed),
exit code 2 through the real command line before anything starts, ``$REDIS_URL`` and its precedence, no
password in a process's arguments, and ZeroMQ CURVE on a ``tcp://`` endpoint (ingest/curve.py)."""

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml
import zmq
import zmq.asyncio

from market_data_tick_handler.config import (
    CURVE_CLIENT_KEYS_ENV,
    CURVE_SECRET_ENV,
    CandlesConfig,
    ConfigError,
    DataTypesConfig,
    GapsConfig,
    IngestConfig,
    IngestExchangeConfig,
    LiveInstrumentsConfig,
    StreamingConfig,
    config_from_dict,
    load_config,
    timeframe_us,
    validate,
)
from market_data_tick_handler.devtools.local_redis import free_port, redis_available
from market_data_tick_handler.main import apply_overrides, parse_args, warn_password_in_argv
from market_data_tick_handler.streaming_service.candle_processor.timeframes import Timeframe
from market_data_tick_handler.streaming_service.ingest import IngesterProcess, curve, ingester_args

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-pw"


def error_of(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    return str(info.value)


def nested(path: str, value) -> dict:
    """``"a.b.c", v`` -> ``{"a": {"b": {"c": v}}}``."""
    raw = value
    for key in reversed(path.split(".")):
        raw = {key: raw}
    return raw


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch):
    """The variables these tests are about, unset unless a test sets them."""
    names = ("REDIS_URL", CURVE_SECRET_ENV, CURVE_CLIENT_KEYS_ENV, curve.CLIENT_SECRET_ENV)
    for name in (*names, "MDTH_METRICS_ADDRESS", "MDTH_INGESTER_METRICS_ADDRESS"):  # conftest sets them
        monkeypatch.delenv(name, raising=False)


# -- enumerations ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "value", "allowed"),
    [
        ("candles.late_policy", "dorp", "drop or revise"),
        ("candles.clock", "utc", "auto (wall for live sources, event for replays), wall or event"),
        ("serve.transport", "kafka", "redis or inmemory"),
        ("ingest.source", "kafka", "tardis-realtime or replay or synthetic"),
        ("persist.bigquery.target", "prod", "auto or live or historical"),
        ("persist.bigquery.live_partitioning.type", "5MIN", "HOUR (BigQuery's finest"),
        ("persist.bigquery.historical_partitioning.type", "WEEK", "DAY, MONTH or YEAR"),
        ("candles.timeframes", ["1m", "7x"], "use <n>s|m|h|d, e.g. 15s, 1m, 4h"),
        ("candles.timeframes", ["15s", "0m"], "use <n>s|m|h|d"),
        ("candles.hft_timeframes", ["2m"], "use some of 15s, 1m, 5m, 15m, 4h, 24h"),
        ("data_types.funding_rates.source", "tardis_realtime", "use derivative_ticker_extraction"),
        ("data_types.liquidations.source", "exchange", "use trade_transformation or tardis_realtime"),
        ("ingest.speed", "fast", "use 1 for real time, N for N times faster, or max"),
        ("ingest.endpoint", "udp://127.0.0.1:5555", "use auto (a private ipc socket), ipc://PATH or tcp://"),
        ("serve.redis_url", "http://localhost:6379", "use redis://[[user]:password@]host[:port][/db]"),
        ("live_instruments.exchanges", ["Binance!"], "use Tardis ids"),
    ],
)
def test_an_enumerated_value_outside_its_set_names_key_value_and_the_set(path, value, allowed):
    message = error_of(nested(path, value))
    shown = value[-1] if isinstance(value, list) else value
    assert message.startswith(f"{path}: ") and repr(shown) in message and allowed in message, message


def test_the_example_of_the_issue_word_for_word():
    assert error_of({"candles": {"timeframes": ["7x"]}}) == (
        "candles.timeframes: '7x' is not a timeframe (use <n>s|m|h|d, e.g. 15s, 1m, 4h)"
    )


def test_modes_and_data_types_outside_their_sets():
    assert error_of({"modes": ["serve", "bigquery"]}) == (
        "modes: unknown bigquery (use serve (Redis) and/or persist (BigQuery) and/or ticks (BigQuery tick"
        " tables))"
    )
    message = error_of({"data_types": {"trade": {}}})
    assert message.startswith("data_types: unknown data type(s) trade (known: trades, book_snapshots")
    message = error_of({"data_types": {"gaps": {"fallback": False}}})
    assert (
        message.startswith("data_types.gaps.fallback: false disagrees with source") and "use true" in message
    )


def test_timeframes_are_multiples_of_the_smallest_and_listed_once():
    assert error_of({"candles": {"timeframes": ["15s", "50s"]}}) == (
        "candles.timeframes: '50s' is not a multiple of the smallest timeframe 15s (use multiples of 15s:"
        " every timeframe is rolled up from it)"
    )
    assert "'1m' is listed twice" in error_of({"candles": {"timeframes": ["1m", "5m", "1m"]}})
    assert error_of({"candles": {"timeframes": []}}).startswith("candles.timeframes: empty (use <n>s|m|h|d")


@pytest.mark.parametrize(
    "name", ["15s", "1m", "24h", "1d", "90m", "01m", " 4h", "0s", "7x", "1.5m", "15S", "m"]
)
def test_config_reads_timeframes_as_the_candle_engine_does(name):
    """config.py keeps its own copy of the grammar (it must not import the engine): they agree."""
    try:
        expected = Timeframe.parse(name).micros
    except ValueError:
        expected = None
    assert timeframe_us(name) == expected


# -- ranges -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "value", "rule"),
    [
        ("persist.bigquery.batch_size", 0, "must be positive, got 0 (use an integer >= 1)"),
        ("persist.bigquery.batch_timeout_ms", -1, "must be >= 0, got -1 (use an integer >= 0)"),
        ("ingest.max_batch", 0, "must be positive, got 0 (use an integer >= 1)"),
        ("serve.stream_maxlen", 0, "must be positive, got 0 (use an integer >= 1)"),
        ("serve.backlog_mb", 0, "must be positive, got 0 (use an integer >= 1)"),
        ("persist.bigquery.backlog_mb", 0, "must be positive, got 0 (use an integer >= 1)"),
        ("serve.close_timeout_s", -1, "must be >= 0, got -1.0 (use a number >= 0)"),
        ("persist.bigquery.request_timeout_s", 0, "must be > 0, got 0.0 (use a number > 0)"),
        ("persist.bigquery.historical_partitioning.ttl_days", 0, "must be > 0, got 0.0 (use a number > 0)"),
        ("serve.redis_db", -1, "must be >= 0, got -1 (use an integer >= 0)"),
        ("serve.reply_timeout_ms", 0, "must be positive, got 0 (use an integer >= 1)"),
        ("ingest.sndhwm", 0, "must be positive, got 0 (use an integer >= 1)"),
        ("ingest.rcvhwm", 0, "must be positive, got 0 (use an integer >= 1)"),
        ("candles.grace_ms", -5, "must be >= 0, got -5 (use an integer >= 0)"),
        ("candles.revise_window", 0, "must be positive, got 0 (use an integer >= 1)"),
        ("candles.hft_warmup_candles", 0, "must be positive, got 0 (use an integer >= 1)"),
        ("candles.max_clock_jump_ms", 999, "must be >= 1000, got 999 (use an integer >= 1000)"),
        ("data_types.book_snapshots.depth", 0, "must be positive, got 0 (use an integer >= 1)"),
        ("data_types.gaps.stale_after_ms", -1, "must be >= 0, got -1 (use an integer >= 0)"),
        ("live_instruments.refresh_interval", 0, "must be positive, got 0 (use an integer >= 1)"),
        ("live_instruments.cache_ttl", 0, "must be positive, got 0 (use an integer >= 1)"),
    ],
)
def test_a_value_below_its_minimum_names_key_value_and_the_minimum(path, value, rule):
    assert error_of(nested(path, value)) == f"{path}: {rule}"


def test_grace_must_be_below_the_smallest_timeframe():
    assert error_of({"candles": {"grace_ms": 15_000}}) == (
        "candles.grace_ms: must be below the smallest timeframe 15s, got 15000 (use 0 to 14999 ms)"
    )
    raw = {"candles": {"timeframes": ["1m", "5m"], "hft_timeframes": ["1m"], "grace_ms": 15_000}}
    assert config_from_dict(raw).candles.grace_ms == 15_000  # fine when the smallest is 1m


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("serve.redis_db", "one", "serve.redis_db: expected an integer, got 'one'"),
        ("serve.redis_db", 1.5, "serve.redis_db: expected an integer, got 1.5"),
        ("serve.redis_db", True, "serve.redis_db: expected an integer, got True"),
        ("candles.grace_ms", "250ms", "candles.grace_ms: expected an integer, got '250ms'"),
        ("serve.close_timeout_s", "soon", "serve.close_timeout_s: expected a number, got 'soon'"),
        (
            "candles.enable_hft_features",
            "yes",
            "candles.enable_hft_features: expected true or false, got 'yes'",
        ),
        (
            "candles.timeframes",
            [["1m"]],
            "candles.timeframes: [['1m']] is not a list of names (use [a, b] or a,b)",
        ),
        (
            "persist.bigquery.live_partitioning",
            [],
            "persist.bigquery.live_partitioning: expected a mapping, got list",
        ),
    ],
)
def test_a_value_of_the_wrong_type_names_key_value_and_type(path, value, message):
    assert error_of(nested(path, value)) == message


def test_redis_db_an_integer_from_the_environment(monkeypatch):
    monkeypatch.setenv("DB_NUMBER", "3")
    assert config_from_dict({"serve": {"redis_db": "${DB_NUMBER}"}}).serve.redis_db == 3
    assert config_from_dict({"serve": {"redis_db": None}}).serve.redis_db is None


@pytest.mark.parametrize(
    ("endpoint", "fragment"),
    [
        ("tcp://127.0.0.1:70000", "needs a host and a port 1..65535"),
        ("tcp://127.0.0.1:0", "needs a host and a port 1..65535"),
        ("tcp://127.0.0.1", "needs a host and a port 1..65535"),
        ("tcp://:5555", "needs a host and a port 1..65535"),
    ],
)
def test_endpoint_ports_are_1_to_65535(endpoint, fragment):
    assert error_of({"ingest": {"endpoint": endpoint}}) == (
        f"ingest.endpoint: {endpoint!r} {fragment} (e.g. tcp://127.0.0.1:5555)"
    )


def test_redis_url_port_and_host_and_the_password_never_in_the_message():
    message = error_of({"serve": {"redis_url": f"redis://app:{PASSWORD}@localhost:70000/0"}})
    assert message == "serve.redis_url: 'redis://app:***@localhost:70000/0': the port is not 1..65535"
    message = error_of({"serve": {"redis_url": f"http://app:{PASSWORD}@localhost:6379"}})
    assert "'http://app:***@localhost:6379' is not a Redis URL" in message and PASSWORD not in message
    assert "has no host" in error_of({"serve": {"redis_url": "redis://:6379"}})
    # the in-memory transport does not use the URL
    assert config_from_dict({"serve": {"transport": "inmemory", "redis_url": "nowhere"}})


def test_emulator_and_clustering_are_checked():
    raw = {"persist": {"bigquery": {"emulator": {"grpc_target": "127.0.0.1:99999"}}}}
    assert error_of(raw) == (
        "persist.bigquery.emulator.grpc_target: '127.0.0.1:99999' (use HOST:PORT, port 1..65535)"
    )
    raw = {"persist": {"bigquery": {"emulator": {"rest_url": "127.0.0.1:9050"}}}}
    assert error_of(raw) == "persist.bigquery.emulator.rest_url: '127.0.0.1:9050' (use http://HOST:PORT)"
    raw = {"persist": {"bigquery": {"clustering_fields": ["a", "b", "c", "d", "e"]}}}
    assert error_of(raw).startswith(
        "persist.bigquery.clustering_fields: ['a', 'b', 'c', 'd', 'e'] (use up to four"
    )


# -- unknown keys in every section ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("section", "known"),
    [
        ("serve", "transport, redis_url"),
        ("candles", "timeframes, enable_hft_features"),
        ("ingest", "source, exchange"),
        ("live_instruments", "enabled, exchanges, refresh_interval, cache_ttl"),
        ("persist", "bigquery"),
        ("persist.bigquery", "project_id, dataset_live"),
        ("persist.bigquery.live_partitioning", "type, field, ttl_days"),
        ("persist.bigquery.historical_partitioning", "type, field, ttl_days"),
        ("persist.bigquery.emulator", "rest_url, grpc_target"),
        ("data_types.trades", "enabled, source, batch_timeout, fallback"),
        ("data_types.book_snapshots", "depth, interval_ms"),
        ("data_types.gaps", "stale_after_ms"),
    ],
)
def test_an_unknown_key_in_any_section_is_named_with_the_known_ones(section, known):
    message = error_of(nested(f"{section}.nope", 1))
    assert message.startswith(f"{section}: unknown key(s) nope (known: ") and known in message, message


def test_an_unknown_top_level_key_is_named():
    assert error_of({"candle": {}}).startswith(
        "streaming.yaml: unknown top-level key(s) candle (known: candles"
    )


# -- max_clock_jump_ms, live_instruments, the shipped file ------------------------------------------------
def test_max_clock_jump_ms():
    assert CandlesConfig().max_clock_jump_ms == 60_000
    assert config_from_dict({"candles": {"max_clock_jump_ms": 1000}}).candles.max_clock_jump_ms == 1000
    assert config_from_dict({"candles": {"max_clock_jump_ms": "120000"}}).candles.max_clock_jump_ms == 120_000


def test_live_instruments_is_typed_as_the_seeds_write_it():
    seeds = {"enabled": True, "exchanges": ["binance", "deribit", "coinbase"], "refresh_interval": 300,
             "cache_ttl": 600}  # fmt: skip
    config = config_from_dict({"live_instruments": seeds}).live_instruments
    assert (
        config
        == LiveInstrumentsConfig()
        == LiveInstrumentsConfig(True, ("binance", "deribit", "coinbase"), 300, 600)
    )
    assert "'deribit' is listed twice" in error_of(
        {"live_instruments": {"exchanges": ["deribit", "deribit"]}}
    )
    assert "empty while enabled" in error_of({"live_instruments": {"exchanges": []}})
    assert config_from_dict({"live_instruments": {"enabled": False, "exchanges": []}})


def test_the_shipped_streaming_yaml_loads_states_the_defaults_and_suggests_no_open_port():
    config = load_config(REPO / "streaming.yaml")
    defaults = StreamingConfig()
    for section in ("candles", "live_instruments", "data_types"):
        assert getattr(config, section) == getattr(defaults, section), section
    # the one setting it changes: a service run from it keeps a journal (crash recovery)
    journal = dataclasses.replace(defaults.ingest.journal, enabled=True)
    assert config.ingest == dataclasses.replace(defaults.ingest, journal=journal)
    assert config.persist.bigquery.project_id == "${GCP_PROJECT_ID}"  # unset here: persist mode says so
    assert dataclasses.replace(config.persist.bigquery, project_id=None) == defaults.persist.bigquery
    assert dataclasses.replace(config.serve, redis_db=None) == defaults.serve
    text = (REPO / "streaming.yaml").read_text()
    assert "0.0.0.0" not in text and "max_clock_jump_ms: 60000" in text
    assert set(yaml.safe_load(text)["live_instruments"]) == {
        f.name for f in dataclasses.fields(LiveInstrumentsConfig)
    }


def test_the_overrides_of_the_command_line_are_checked_too():
    with pytest.raises(ConfigError, match=r"ingest\.speed: 'fast' is not a speed"):
        validate(apply_overrides(StreamingConfig(), parse_args(["--speed", "fast"])))
    with pytest.raises(ConfigError, match=r"ingest\.endpoint: 'tcp://0\.0\.0\.0:5555' is not a loopback"):
        validate(apply_overrides(StreamingConfig(), parse_args(["--endpoint", "tcp://0.0.0.0:5555"])))


# -- $REDIS_URL ------------------------------------------------------------------------------------------
def test_redis_url_precedence_flag_then_file_then_environment_then_default(monkeypatch, tmp_path):
    assert load_config(None).serve.redis_url == "redis://localhost:6379"  # the default
    monkeypatch.setenv("REDIS_URL", "redis://from-env:6380/2")
    assert load_config(None).serve.redis_url == "redis://from-env:6380/2"  # no --config
    no_url = tmp_path / "no_url.yaml"
    no_url.write_text("serve:\n  stream_maxlen: 10\n")
    assert load_config(no_url).serve.redis_url == "redis://from-env:6380/2"  # the file does not say
    with_url = tmp_path / "with_url.yaml"
    with_url.write_text("serve:\n  redis_url: redis://from-file:6381/0\n")
    assert load_config(with_url).serve.redis_url == "redis://from-file:6381/0"  # the file says
    args = parse_args(["--redis-url", "redis://from-flag:6382/0", "--config", str(with_url)])
    assert apply_overrides(load_config(with_url), args).serve.redis_url == "redis://from-flag:6382/0"
    assert (
        load_config(REPO / "streaming.yaml").serve.redis_url == "redis://from-env:6380/2"
    )  # ${REDIS_URL:-..}


def test_a_password_in_redis_url_argument_is_warned_about_without_showing_it(caplog):
    caplog.set_level(logging.WARNING)
    warn_password_in_argv("redis://app@localhost:6379/0")  # a user, no password: nothing to say
    warn_password_in_argv(None)
    assert not caplog.records
    warn_password_in_argv(f"redis://app:{PASSWORD}@localhost:6379/0")
    (record,) = caplog.records
    assert record.levelname == "WARNING" and "process list" in record.getMessage()
    assert "$REDIS_URL" in record.getMessage() and PASSWORD not in caplog.text


# -- the real command line: one line, exit code 2, before anything starts ------------------------------------
def run_cli(
    args: list[str], env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", CURVE_SECRET_ENV)}
    return subprocess.run(
        [sys.executable, "-m", "market_data_tick_handler.main", *args],
        cwd=cwd,
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_a_bad_value_is_one_line_and_exit_code_2(tmp_path):
    config = tmp_path / "streaming.yaml"
    config.write_text("candles:\n  timeframes: [15s, 7x]\n")
    run = run_cli(["--config", str(config)])
    assert run.returncode == 2
    expected = "candles.timeframes: '7x' is not a timeframe (use <n>s|m|h|d, e.g. 15s, 1m, 4h)"
    assert run.stderr == f"error: {config}: {expected}\n"
    assert run.stdout == ""


def test_cli_a_public_endpoint_without_curve_key_exits_2_before_binding_or_spawning(tmp_path):
    port = free_port()
    config = tmp_path / "streaming.yaml"
    config.write_text(f"ingest:\n  endpoint: tcp://0.0.0.0:{port}\n")
    run = run_cli(["--config", str(config), "--transport", "inmemory"])
    assert run.returncode == 2, run.stderr
    (line,) = run.stderr.splitlines()
    assert line.startswith(
        f"error: {config}: ingest.endpoint: 'tcp://0.0.0.0:{port}' is not a loopback address"
    )
    assert f"set {CURVE_SECRET_ENV}" in line and "or use auto or tcp://127.0.0.1:PORT" in line
    # with a key that is not one, the error does not show it
    run = run_cli(["--config", str(config), "--transport", "inmemory"], env={CURVE_SECRET_ENV: PASSWORD})
    assert run.returncode == 2 and run.stderr == (
        f"error: {config}: {CURVE_SECRET_ENV}: not a Z85 CURVE key of 40 characters"
        " (the value is not shown)\n"
    )


def test_cli_reads_redis_url_from_the_environment_without_config_and_warns_of_a_password_argument():
    run = run_cli(
        ["--source", "replay", "--files", "x.gz"], env={"REDIS_URL": f"http://app:{PASSWORD}@host:1"}
    )
    assert run.returncode == 2
    assert run.stderr == (
        "error: serve.redis_url: 'http://app:***@host:1' is not a Redis URL (use redis://[[user]:password@]host"
        "[:port][/db], rediss://... for TLS, or unix://PATH; a password is best kept in $REDIS_URL)\n"
    )
    run = run_cli(["--redis-url", f"http://app:{PASSWORD}@host:1", "--endpoint", "tcp://0.0.0.0:5555"])
    assert run.returncode == 2 and PASSWORD not in run.stderr
    warning, error = run.stderr.splitlines()
    assert "WARNING" in warning and "--redis-url carries a password" in warning
    assert error.startswith("error: ingest.endpoint: 'tcp://0.0.0.0:5555'")  # flags are checked too


# -- no password in a process's arguments ---------------------------------------------------------------
def test_make_passes_redis_url_in_the_environment_not_as_an_argument():
    url = f"redis://app:{PASSWORD}@127.0.0.1:6379/0"
    for how in (
        {"env": {**os.environ, "REDIS_URL": url}, "args": []},
        {"env": None, "args": [f"REDIS_URL={url}"]},
    ):
        run = subprocess.run(
            ["make", "-n", "-o", "setup", "replay", "run-serve", *how["args"]],
            cwd=REPO, env=how["env"], capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        assert "market_data_tick_handler.main" in run.stdout
        assert PASSWORD not in run.stdout and "--redis-url" not in run.stdout
    args = ingester_args(load_config(None).ingest, "ipc:///tmp/x/frames.sock", ("trade",))
    assert not any("redis" in a.lower() for a in args)


FAKE_NODE = """#!/bin/sh
# stands in for node: what a `ps` would show of the processor and of this child, and this child's environment
{ echo "processor: $(tr '\\0' ' ' < /proc/$PPID/cmdline)"; echo "ingester: $0 $*"; env; } > "$MDTH_TEST_DUMP"
exit 3
"""


@pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")
def test_make_replay_with_a_password_in_redis_url_shows_it_in_no_command_line(redis_url, tmp_path):
    """The real `make replay` recipe, with a Redis that wants a password: the processor's command line,
    its ingester child's command line and the child's environment hold no password (a stand-in for node
    records them and exits, so the replay fails, after start-up)."""
    redis.Redis.from_url(redis_url).config_set("requirepass", PASSWORD)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "node").write_text(FAKE_NODE)
    (bin_dir / "node").chmod(0o755)
    dump = tmp_path / "dump.txt"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MDTH_TEST_DUMP": str(dump),
           "REDIS_URL": redis_url.replace("redis://", f"redis://:{PASSWORD}@")}  # fmt: skip
    run = subprocess.run(
        ["make", "-s", "-o", "setup", "replay"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seen = dump.read_text()
    processor = next(line for line in seen.splitlines() if line.startswith("processor: "))
    assert "market_data_tick_handler.main --mode streaming-candles-serve --source replay" in processor
    assert "ingester: " in seen and "--endpoint ipc://" in seen
    assert PASSWORD not in seen and "REDIS_URL=" not in seen, seen
    assert "serve mode publishing to redis://***@127.0.0.1" in run.stderr  # it did use the URL
    assert PASSWORD not in run.stderr + run.stdout


# -- CURVE --------------------------------------------------------------------------------------------------
def keypair() -> tuple[bytes, bytes]:
    return zmq.curve_keypair()


@pytest.mark.parametrize(
    ("endpoint", "needs"),
    [
        ("auto", False),
        ("ipc:///tmp/x.sock", False),
        ("tcp://127.0.0.1:5555", False),
        ("tcp://127.9.9.9:5555", False),
        ("tcp://localhost:5555", False),
        ("tcp://[::1]:5555", False),
        ("tcp://0.0.0.0:5555", True),
        ("tcp://*:5555", True),
        ("tcp://10.1.2.3:5555", True),
        ("tcp://eth0:5555", True),
        ("tcp://[::]:5555", True),
    ],
)
def test_which_endpoints_need_curve(endpoint, needs, monkeypatch):
    raw = {"ingest": {"endpoint": endpoint}}
    if needs:
        message = error_of(raw)
        assert f"ingest.endpoint: {endpoint!r} is not a loopback address" in message
        assert CURVE_SECRET_ENV in message
        monkeypatch.setenv(CURVE_SECRET_ENV, keypair()[1].decode())
    assert config_from_dict(raw).ingest.endpoint == endpoint
    if not needs:
        assert curve.server_socket_options(endpoint, {}) is None  # no key: no CURVE (and none needed)


def test_bad_client_keys_are_named(monkeypatch):
    monkeypatch.setenv(CURVE_SECRET_ENV, keypair()[1].decode())
    monkeypatch.setenv(CURVE_CLIENT_KEYS_ENV, f"{keypair()[0].decode()},short")
    assert error_of({"ingest": {"endpoint": "tcp://0.0.0.0:5555"}}) == (
        f"{CURVE_CLIENT_KEYS_ENV}: 'short' is not a Z85 CURVE public key of 40 characters"
        " (use comma-separated public keys)"
    )


async def _delivered(
    ctx: zmq.asyncio.Context, pull: zmq.asyncio.Socket, port: int, client: dict
) -> bytes | None:
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    for option, value in client.items():
        push.setsockopt(option, value)
    push.connect(f"tcp://127.0.0.1:{port}")
    await push.send(b"frame")
    try:
        return await pull.recv() if await pull.poll(1000) else None
    finally:
        push.close()


async def test_curve_server_takes_frames_only_from_clients_with_its_public_key(caplog):
    caplog.set_level(logging.DEBUG)
    server_public, server_secret = keypair()
    environ = {CURVE_SECRET_ENV: server_secret.decode()}
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.asyncio.Context()
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    close = curve.secure_server(ctx, pull, endpoint, environ)
    pull.bind(endpoint)
    port = int(endpoint.rsplit(":", 1)[1])
    client_public, client_secret = keypair()
    mine = {
        zmq.CURVE_SERVERKEY: server_public,
        zmq.CURVE_PUBLICKEY: client_public,
        zmq.CURVE_SECRETKEY: client_secret,
    }
    try:
        assert await _delivered(ctx, pull, port, mine) == b"frame"
        wrong = mine | {zmq.CURVE_SERVERKEY: keypair()[0]}
        assert await _delivered(ctx, pull, port, wrong) is None  # nothing within 1 s
        assert await _delivered(ctx, pull, port, {}) is None  # a plain client neither
    finally:
        pull.close()
        close()
        ctx.term()
    assert server_public.decode() in caplog.text and server_secret.decode() not in caplog.text
    assert curve.server_socket_options(endpoint, environ)[zmq.CURVE_PUBLICKEY] == server_public


async def test_curve_client_keys_let_in_only_those_keys_and_the_spawned_ingester():
    server_public, server_secret = keypair()
    allowed_public, allowed_secret = keypair()
    other_public, other_secret = keypair()
    environ = {
        CURVE_SECRET_ENV: server_secret.decode(),
        CURVE_CLIENT_KEYS_ENV: f" {allowed_public.decode()} ,",
    }
    port = free_port()
    ctx = zmq.asyncio.Context()
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    close = curve.secure_server(ctx, pull, f"tcp://127.0.0.1:{port}", environ)
    pull.bind(f"tcp://127.0.0.1:{port}")

    def client(public: bytes, secret: bytes) -> dict:
        return {zmq.CURVE_SERVERKEY: server_public, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret}

    spawned = curve.ingester_env(f"tcp://127.0.0.1:{port}", environ)
    try:
        assert await _delivered(ctx, pull, port, client(allowed_public, allowed_secret)) == b"frame"
        assert await _delivered(ctx, pull, port, client(other_public, other_secret)) is None
        child = client(spawned[curve.CLIENT_PUBLIC_ENV].encode(), spawned[curve.CLIENT_SECRET_ENV].encode())
        assert await _delivered(ctx, pull, port, child) == b"frame"
    finally:
        pull.close()
        close()
        ctx.term()  # returns: the authenticator's socket is closed
    assert spawned[curve.SERVER_KEY_ENV] == server_public.decode()


def test_the_ingesters_environment_has_the_public_key_and_no_secret():
    server_public, server_secret = keypair()
    environ = {
        "PATH": "/bin",
        "REDIS_URL": f"redis://:{PASSWORD}@h:1",
        CURVE_SECRET_ENV: server_secret.decode(),
    }
    env = curve.ingester_environ("tcp://0.0.0.0:5555", environ)
    assert env == {"PATH": "/bin", curve.SERVER_KEY_ENV: server_public.decode()}
    assert curve.ingester_environ("ipc:///tmp/x.sock", environ) == {"PATH": "/bin"}


async def test_the_spawned_ingester_gets_the_server_key_in_its_environment(tmp_path, monkeypatch, caplog):
    """IngesterProcess.start through a stand-in for node: the child's arguments and environment."""
    caplog.set_level(logging.DEBUG)
    server_public, server_secret = keypair()
    monkeypatch.setenv(CURVE_SECRET_ENV, server_secret.decode())
    monkeypatch.setenv("REDIS_URL", f"redis://:{PASSWORD}@h:1")
    dump = tmp_path / "dump.txt"
    monkeypatch.setenv("MDTH_TEST_DUMP", str(dump))
    node = tmp_path / "node"
    node.write_text(FAKE_NODE)
    node.chmod(0o755)
    ingester = IngesterProcess(IngestConfig(node=str(node)), "tcp://0.0.0.0:5555")
    await ingester.start()
    assert await ingester.wait(10) == 3
    seen = dump.read_text()
    assert f"{curve.SERVER_KEY_ENV}={server_public.decode()}" in seen
    assert server_secret.decode() not in seen and PASSWORD not in seen and "REDIS_URL" not in seen
    assert "starting ingester: node " in caplog.text and server_secret.decode() not in caplog.text


def test_curve_keys_never_reach_the_spawned_ingester_by_accident_on_ipc():
    assert curve.ingester_env("auto", {CURVE_SECRET_ENV: keypair()[1].decode()}) == {}
    with pytest.raises(ConfigError, match=CURVE_SECRET_ENV):  # last line of defence, after config.py's
        curve.server_socket_options("tcp://0.0.0.0:5555", {})


def test_data_types_config():
    config = load_config("streaming.yaml").data_types
    assert config == DataTypesConfig()  # the file states the defaults
    assert (config.book_snapshots.depth, config.book_snapshots.interval_ms, config.gaps.stale_after_ms) == (
        25,
        100,
        30_000,
    )
    custom = config_from_dict(
        {"data_types": {"gaps": {"stale_after_ms": 5000}, "liquidations": {"source": "tardis_realtime"}}}
    )
    assert custom.data_types.gaps == GapsConfig(
        source="disconnect_and_stale_detection", batch_timeout=900_000, fallback=True, stale_after_ms=5000
    )
    assert custom.data_types.liquidations.fallback is False  # native when read from the exchange's feed
    for raw, message in [
        ({"data_types": {"trade": {}}}, "data_types: unknown data type(s) trade"),
        ({"data_types": {"trades": {"depth": 5}}}, "data_types.trades: unknown key(s) depth"),
        ({"data_types": {"gaps": {"stale_afer_ms": 5}}}, "data_types.gaps: unknown key(s) stale_afer_ms"),
        ({"data_types": {"funding_rates": {"source": "tardis_realtime"}}}, "data_types.funding_rates.source"),
        ({"data_types": {"liquidations": {"source": "tardis_realtime", "fallback": True}}}, "disagrees"),
        ({"ingest": {"data_types": ["trade"]}}, "ingest.data_types: removed"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            config_from_dict(raw)


# -- several exchanges: ingest.exchanges and the command line's --exchanges ---------------------------------
TWO_EXCHANGES = {
    "source": "replay",
    "exchanges": {
        "binance": {"symbols": ["btcusdt", "ethusdt"], "files": ["b.gz"], "data_types": ["trades"]},
        "deribit": {"symbols": "BTC-PERPETUAL", "files": ["d1.txt", "d2.txt"]},
    },
}


def test_ingest_exchanges_one_entry_per_exchange_in_the_files_order_and_the_one_exchange_form_as_one():
    ingest = config_from_dict({"ingest": TWO_EXCHANGES}).ingest
    assert (
        ingest.streams()
        == ingest.exchanges
        == (
            IngestExchangeConfig("binance", ("btcusdt", "ethusdt"), ("b.gz",), ("trades",)),
            IngestExchangeConfig(
                "deribit", ("BTC-PERPETUAL",), ("d1.txt", "d2.txt"), None
            ),  # None: every type
        )
    )
    one = config_from_dict({"ingest": {"exchange": "bitmex", "symbols": ["XBTUSD"], "files": ["x.gz"]}})
    assert one.ingest.exchanges == ()
    assert one.ingest.streams() == (IngestExchangeConfig("bitmex", ("XBTUSD",), ("x.gz",), None),)
    assert load_config(None).ingest.streams() == (IngestExchangeConfig("binance", ("btcusdt",)),)


@pytest.mark.parametrize(
    ("ingest", "message"),
    [
        (
            {"exchange": "binance", "exchanges": {"deribit": {"symbols": ["BTC-PERPETUAL"]}}},
            "ingest.exchanges: given together with ingest.exchange (use one form: ingest.exchanges",
        ),
        (
            {"symbols": ["btcusdt"], "files": ["a.gz"], "exchanges": {"binance": {"symbols": ["btcusdt"]}}},
            "ingest.exchanges: given together with ingest.symbols, ingest.files (use one form",
        ),
        ({"exchanges": {}}, "ingest.exchanges: empty"),
        ({"exchanges": ["binance"]}, "ingest.exchanges: expected a mapping, got ['binance']"),
        ({"exchanges": {"binance": None}}, "ingest.exchanges.binance: expected a mapping of symbols"),
        ({"exchanges": {"binance": {"files": ["a.gz"]}}}, "ingest.exchanges.binance.symbols: missing"),
        (
            {"exchanges": {"binance": {"symbols": []}}},
            "ingest.exchanges.binance.symbols: [] (use one or more",
        ),
        (
            {"exchanges": {"binance": {"symbols": ["btcusdt"], "book": 5}}},
            "ingest.exchanges.binance: unknown key(s) book (known: symbols, files, data_types)",
        ),
        (
            {"exchanges": {"Binance": {"symbols": ["btcusdt"]}}},
            "ingest.exchanges: 'Binance' is not an exchange id",
        ),
        (
            {"exchanges": {"binance": {"symbols": ["btcusdt"], "files": ["a.gz"]}}},
            "ingest.exchanges.binance.files: recordings given with ingest.source tardis-realtime",
        ),
        (
            {"exchanges": {"binance": {"symbols": ["btcusdt"], "data_types": ["trade"]}}},
            "ingest.exchanges.binance.data_types: 'trade' is not a data type (use some of the enabled trades",
        ),
        (
            {"exchanges": {"binance": {"symbols": ["btcusdt"], "data_types": []}}},
            "ingest.exchanges.binance.data_types: empty",
        ),
        (
            {"source": "synthetic", "exchanges": {"a": {"symbols": ["x"]}, "b": {"symbols": ["y"]}}},
            "ingest.exchanges: 2 exchanges with ingest.source synthetic",
        ),
    ],
)
def test_ingest_exchanges_errors_name_the_key(ingest, message):
    assert error_of({"ingest": ingest}).startswith(message)


def test_an_exchanges_data_types_are_some_of_those_enabled():
    raw = {
        "data_types": {"book_snapshots": {"enabled": False}},
        "ingest": {
            "exchanges": {"binance": {"symbols": ["btcusdt"], "data_types": ["trades", "book_snapshots"]}}
        },
    }
    assert error_of(raw).startswith(
        "ingest.exchanges.binance.data_types: 'book_snapshots' is not enabled (set data_types.book_snapshots"
        ".enabled, or use some of the enabled trades, liquidations, derivative_ticker,"
    )


def _cli(argv: list[str], config: StreamingConfig | None = None) -> IngestConfig:
    return validate(apply_overrides(config or StreamingConfig(), parse_args(argv))).ingest


def test_cli_exchanges_with_prefixed_symbols_files_and_data_types():
    ingest = _cli(
        [
            "--exchanges", "binance,deribit",
            "--symbols", "binance:BTC-USDT,ethusdt", "--symbols", "deribit:BTC-PERPETUAL",
            "--files", "binance:a.gz", "--files", "deribit:b.txt,c.txt",
            "--data-types", "deribit:trades,derivative_ticker",
        ]
    )  # fmt: skip
    assert ingest.source == "replay"  # files given
    assert (ingest.exchange, ingest.symbols, ingest.files) == ("binance", ("btcusdt",), ())  # not used
    assert ingest.streams() == (
        # the seeds' form as each exchange's id (InstrumentMapper), lower-cased as with --symbols
        IngestExchangeConfig("binance", ("btcusdt", "ethusdt"), ("a.gz",), None),
        IngestExchangeConfig(
            "deribit", ("btc-perpetual",), ("b.txt", "c.txt"), ("trades", "derivative_ticker")
        ),
    )
    # without prefixes: one exchange, as ever (BTC-USDT is binance's btcusdt; every file is replayed)
    one = _cli(["--symbols", "BTC-USDT", "--files", "a.gz", "b.gz,c.gz"])
    assert one.streams() == (IngestExchangeConfig("binance", ("btcusdt",), ("a.gz", "b.gz", "c.gz")),)
    assert (one.source, one.exchanges) == ("replay", ())


def test_cli_prefixed_values_change_streaming_yamls_exchanges_and_exchange_replaces_them():
    config = config_from_dict({"ingest": TWO_EXCHANGES})
    ingest = _cli(["--symbols", "deribit:ETH-PERPETUAL", "--files", "binance:x.gz"], config)
    assert ingest.streams() == (
        IngestExchangeConfig("binance", ("btcusdt", "ethusdt"), ("x.gz",), ("trades",)),
        IngestExchangeConfig("deribit", ("eth-perpetual",), ("d1.txt", "d2.txt"), None),
    )
    # --exchanges picks some of them (their settings kept) or adds one (with its symbols)
    picked = _cli(["--exchanges", "deribit,coinbase", "--symbols", "coinbase:BTC-USD"], config)
    assert picked.streams() == (
        IngestExchangeConfig("deribit", ("BTC-PERPETUAL",), ("d1.txt", "d2.txt"), None),
        IngestExchangeConfig("coinbase", ("btc-usd",), (), None),
    )
    # --exchange: back to one exchange, its symbols and files those of its entry
    assert _cli(["--exchange", "binance"], config).streams() == (
        IngestExchangeConfig("binance", ("btcusdt", "ethusdt"), ("b.gz",), None),
    )


def test_cli_data_types_without_a_prefix_narrow_the_one_exchange():
    """The seeds' ``--data-types trades,liquidations``: what the one exchange streams, as its entry of
    ``ingest.exchanges`` (the ingester is then asked for those types only)."""
    argv = ["--exchange", "deribit", "--symbols", "BTC-PERPETUAL", "--data-types", "trades,liquidations"]
    ingest = _cli(argv)
    assert ingest.streams() == (
        IngestExchangeConfig("deribit", ("btc-perpetual",), (), ("trades", "liquidations")),
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--symbols", "binance:btcusdt"],
            "--symbols binance:...: an exchange's values are for several exchanges",
        ),
        (
            ["--data-types", "binance:trades"],
            "--data-types binance:...: an exchange's values are for several",
        ),
        (["--exchange", "binance", "--exchanges", "binance,deribit"], "--exchange and --exchanges: use one"),
        (
            ["--exchanges", "binance,deribit", "--symbols", "btcusdt"],
            "--symbols btcusdt: with several exchanges (--exchanges binance,deribit) each value needs its",
        ),
        (
            ["--exchanges", "binance,deribit", "--symbols", "binance:btcusdt"],
            "--exchanges: no symbols for deribit",
        ),
        (["--exchanges", "binance", "--symbols", "kraken:xbtusd"], "--symbols kraken:...: kraken is not in"),
        (
            ["--exchanges", "binance", "--symbols", "binance:"],
            "--symbols 'binance:': nothing after the exchange",
        ),
        (
            ["--exchanges", "binance", "--symbols", "binance:btcusdt", "--data-types", "binance:trade"],
            "ingest.exchanges.binance.data_types: 'trade' is not a data type",
        ),
        (
            [
                "--exchanges",
                "binance,deribit",
                "--symbols",
                "binance:a",
                "--symbols",
                "deribit:b",
                "--source",
                "synthetic",
            ],
            "ingest.exchanges: 2 exchanges with ingest.source synthetic",
        ),
    ],
)
def test_cli_several_exchanges_errors(argv, message):
    with pytest.raises(ConfigError) as info:
        _cli(argv)
    assert str(info.value).startswith(message)


# -- docs/ARCHITECTURE.md "Configuration": the table of keys and defaults against config.py ---------------
def _documented_defaults() -> dict[str, str]:
    """Key path -> the default as the table writes it (the text of one backquoted value); a row of two
    keys (`a.b` / `c`) gives ``a.b`` and ``a.c`` with the two defaults (`x` / `y`)."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    table = section.split("| key | default | meaning |\n|---|---|---|\n", 1)[1].split("\n\n", 1)[0]
    out: dict[str, str] = {}
    for line in table.splitlines():
        keys_cell, default_cell = (cell.strip() for cell in line.strip("|").split(" | ")[:2])
        keys = [k.strip().strip("`") for k in keys_cell.split(" / ")]
        keys = [keys[0]] + [keys[0].rsplit(".", 1)[0] + "." + k for k in keys[1:]]
        defaults = [d.strip() for d in default_cell.split(" / ")]
        if len(defaults) != len(keys):
            defaults = [default_cell] * len(keys)
        out.update(zip(keys, defaults, strict=True))
    return out


def _loaded(config: StreamingConfig, path: str):
    value = config
    for name in path.split("."):
        value = getattr(value, name)
    return value


def _plain(value):
    """A loaded value in YAML's terms: tuples as lists, dataclasses as mappings."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


#: rows whose default is not one literal value, checked one by one below
WORDED = {
    "serve.redis_url": "`$REDIS_URL`, else `redis://localhost:6379`",
    "persist.bigquery.project_id": "none (streaming.yaml: `${GCP_PROJECT_ID}`)",
    "data_types.<type>.enabled": "every type on",
    "data_types.<type>.source": "every type on",
    "data_types.<type>.batch_timeout": "every type on",
    "data_types.<type>.fallback": "every type on",
    "ingest.exchanges": "none (one exchange: `ingest.exchange`)",
}


def test_every_default_in_the_docs_configuration_table_is_the_default_config_py_loads(monkeypatch):
    documented = _documented_defaults()
    loaded = load_config(None)
    literal = {k: v for k, v in documented.items() if k not in WORDED}
    assert {k: documented[k] for k in WORDED} == WORDED
    for path, text in literal.items():
        assert text.startswith("`") and text.endswith("`"), (path, text)
        expected = yaml.safe_load(text[1:-1])
        got = _plain(_loaded(loaded, path))
        if isinstance(got, str) and not isinstance(expected, str):  # ingest.speed: `1`, a string of digits
            expected = str(expected)
        assert got == expected, (path, text, got)
    # the worded rows
    assert loaded.serve.redis_url == "redis://localhost:6379"  # $REDIS_URL unset (_no_stray_env)
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6390/2")
    assert load_config(None).serve.redis_url == "redis://elsewhere:6390/2"
    monkeypatch.setenv("GCP_PROJECT_ID", "a-project")
    assert load_config(REPO / "streaming.yaml").persist.bigquery.project_id == "a-project"
    types = loaded.data_types
    assert all(getattr(types, f.name).enabled for f in dataclasses.fields(types)), types
    assert loaded.ingest.exchanges == ()
    assert loaded.ingest.streams() == (IngestExchangeConfig("binance", ("btcusdt",)),)


#: values documented as one mapping (`{type: HOUR, ...}`), not key by key
MAPPINGS = ("persist.bigquery.live_partitioning", "persist.bigquery.historical_partitioning")
COMMON = ("enabled", "source", "batch_timeout", "fallback")  # every data type's: `data_types.<type>.*`


def _leaves(value, prefix: str = ""):
    for f in dataclasses.fields(value):
        inner, path = getattr(value, f.name), f"{prefix}{f.name}"
        if prefix == "data_types.":
            for key in (g.name for g in dataclasses.fields(inner)):
                yield f"data_types.<type>.{key}" if key in COMMON else f"{path}.{key}"
        elif dataclasses.is_dataclass(inner) and path not in MAPPINGS:
            yield from _leaves(inner, path + ".")
        else:
            yield path


#: keys of config.py the table does not list yet; the day a row is added for one, it goes from here
UNDOCUMENTED: set[str] = set()


def test_every_key_of_config_py_is_in_the_docs_configuration_table():
    assert set(_leaves(StreamingConfig())) - set(_documented_defaults()) == UNDOCUMENTED


def test_the_shipped_streaming_yaml_leaves_the_markets_dir_and_the_ingesters_metrics_to_the_environment(
    monkeypatch,
):
    """streaming.yaml states ``markets_dir: null`` (not set: ``$MDTH_MARKETS_DIR`` applies) and reads the
    ingester's metrics address from ``$MDTH_INGESTER_METRICS_ADDRESS`` (a container listens on 0.0.0.0)."""
    monkeypatch.delenv("MDTH_MARKETS_DIR", raising=False)
    monkeypatch.delenv("MDTH_INGESTER_METRICS_ADDRESS", raising=False)
    config = load_config(REPO / "streaming.yaml")
    assert config.live_instruments.markets_dir is None
    assert config.metrics.ingester_address == "127.0.0.1:9465"
    monkeypatch.setenv("MDTH_MARKETS_DIR", "/srv/markets")
    monkeypatch.setenv("MDTH_INGESTER_METRICS_ADDRESS", "0.0.0.0:9465")
    config = load_config(REPO / "streaming.yaml")
    assert config.live_instruments.markets_dir == "/srv/markets"
    assert config.metrics.ingester_address == "0.0.0.0:9465"
