"""The command line (main.py): ``--help`` names every mode and flag with its default, the defaults of
flags that override streaming.yaml read here from config.py's dataclasses (not from main.py); bad flags
and bad configuration files are one clear line and exit code 2."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from market_data_tick_handler import config as cfg
from market_data_tick_handler import main as cli

SEEDS_FLAGS = ("--symbol", "--symbols", "--exchanges", "--data-types", "--duration", "--refresh-interval")


def _help(capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "400")  # argparse wraps at the terminal's width
    with pytest.raises(SystemExit) as exit_:
        cli.parse_args(["--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def _flag_help(text: str, flag: str) -> str:
    """The help of one flag: its entry under "options:" (an entry starts with "  -" on its line)."""
    options = text[text.index("\noptions:") :].split("\n\n")[0]
    entries = re.split(r"\n(?=  -)", options)
    for entry in entries:
        invocation = entry.strip().split("  ")[0]
        names = [n.strip().split(" ")[0] for n in invocation.split(", ")]
        if flag in names:
            return " ".join(entry.split())
    raise AssertionError(f"{flag} not in --help")


def _parser_flags() -> list[str]:
    actions = cli.build_parser()._actions
    return [s for a in actions for s in a.option_strings if s.startswith("--") and s != "--help"]


def test_help_lists_every_mode_and_every_flag_of_the_seeds(capsys, monkeypatch):
    text = _help(capsys, monkeypatch)
    for mode in (
        "streaming-candles-serve",
        "streaming-candles-bigquery",
        "streaming-ticks-bigquery",
        "live-instruments-sync",
    ):
        assert mode in text
    flags = _parser_flags()
    assert set(SEEDS_FLAGS) | {"--config", "--mode", "--log-format", "--stop-timeout"} <= set(flags)
    for flag in flags:
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), f"{flag} not in --help"


def test_help_gives_every_flag_a_default(capsys, monkeypatch):
    text = _help(capsys, monkeypatch)
    for flag in _parser_flags():
        assert "default:" in _flag_help(text, flag), f"{flag}: no default in --help"


# the defaults as written in config.py's dataclasses, read here on their own
def _field_default(cls: type, name: str):
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


EXPECTED = {  # flag -> (streaming.yaml key, its default as config.py's dataclass says)
    "--symbols": ("ingest.symbols", ",".join(_field_default(cfg.IngestConfig, "symbols"))),
    "--exchange": ("ingest.exchange", _field_default(cfg.IngestConfig, "exchange")),
    "--refresh-interval": (
        "live_instruments.refresh_interval",
        str(_field_default(cfg.LiveInstrumentsConfig, "refresh_interval")),
    ),
    "--source": ("ingest.source", _field_default(cfg.IngestConfig, "source")),
    "--speed": ("ingest.speed", _field_default(cfg.IngestConfig, "speed")),
    "--redis-url": ("serve.redis_url", _field_default(cfg.ServeConfig, "redis_url")),
    "--transport": ("serve.transport", _field_default(cfg.ServeConfig, "transport")),
    "--bigquery-target": ("persist.bigquery.target", _field_default(cfg.BigQueryConfig, "target")),
    "--endpoint": ("ingest.endpoint", _field_default(cfg.IngestConfig, "endpoint")),
    "--metrics-address": ("metrics.address", _field_default(cfg.MetricsConfig, "address")),
    "--stop-timeout": ("shutdown.timeout_s", str(_field_default(cfg.ShutdownConfig, "timeout_s"))),
    "--no-metrics": ("metrics.enabled", str(_field_default(cfg.MetricsConfig, "enabled")).lower()),
    "--no-spawn": ("ingest.spawn", str(_field_default(cfg.IngestConfig, "spawn")).lower()),
}


@pytest.mark.parametrize("flag", sorted(EXPECTED))
def test_help_states_the_streaming_yaml_default_a_flag_overrides(capsys, monkeypatch, flag):
    key, value = EXPECTED[flag]
    assert f"default: {key} = {value}" in _flag_help(_help(capsys, monkeypatch), flag)


def test_help_of_the_instrument_exchanges_and_modes_reads_config_defaults(capsys, monkeypatch):
    text = _help(capsys, monkeypatch)
    exchanges = ",".join(_field_default(cfg.LiveInstrumentsConfig, "exchanges"))
    assert f"live_instruments.exchanges = {exchanges}" in _flag_help(text, "--exchanges")
    modes = ",".join(_field_default(cfg.StreamingConfig, "modes"))
    assert f"default: modes = {modes}" in _flag_help(text, "--mode")


def test_a_changed_dataclass_default_changes_the_help(capsys, monkeypatch):
    """The text is made from config.py, not written in main.py: a new default shows at once."""
    monkeypatch.setattr(cli, "StreamingConfig", lambda: cfg.StreamingConfig(shutdown=cfg.ShutdownConfig(7.5)))
    assert "default: shutdown.timeout_s = 7.5" in _flag_help(_help(capsys, monkeypatch), "--stop-timeout")


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "market_data_tick_handler.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--duration", "abc"], "argument --duration: 'abc' is not a positive number of seconds"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--log-format", "xml"], "argument --log-format: invalid choice: 'xml'"),
        (["--refresh-interval", "0"], "argument --refresh-interval: '0' is not a whole number"),
        (["--mode", "nope"], "error: unknown mode(s) nope"),
    ],
)
def test_a_bad_flag_is_a_clear_error_and_exit_2(args, says):
    run = _run(*args)
    assert run.returncode == 2, run.stderr
    assert says in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, "no such file"),
        ("candles: [\n", "not valid YAML"),
        ("candles:\n  bogus: 1\n", "candles: unknown key(s) bogus"),
        ("serve:\n  stream_maxlen: abc\n", "serve.stream_maxlen: expected an integer, got 'abc'"),
        ("shutdown:\n  timeout_s: -1\n", "shutdown.timeout_s: must be > 0"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_file_and_key_and_exit_2(tmp_path: Path, text, says):
    path = tmp_path / "streaming.yaml"
    if text is not None:
        path.write_text(text)
    run = _run("--config", str(path), "--mode", "streaming-candles-serve")
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"error: {path}: "), lines[0]
    assert says in lines[0]
