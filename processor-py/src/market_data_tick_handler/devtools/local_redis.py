"""A private, real ``redis-server`` on a free port: for ``make demo``, the tests and the benchmarks."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .server_process import ServerProcess


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (all held open while they are picked, so none is picked twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer(ServerProcess):
    """One redis-server process on ``port``, and on the unix socket ``redis.sock`` of its directory;
    ``kill()`` (SIGKILL, as a crash) and ``start()`` again on the same port and data directory.
    ``appendonly``: keep every write in an fsynced append-only file, so a restarted server has what the
    killed one acknowledged."""

    def __init__(
        self, port: int | None = None, appendonly: bool = False, directory: str | None = None
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = port or free_port()
        self.appendonly = appendonly
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="mdth-redis-")
        self.directory = directory or self._tmp.name  # type: ignore[union-attr]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        """The same server on its unix socket (no TCP stack: cheaper per command on one host)."""
        return f"unix://{self.directory}/redis.sock?db=0"

    def start(self) -> RedisServer:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        )
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
             "--dir", self.directory, "--unixsocket", f"{self.directory}/redis.sock",
             "--unixsocketperm", "700"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)


@contextmanager
def redis_server(port: int | None = None, appendonly: bool = False, unix: bool = False) -> Iterator[str]:
    """Start redis-server and yield its URL (``unix``: its unix socket's); stopped on exit."""
    server = RedisServer(port, appendonly)
    try:
        server.start()
        yield server.unix_url if unix else server.url
    finally:
        server.stop()
