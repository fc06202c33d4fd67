"""Keep credentials out of logs.

:func:`redact_url` hides the password of one URL; :func:`redact_text` hides every secret it knows of in
a whole text (a log line, a traceback): the password of any ``scheme://user:password@host`` URL, the
values of the secret environment variables (:data:`SECRET_ENVS`: the CURVE secret keys, ``$REDIS_URL``'s
password) wherever they appear, and ``secret_key=...`` / ``password=...`` pairs. ``logging_setup``
puts it on every log record, in both log formats.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
#: environment variables whose values are secrets (none is imported: this module must stay light)
SECRET_ENVS = (
    "MDTH_CURVE_SECRET_KEY",  # the processor's CURVE secret key (config.CURVE_SECRET_ENV)
    "MDTH_CURVE_CLIENT_SECRET_KEY",  # the spawned ingester's (ingest/curve.py CLIENT_SECRET_ENV)
    "REDIS_URL",  # its password (config.REDIS_URL_ENV)
)
# scheme://user:password@ (the user may be empty) and scheme://token@ (no colon: all of it is secret)
_USER_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/\s:@]*):([^/\s@]+)@")
_TOKEN = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/\s:@]+)@")
_PAIR = re.compile(
    r"((?:secret[_-]?key|password|passwd|api[_-]?secret|token)[\"']?\s*[=:]\s*[\"']?)([^\s\"',;&]+)",
    re.IGNORECASE,
)


def redact_url(url: str) -> str:
    """``redis://user:secret@host:6379/0`` -> ``redis://user:***@host:6379/0``."""
    parts = urlsplit(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{user}:***@{host}" if user else f"***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def secret_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The secrets the environment holds (values of :data:`SECRET_ENVS`; of a URL, its password),
    longest first, each at least 4 characters (a shorter one would mask ordinary text)."""
    environ = os.environ if environ is None else environ
    found: set[str] = set()
    for name in SECRET_ENVS:
        value = environ.get(name, "").strip()
        if "://" in value:
            try:
                value = urlsplit(value).password or ""
            except ValueError:
                value = ""
        if len(value) >= 4:
            found.add(value)
    return tuple(sorted(found, key=len, reverse=True))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL password, ``secret_key=...`` value and each of ``secrets`` masked."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" in text:
        text = _USER_PASSWORD.sub(rf"\1\2:{MASK}@", text)
        text = _TOKEN.sub(lambda m: m.group(0) if m.group(2) == MASK else f"{m.group(1)}{MASK}@", text)
    return _PAIR.sub(rf"\1{MASK}", text)
