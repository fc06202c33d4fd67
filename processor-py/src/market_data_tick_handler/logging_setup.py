"""The log format of the command-line entry points: to stderr, one line per record.

``text``: the local time as logging prints it, level, logger, message. ``json``: one JSON object per
line, ``{"ts", "level", "logger", "msg"}`` (``ts``: UTC, ISO 8601 with microseconds, ``Z``), plus
``exc`` (the formatted traceback) when the record carries one. Either way every record passes
:class:`RedactFilter` first: URL passwords and the secret environment variables' values never reach the
log (``redact.py``). ``json`` also sets ``$MDTH_LOG_FORMAT=json`` so a spawned ingester logs JSON too.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Literal

from .redact import redact_text, secret_values

LogFormat = Literal["text", "json"]
#: read by the Node ingester (and anything else this process spawns) for its own log format
LOG_FORMAT_ENV = "MDTH_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactFilter(logging.Filter):
    """Masks secrets in a record's message and traceback (the record is rewritten in place, its args
    merged into the message, so every handler after it sees the masked text)."""

    def __init__(self, secrets: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_values() if self._secrets is None else self._secrets
        message = record.getMessage()
        masked = redact_text(message, secrets)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, secrets)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC ISO 8601 µs), level, logger, msg, and exc when any."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds")
        out = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str, fmt: LogFormat = "text") -> None:
    """The root logger at ``level``, to stderr, in ``fmt``; replaces handlers set before."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if fmt == "json":
        os.environ[LOG_FORMAT_ENV] = "json"
