"""ZeroMQ CURVE on the ingester's socket, for a ``tcp://`` endpoint.

The processor is the CURVE server: it binds the PULL socket with its secret key (Z85, 40 characters) from
``$MDTH_CURVE_SECRET_KEY``. A ``tcp://`` endpoint whose host is not loopback needs it (config.py refuses
to load without it); on a loopback ``tcp://`` endpoint the key, when set, is used too; ``auto`` (a private
``ipc://`` socket) never uses CURVE. An ingester connects with the server's public key
(``$MDTH_CURVE_SERVER_KEY``, which the processor gives the ingester it spawns) and a key pair of its own.

``$MDTH_CURVE_CLIENT_KEYS`` (Z85 public keys, comma-separated) limits who may connect to those keys,
through pyzmq's ZAP authenticator; the ingester this process spawns then gets a key pair made for this
run (``$MDTH_CURVE_CLIENT_PUBLIC_KEY`` and ``$MDTH_CURVE_CLIENT_SECRET_KEY``), which is allowed too.
Unset, any client that knows the server's public key may connect.

Secret keys are never logged; the spawned ingester gets neither the server's secret key nor
``$REDIS_URL`` (it needs neither).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping

import zmq
import zmq.auth.asyncio

from ...config import (
    CURVE_CLIENT_KEYS_ENV,
    CURVE_SECRET_ENV,
    REDIS_URL_ENV,
    ConfigError,
    endpoint_needs_curve,
)

log = logging.getLogger("ingest")

#: the server's public key, for the ingester
SERVER_KEY_ENV = "MDTH_CURVE_SERVER_KEY"
#: the key pair of the ingester this process spawns, when client keys are checked
CLIENT_PUBLIC_ENV = "MDTH_CURVE_CLIENT_PUBLIC_KEY"
CLIENT_SECRET_ENV = "MDTH_CURVE_CLIENT_SECRET_KEY"
#: what the spawned ingester never gets from this process's environment
NOT_FOR_THE_INGESTER = (CURVE_SECRET_ENV, REDIS_URL_ENV)


def _secret(endpoint: str, environ: Mapping[str, str]) -> bytes | None:
    """The server's secret key when ``endpoint`` uses CURVE, else None (a ConfigError if it needs it and
    there is none: config.py says so at load, this is the last line of defence)."""
    if not endpoint.startswith("tcp://"):
        return None
    secret = environ.get(CURVE_SECRET_ENV, "").strip()
    if not secret:
        if endpoint_needs_curve(endpoint):
            raise ConfigError(f"ingest.endpoint: {endpoint!r} is not loopback: set {CURVE_SECRET_ENV}")
        return None
    return secret.encode()


def server_socket_options(
    endpoint: str, environ: Mapping[str, str] | None = None
) -> dict[int, int | bytes] | None:
    """The socket options that make the PULL socket bound to ``endpoint`` a CURVE server, or None when
    ``endpoint`` does not use CURVE."""
    secret = _secret(endpoint, os.environ if environ is None else environ)
    if secret is None:
        return None
    return {zmq.CURVE_SERVER: 1, zmq.CURVE_SECRETKEY: secret, zmq.CURVE_PUBLICKEY: zmq.curve_public(secret)}


def client_keys(environ: Mapping[str, str] | None = None) -> tuple[bytes, ...]:
    """The public keys of ``$MDTH_CURVE_CLIENT_KEYS`` (none: every client with the server key is let in)."""
    raw = (os.environ if environ is None else environ).get(CURVE_CLIENT_KEYS_ENV, "")
    return tuple(k.strip().encode() for k in raw.split(",") if k.strip())


@functools.cache
def spawned_ingester_keypair() -> tuple[bytes, bytes]:
    """(public, secret): the key pair of the ingesters this process spawns, made once per process."""
    return zmq.curve_keypair()


class _AllowedKeys:
    """pyzmq's ``configure_curve_callback`` provider: a fixed set of Z85 public keys."""

    def __init__(self, keys: set[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


def secure_server(
    ctx: zmq.Context, sock: zmq.Socket, endpoint: str, environ: Mapping[str, str] | None = None
) -> Callable[[], None]:
    """Before ``sock.bind(endpoint)``: CURVE on ``sock`` if ``endpoint`` uses it, and with
    ``$MDTH_CURVE_CLIENT_KEYS`` an authenticator on ``ctx`` (in the running event loop) that lets in only
    those keys and the spawned ingester's. Returns what to call before ``ctx.term()`` (stops the
    authenticator; nothing to do without one)."""
    environ = os.environ if environ is None else environ
    options = server_socket_options(endpoint, environ)
    if options is None:
        return lambda: None
    allowed = set(client_keys(environ))
    auth: zmq.auth.asyncio.AsyncioAuthenticator | None = None
    if allowed:
        allowed.add(spawned_ingester_keypair()[0])
        auth = zmq.auth.asyncio.AsyncioAuthenticator(ctx, log=logging.getLogger("ingest.zap"))
        auth.start()
        auth.configure_curve_callback("*", _AllowedKeys(allowed))
    for option, value in options.items():
        sock.setsockopt(option, value)
    log.info(
        "CURVE on %s: server public key %s; %s",
        endpoint,
        options[zmq.CURVE_PUBLICKEY].decode(),
        f"{len(allowed) - 1} client key(s) of {CURVE_CLIENT_KEYS_ENV} allowed"
        if allowed
        else "any client key",
    )
    return auth.stop if auth is not None else lambda: None


def ingester_env(endpoint: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The CURVE variables the spawned ingester needs for ``endpoint`` (none without CURVE): the
    server's public key, and with client keys checked the key pair made for it."""
    environ = os.environ if environ is None else environ
    secret = _secret(endpoint, environ)
    if secret is None:
        return {}
    env = {SERVER_KEY_ENV: zmq.curve_public(secret).decode()}
    if client_keys(environ) and not environ.get(CLIENT_SECRET_ENV):
        public, secret = spawned_ingester_keypair()
        env |= {CLIENT_PUBLIC_ENV: public.decode(), CLIENT_SECRET_ENV: secret.decode()}
    return env


def ingester_environ(endpoint: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of the spawned ingester: this process's, without the server's secret key
    and ``$REDIS_URL``, plus :func:`ingester_env`."""
    environ = os.environ if environ is None else environ
    kept = {k: v for k, v in environ.items() if k not in NOT_FOR_THE_INGESTER}
    return kept | ingester_env(endpoint, environ)
