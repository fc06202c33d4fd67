"""docker-compose.yml and the Dockerfiles (issue 18 item 3), without a Docker engine.

- The file is valid against the Compose Specification's JSON schema (docker/compose-spec.json, the pinned
  copy named in docker/NOTICE, checked by its sha256).
- Every image runs as a user that is not root; every service restarts unless stopped and has a health
  check, ours asking the processor's /health on the metrics address its command line binds; no port is
  published on all interfaces; a processor gets longer than streaming.yaml's shutdown.timeout_s to stop, and
  an init as PID 1; journal, warehouse, spill and recordings are named volumes; no secret is written in it.
- Every service's command line (the image's ENTRYPOINT + the service's `command`, interpolated as Compose
  does with the environment given) runs here as a plain process, with only these substitutions:

  ========================  ======================================================================
  what                      why
  ========================  ======================================================================
  `/app/streaming.yaml`     the repository's streaming.yaml (the image copies it there)
  `/app/data/...` volumes   the process's working directory `data/...` (the image's WORKDIR is /app)
  `0.0.0.0:PORT` listeners  `127.0.0.1:<a free port>` (all interfaces inside a container; loopback here)
  `python`, `bqemulator`    this virtualenv's, `.venv-bqemu/bin/bqemulator`
  the exchanges' network    `--source replay --files <sample> --speed max` appended (processors);
                            `--markets-dir <ccxt's market files> --duration 4` appended (instrument sync)
  Redis                     `REDIS_URL` = a private redis-server (the `redis_url` fixture)
  ========================  ======================================================================

  and each does its job: the serving processor's 1m candles in Redis and the persisting one's rows in the
  local store equal the candles worked out from the raw trades (support/binance_reference.py); the
  instrument sync's hash holds binance BTC-USDT with ccxt's tick size (0.01, read from the market file
  here) and its health check command answers 0 while it runs; the emulator answers its health check;
  redis-server runs with its append-only file.

Takes ~25 s (the two replays ~5 s each, the sync 4 s, the emulator's start ~5 s).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import redis
import yaml

from market_data_tick_handler.devtools.bq_emulator import emulator_venv
from market_data_tick_handler.devtools.local_redis import free_port, free_ports
from market_data_tick_handler.query import connect
from support.binance_reference import assert_candles_match, expected_candles, read_trades
from support.pipeline import stream_candles

REPO = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
RAW = yaml.safe_load(COMPOSE_TEXT)
SCHEMA_PATH = REPO / "docker" / "compose-spec.json"
SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-trades.gz"
MARKETS = REPO.parent / "shared" / "data" / "ccxt-markets"
OURS = ("processor-serve", "processor-persist", "instruments-sync")  # our /health
REPLAY = ("--source", "replay", "--files", str(SAMPLE), "--speed", "max")


# --- Compose's interpolation (compose-spec "Interpolation"), for the values the file uses ----------------

_VAR = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-+?])(?P<arg>[^}]*))?\}")


def interpolate(value, env: dict[str, str]):
    """``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``, ``${NAME:+alt}``, ``${NAME+alt}``,
    ``${NAME:?error}`` in every string of ``value``; ``$$`` is a ``$``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        name, op, arg = m["name"], m["op"], m["arg"]
        is_set, full = name in env, bool(env.get(name))
        if op is None:
            return env.get(name, "")
        if op in (":-", "-"):
            return env[name] if (full if op == ":-" else is_set) else arg
        if op in (":+", "+"):
            return arg if (full if op == ":+" else is_set) else ""
        if not full:
            raise ValueError(f"{name}: {arg}")
        return env[name]

    return "$".join(_VAR.sub(one, part) for part in value.split("$$"))


def service(name: str, env: dict[str, str] | None = None) -> dict:
    return interpolate(RAW, env or {})["services"][name]


# --- the Dockerfiles ------------------------------------------------------------------------------------


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    """The (instruction, arguments) of the last stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), args.strip()))
    return stages[-1]


def dockerfile_of(name: str) -> Path:
    build = service(name)["build"]
    return REPO / build["context"] / build["dockerfile"]


def entrypoint(name: str) -> list[str]:
    return json.loads([args for ins, args in final_stage(dockerfile_of(name)) if ins == "ENTRYPOINT"][-1])


DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))


# --- the file -------------------------------------------------------------------------------------------


def test_the_schema_copy_is_the_pinned_one():
    notice = (REPO / "docker" / "NOTICE").read_text()
    assert "170098ba07d9f53c383a41bfd4c5166b0a4529a6" in notice and "Apache License, Version 2.0" in notice
    assert hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest() in notice


def test_the_file_is_valid_against_the_compose_specification():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(RAW)
    jsonschema.Draft7Validator(schema).validate(interpolate(RAW, {}))  # and once interpolated
    with pytest.raises(jsonschema.ValidationError):  # the schema does refuse what Compose refuses
        jsonschema.Draft7Validator(schema).validate({"services": {"x": {"image": "a", "nope": 1}}})


def test_the_services_are_the_issues():
    services = RAW["services"]
    assert set(services) == {"redis", *OURS, "bigquery-emulator"}
    assert services["redis"]["image"].startswith("redis:7")
    assert "--appendonly" in services["redis"]["command"]
    assert services["bigquery-emulator"]["profiles"] == ["emulator"]
    assert all("profiles" not in services[s] for s in ("redis", *OURS))
    modes = {s: service(s)["command"][service(s)["command"].index("--mode") + 1] for s in OURS}
    assert modes == {
        "processor-serve": "streaming-candles-serve",
        "processor-persist": "streaming-candles-bigquery",
        "instruments-sync": "live-instruments-sync",
    }


def test_every_image_runs_as_a_user_that_is_not_root():
    assert {p.name for p in DOCKERFILES} >= {"ingester.Dockerfile", "processor.Dockerfile"}
    for dockerfile in DOCKERFILES:
        users = [args for ins, args in final_stage(dockerfile) if ins == "USER"]
        assert users, f"{dockerfile.name}: no USER in the final stage"
        assert users[-1].split(":")[0] not in ("root", "0"), dockerfile.name
        bases = [args for ins, args in final_stage(dockerfile) if ins == "FROM"]
        assert re.search(r":\d+\.\d+\.\d+", bases[0]), f"{dockerfile.name}: base image not pinned by tag"
    for name, svc in RAW["services"].items():
        assert svc.get("user", "nobody").split(":")[0] not in ("root", "0"), name


def test_every_service_restarts_has_a_health_check_and_ours_ask_health():
    for name, svc in RAW["services"].items():
        assert svc["restart"] == "unless-stopped", name
        assert svc["healthcheck"]["test"][0] == "CMD", name
    for name in OURS:
        svc = service(name)
        address = svc["command"][svc["command"].index("--metrics-address") + 1]
        host, port = address.rsplit(":", 1)
        assert host == "0.0.0.0"  # reachable by Prometheus from the compose network
        assert f"http://127.0.0.1:{port}/health" in " ".join(svc["healthcheck"]["test"]), name


def test_no_port_is_published_on_all_interfaces():
    for name, svc in service_items():
        for port in svc.get("ports", []):
            spec = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
            assert spec.startswith("127.0.0.1:"), f"{name}: {port}"
        for expose in svc.get("expose", []):
            assert not str(expose).startswith("0.0.0.0"), name


def service_items():
    return interpolate(RAW, {})["services"].items()


def test_a_processor_gets_longer_than_its_shutdown_timeout_and_an_init():
    timeout_s = yaml.safe_load((REPO / "streaming.yaml").read_text())["shutdown"]["timeout_s"]
    for name in OURS:
        svc = service(name)
        grace = re.fullmatch(r"(\d+)s", svc["stop_grace_period"])
        assert grace and int(grace[1]) > timeout_s, name
        assert svc["init"] is True, name


def test_state_is_on_named_volumes():
    named = set(RAW["volumes"])
    mounts = {
        target: source
        for svc in RAW["services"].values()
        for source, target in (v.split(":")[:2] for v in svc.get("volumes", []))
    }
    for target in (
        "/app/data/journal",
        "/app/data/warehouse",
        "/app/data/spill",
        "/app/data/recordings",
        "/data",
    ):
        assert mounts[target] in named, target
    journals = [v for s in ("processor-serve", "processor-persist") for v in RAW["services"][s]["volumes"]]
    assert len({v for v in journals if v.endswith(":/app/data/journal")}) == 2  # one journal each


def test_no_secret_is_written_in_the_file():
    for name, svc in service_items():
        for key, value in (svc.get("environment") or {}).items():
            assert "@" not in str(value), f"{name}: {key} carries credentials"
        assert "password" not in json.dumps(svc).lower(), name
    env = {"GOOGLE_APPLICATION_CREDENTIALS": "/home/me/key.json", "REDIS_URL": "redis://:pw@r:6379/0"}
    persist = service("processor-persist", env)
    assert persist["environment"]["GOOGLE_APPLICATION_CREDENTIALS"] == "/run/secrets/gcp-key"
    assert interpolate(RAW, env)["secrets"]["gcp-key"]["file"] == "/home/me/key.json"
    assert persist["environment"]["REDIS_URL"] == env["REDIS_URL"]  # from the environment, not the file


# --- each command line, run as a plain process ----------------------------------------------------------


def _argv(name: str, env: dict[str, str], metrics_port: int | None = None) -> list[str]:
    """ENTRYPOINT + command, with the table's substitutions."""
    svc = service(name, env)
    argv = [*entrypoint(name), *svc["command"]]
    out = []
    for token in argv:
        if token == "/app/streaming.yaml":
            token = str(REPO / "streaming.yaml")
        elif token == "0.0.0.0:9464":
            token = f"127.0.0.1:{metrics_port}"
        out.append(token)
    assert out[:3] == ["python", "-m", "market_data_tick_handler.main"]
    return [sys.executable, *out[1:]]


def _env(**more: str) -> dict[str, str]:
    """This environment without the compose file's variables and the persistence switches (so that the
    file's defaults are what runs), plus ``more``."""
    variables = set(re.findall(r"\$\{(\w+)", COMPOSE_TEXT))
    drop = variables | {"GCP_PROJECT_ID", "BIGQUERY_EMULATOR", "GOOGLE_APPLICATION_CREDENTIALS", "REDIS_URL"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **more}


def _service_env(name: str, env: dict[str, str]) -> dict[str, str]:
    """The process environment: ``env`` and the service's `environment`, as the container gets them, but
    the ingester's metrics on a free loopback port instead of the container's ``0.0.0.0:9465``."""
    given = {k: str(v) for k, v in (service(name, env).get("environment") or {}).items()}
    if given.get("MDTH_INGESTER_METRICS_ADDRESS") == "0.0.0.0:9465":
        given["MDTH_INGESTER_METRICS_ADDRESS"] = "127.0.0.1:0"
    return {**env, **given}


def _reference_1m() -> list[dict]:
    return expected_candles(read_trades(SAMPLE), "1m")


def test_processor_serve_runs_as_composed(tmp_path, redis_url):
    env = _env(REDIS_URL=redis_url)
    argv = [*_argv("processor-serve", env, free_port()), *REPLAY]
    run = subprocess.run(argv, cwd=tmp_path, env=_service_env("processor-serve", env), capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert_candles_match(stream_candles(redis_url, "1m"), _reference_1m(), "1m in Redis")
    assert any((tmp_path / "data" / "journal").iterdir())  # its journal is where the volume is mounted


def test_processor_persist_runs_as_composed_into_the_local_store(tmp_path):
    env = _env(PERSIST_MODES="streaming-candles-bigquery,streaming-ticks-bigquery")
    argv = [*_argv("processor-persist", env, free_port()), *REPLAY]
    assert argv[argv.index("--mode") + 1] == "streaming-candles-bigquery,streaming-ticks-bigquery"
    run = subprocess.run(argv, cwd=tmp_path, env=_service_env("processor-persist", env), capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    con = connect(tmp_path / "data" / "warehouse")  # the warehouse volume
    rows = con.execute(
        "SELECT epoch_us(timestamp_in), open, close, trade_count"
        " FROM market_data_streaming.candles_1m_dedup ORDER BY timestamp_in"
    ).fetchall()
    expected = [(c["timestamp_in"], c["open"], c["close"], c["trade_count"]) for c in _reference_1m()]
    assert rows == expected
    trades = con.execute("SELECT count(*) FROM market_data_streaming.ticks_trades_dedup").fetchall()
    assert trades == [(len(read_trades(SAMPLE)),)]


@pytest.mark.skipif(not (MARKETS / "binance.json").is_file(), reason="shared/data/ccxt-markets is not here")
def test_instruments_sync_runs_as_composed_and_its_health_check_answers(tmp_path, redis_url):
    port = free_port()
    env = _env(REDIS_URL=redis_url)
    argv = [*_argv("instruments-sync", env, port), "--markets-dir", str(MARKETS), "--duration", "4"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=_service_env("instruments-sync", env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    check = service("instruments-sync")["healthcheck"]["test"][1:]
    check = [sys.executable if t == "python" else t.replace("9464", str(port)) for t in check]
    healthy, deadline = False, time.monotonic() + 4
    while not healthy and proc.poll() is None and time.monotonic() < deadline:
        healthy = subprocess.run(check, capture_output=True, timeout=10).returncode == 0
        time.sleep(0.2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert healthy, err[-3000:]
    market = json.loads((MARKETS / "derived" / "binance.markets.ccxt-4.5.90.json").read_text())["BTC/USDT"]
    assert market["precision"]["price"] == 0.01
    btc = json.loads(redis.Redis.from_url(redis_url).hget("instruments:binance", "BTC-USDT"))
    assert (btc["exchange_symbol"], btc["tick_size"]) == ("BTCUSDT", 0.01)


def test_bigquery_emulator_runs_as_composed(tmp_path):
    binary = emulator_venv() / "bin" / "bqemulator"
    if not binary.exists():
        pytest.skip("bqemulator is not installed (make setup)")
    assert entrypoint("bigquery-emulator") == ["bqemulator"]
    rest, grpc = free_ports(2)
    command = service("bigquery-emulator")["command"]
    subs = {"0.0.0.0": "127.0.0.1", "9050": str(rest), "9060": str(grpc), "/data": str(tmp_path)}
    argv = [str(binary), *(subs.get(t, t) for t in command)]
    env = {**os.environ, "HOME": str(emulator_venv() / "home"), "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false"}
    check = [sys.executable if t == "python" else t.replace("9050", str(rest))
             for t in service("bigquery-emulator")["healthcheck"]["test"][1:]]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        healthy, deadline = False, time.monotonic() + 60
        while not healthy and proc.poll() is None and time.monotonic() < deadline:
            healthy = subprocess.run(check, capture_output=True, timeout=10).returncode == 0
            time.sleep(0.2)
        assert healthy, proc.stderr.read()[-3000:] if proc.poll() is not None else "no answer in 60 s"
    finally:
        proc.terminate()
        proc.wait(30)


def test_redis_runs_as_composed(tmp_path):
    port = free_port()
    argv = [*service("redis")["command"], "--port", str(port), "--dir", str(tmp_path), "--save", ""]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                assert client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        cli, *command = service("redis")["healthcheck"]["test"][1:]
        assert subprocess.run([cli, "-p", str(port), *command], capture_output=True).stdout == b"PONG\n"
    finally:
        proc.terminate()
        proc.wait(10)


# --- what the images copy -------------------------------------------------------------------------------


def _ignored(path: str, rules: list[str]) -> bool:
    """.dockerignore's verdict on ``path`` (the last matching rule wins; ``!`` lets a path back in)."""
    ignored = False
    for rule in rules:
        keep = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        tail = pattern[3:] if pattern.startswith("**/") else None
        parts = path.split("/")
        if (
            pattern == "**"
            or fnmatch.fnmatch(path, pattern)
            or path.startswith(pattern + "/")
            or (tail is not None and any(fnmatch.fnmatch(p, tail) for p in parts))
        ):
            ignored = not keep
    return ignored


def _tracked(folder: str) -> list[str]:
    return subprocess.run(
        ["git", "ls-files", folder], cwd=REPO, capture_output=True, text=True
    ).stdout.split()


def test_what_the_dockerfiles_copy_is_in_the_build_context():
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for dockerfile in DOCKERFILES:
        copies = [
            args.split()[:-1]
            for args in re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines()
            for args in [args.strip()]
            if args.startswith("COPY ") and "--from=" not in args
        ]
        for sources in copies:
            for source in sources[1:]:
                path = source.rstrip("/")
                assert (REPO / path).exists(), f"{dockerfile.name}: {source} is not in the repository"
                files = [path] if (REPO / path).is_file() else _tracked(path)
                assert [f for f in files if not _ignored(f, rules)], f"{dockerfile.name}: {source} left out"
    for needed in ("processor-py/pyproject.toml", "processor-py/README.md", "proto/wire.json",
                   "proto/exchanges.json", "processor-py/src/market_data_tick_handler/main.py",
                   "ingest-node/src/cli.js", "ingest-node/package-lock.json", "streaming.yaml"):  # fmt: skip
        assert not _ignored(needed, rules), needed
    assert _ignored("ingest-node/node_modules/zeromq/package.json", rules)  # npm ci makes them in the image
    assert _ignored(".venv/bin/python", rules) and _ignored("data/sample/x.gz", rules)


def test_the_processor_image_has_the_paths_the_substitutions_assume():
    stage = final_stage(REPO / "docker" / "processor.Dockerfile")
    assert ("WORKDIR", "/app") in stage
    assert ("COPY", "streaming.yaml /app/streaming.yaml") in stage
    env = " ".join(args for ins, args in stage if ins == "ENV")
    node = re.search(r"MDTH_INGEST_NODE=(\S+)", env)
    assert node and (REPO / Path(node[1]).relative_to("/app")).is_file()  # the ingester copied to /app
    assert ("COPY", "--from=ingester /app/ /app/") in stage and (
        "COPY",
        "--from=ingester /usr/local/bin/node /usr/local/bin/node",
    ) in stage
