"""A process's resident memory from /proc, for the soak and the memory tests."""

from __future__ import annotations

from pathlib import Path


def rss_kb(pid: int | None) -> int | None:
    """``VmRSS`` of process ``pid`` in KiB; None when there is no such process (or no /proc)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None
