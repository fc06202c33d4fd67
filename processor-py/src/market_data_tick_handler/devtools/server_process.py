"""What the dev servers (``local_redis.RedisServer``, ``bq_emulator.BigQueryEmulator``) share: a child
process that a test may kill as in a crash, or stop politely, and the temporary data directory it may
own (``_tmp``), removed at ``stop``."""

from __future__ import annotations

import signal
import subprocess
import tempfile


class ServerProcess:
    proc: subprocess.Popen[bytes] | None = None
    _tmp: tempfile.TemporaryDirectory | None = None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save, connections cut as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self) -> None:
        """SIGTERM, and SIGKILL if it has not exited 10 s later."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def stop(self) -> None:
        """``terminate``, then remove the data directory it made for itself."""
        self.terminate()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
