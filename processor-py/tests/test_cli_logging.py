"""``--log-format``: text or JSON lines, secrets masked in both (logging_setup.py, redact.py)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from market_data_tick_handler import logging_setup

CURVE_SECRET = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"  # a Z85 key, 40 characters (made up)


class _Err:
    def __init__(self, capsys) -> None:
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def stderr(monkeypatch, capsys):
    """What configure_logging's handler writes to stderr; the root logger is put back afterwards."""
    buffer = _Err(capsys)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # set, then removed: monkeypatch puts back the value from before the test (none) whatever
    # configure_logging("...", "json") sets, so MDTH_LOG_FORMAT does not leak into later tests
    monkeypatch.setenv(logging_setup.LOG_FORMAT_ENV, "text")
    monkeypatch.delenv(logging_setup.LOG_FORMAT_ENV)
    yield buffer
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_json_lines_carry_ts_level_logger_msg_and_exc(stderr):
    logging_setup.configure_logging("info", "json")
    before = datetime.now(UTC)
    logging.getLogger("mdth.test").info("candles=%d to %s", 3, "redis")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("mdth.test").exception("failed")
    logging.getLogger("mdth.test").debug("not at info")
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 2
    first, second = map(json.loads, lines)
    assert set(first) == {"ts", "level", "logger", "msg"}
    assert (first["level"], first["logger"], first["msg"]) == ("INFO", "mdth.test", "candles=3 to redis")
    assert first["ts"].endswith("Z") and len(first["ts"].split(".")[1]) == 7  # 6 digits of µs + Z
    ts = datetime.fromisoformat(first["ts"].replace("Z", "+00:00"))
    assert abs((ts - before).total_seconds()) < 60
    assert second["level"] == "ERROR" and second["msg"] == "failed"
    assert second["exc"].startswith("Traceback") and "RuntimeError: boom" in second["exc"]
    assert os.environ[logging_setup.LOG_FORMAT_ENV] == "json"  # a spawned ingester logs JSON too


def test_text_lines_stay_text_and_leave_the_environment_alone(stderr):
    logging_setup.configure_logging("INFO", "text")
    logging.getLogger("mdth.test").warning("hello %s", "there")
    (line,) = stderr.getvalue().splitlines()
    assert line.endswith(" WARNING mdth.test: hello there")
    assert logging_setup.LOG_FORMAT_ENV not in os.environ


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_never_reach_the_log(stderr, monkeypatch, fmt):
    monkeypatch.setenv("MDTH_CURVE_SECRET_KEY", CURVE_SECRET)
    monkeypatch.setenv("REDIS_URL", "redis://app:hunter2pass@cache:6379/0")
    logging_setup.configure_logging("INFO", fmt)
    log = logging.getLogger("mdth.test")
    log.info("connecting to %s", "redis://app:s3cretpw@10.0.0.5:6379/1")
    log.info("url rediss://:onlypass@host:6380 and token https://ghp_tok3n@example.com/x")
    log.info("the key is %s", CURVE_SECRET)
    log.info("env says %s", os.environ["REDIS_URL"].split("@")[0].split(":")[-1])  # the bare password
    log.info("curve secret_key=abcdefghij0123456789 password: 'pw-in-quotes'")
    try:
        raise ConnectionError(f"cannot reach redis://app:s3cretpw@10.0.0.5:6379 with {CURVE_SECRET}")
    except ConnectionError:
        log.exception("publish failed")
    out = stderr.getvalue()
    for secret in ("s3cretpw", "onlypass", "ghp_tok3n", CURVE_SECRET, "hunter2pass", "abcdefghij0123456789",
                   "pw-in-quotes"):  # fmt: skip
        assert secret not in out, f"{secret!r} in the {fmt} log"
    assert "redis://app:***@10.0.0.5:6379/1" in out  # what is not secret stays readable
    assert "rediss://:***@host:6380" in out
    assert out.count("***") >= 8


def test_the_command_line_logs_json_and_masks_the_password_it_was_given(tmp_path):
    """``--log-format json`` end to end: a config error after logging starts (the --redis-url password
    warning) comes out as JSON lines, without the password."""
    cmd = [
        sys.executable, "-m", "market_data_tick_handler.main", "--log-format", "json", "--mode",
        "streaming-candles-serve", "--redis-url", "redis://u:topsecret9@127.0.0.1:1/0", "--speed", "fast",
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.startswith("{")]
    assert lines, run.stderr
    warning = json.loads(lines[0])
    assert warning["level"] == "WARNING" and "process list" in warning["msg"]
    assert "topsecret9" not in run.stderr


def test_the_log_format_does_not_leak_out_of_these_tests():
    """Runs after the JSON tests above (file order): the environment is as before them."""
    assert os.environ.get(logging_setup.LOG_FORMAT_ENV) != "json"
