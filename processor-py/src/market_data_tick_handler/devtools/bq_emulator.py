"""A private, real BigQuery endpoint on free ports: ``bqemulator`` (DuckDB-backed, REST and gRPC), for the
tests and for running persist mode offline.

The emulator lives in its own virtualenv, ``.venv-bqemu`` at the repository root (``make setup`` makes it;
its pins clash with the processor's), with DuckDB's spatial extension put in place offline under
``.venv-bqemu/home`` (the emulator's HOME: without it the emulator tries to download the extension).
``BQEMU_VENV`` overrides where that virtualenv is.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .local_redis import free_ports
from .server_process import ServerProcess

REPO = Path(__file__).resolve().parents[4]
DEFAULT_PROJECT = "local-project"


def emulator_venv() -> Path:
    return Path(os.environ.get("BQEMU_VENV") or REPO / ".venv-bqemu")


@dataclass(frozen=True, slots=True)
class EmulatorEndpoint:
    project: str
    rest_url: str  # http://127.0.0.1:PORT: the REST API (bigquery.Client's api_endpoint)
    grpc_target: str  # 127.0.0.1:PORT: the Storage Read and Write APIs

    @property
    def cli_value(self) -> str:
        """``--bigquery-emulator``'s value."""
        return f"{self.rest_url},{self.grpc_target}"


class BigQueryEmulator(ServerProcess):
    """One ``bqemulator`` process; ``kill()`` (SIGKILL, as a crash) and ``start()`` again on the same ports.
    Its catalog and rows are kept in a DuckDB file in ``data_dir``, so they survive a restart (its write
    streams do not)."""

    def __init__(
        self,
        project: str = DEFAULT_PROJECT,
        data_dir: str | None = None,
        rest_port: int | None = None,
        grpc_port: int | None = None,
    ) -> None:
        venv = emulator_venv()
        self.binary = venv / "bin" / "bqemulator"
        if not self.binary.exists():
            raise RuntimeError(f"bqemulator is not installed in {venv} (`make setup` installs it)")
        self.home = venv / "home"
        picked = free_ports(2)
        self.rest_port, self.grpc_port = rest_port or picked[0], grpc_port or picked[1]
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="mdth-bqemu-")
        self.data_dir = data_dir or self._tmp.name  # type: ignore[union-attr]
        self.endpoint = EmulatorEndpoint(
            project, f"http://127.0.0.1:{self.rest_port}", f"127.0.0.1:{self.grpc_port}"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(self.data_dir) / "bqemulator.log"

    def start(self) -> BigQueryEmulator:
        env = {**os.environ, "HOME": str(self.home), "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "start", "--rest-host", "127.0.0.1", "--rest-port", str(self.rest_port),
                 "--grpc-host", "127.0.0.1", "--grpc-port", str(self.grpc_port),
                 "--project", self.endpoint.project, "--persistent", "--data-dir", self.data_dir,
                 "--log-level", "warning"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint.rest_url}/healthz", timeout=1) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                self.kill()
                raise RuntimeError(f"bqemulator did not start on port {self.rest_port}:\n{tail}")
            time.sleep(0.1)


@contextmanager
def bigquery_emulator(project: str = DEFAULT_PROJECT) -> Iterator[EmulatorEndpoint]:
    """Start bqemulator on free ports and yield its endpoint; stopped (and its data removed) on exit."""
    emulator = BigQueryEmulator(project)
    try:
        yield emulator.start().endpoint
    finally:
        emulator.stop()


def main() -> None:
    """``python -m market_data_tick_handler.devtools.bq_emulator``: run one in the foreground until Ctrl-C."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--project", default=DEFAULT_PROJECT)
    p.add_argument("--rest-port", type=int, default=9050)
    p.add_argument("--grpc-port", type=int, default=9060)
    p.add_argument("--data-dir", help="keep the tables here (default: a temporary directory, gone at exit)")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the emulator on the way out
    emulator = BigQueryEmulator(args.project, args.data_dir, args.rest_port, args.grpc_port).start()
    print(
        f"bqemulator for project {args.project}: REST {emulator.endpoint.rest_url},"
        f" gRPC {emulator.endpoint.grpc_target} (log: {emulator.log_path}); Ctrl-C stops it\n"
        f"persist mode: --bigquery-project {args.project} --bigquery-emulator {emulator.endpoint.cli_value}",
        flush=True,
    )
    try:
        emulator.proc.wait()  # type: ignore[union-attr]
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
