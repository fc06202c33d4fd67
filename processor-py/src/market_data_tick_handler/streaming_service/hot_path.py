"""What the service does once at start, so that the first candle boundary and the long run after it do not
pay for it (``make bench`` measures both, bench/feature_bench.py):

- the compiled kernels of the hot path (feature step, candle JSON writer, the candle engine's compiled
  path for one instrument) are loaded from numba's cache,
  or compiled, now: done at the first boundary, the JSON writer alone delayed its candles by ~0.14 s
  (persist mode's row writer is compiled by ``PersistMode.start``, which runs before this);
- every object made so far (modules, compiled code, clients, warm-up) is moved out of the garbage
  collector's view (``gc.freeze``): a full collection walks ~150,000 of them, a ~55 ms pause at a moment
  the collector picks; after the freeze a full collection only sees what the run itself keeps;
- the pages of LLVM's library (llvmlite) that loading the kernels touched, ~68 MiB of its machine code and
  read-only data, are dropped from the process (``release_llvm_code``): numba runs LLVM only to compile or
  load a kernel, never on the live path. They are clean pages of the file (the page cache keeps them,
  shared), so nothing is lost: a later compile faults back in what it needs. This is resident memory the
  process stops holding, not heap freed (docs/ARCHITECTURE.md "Bounds").
"""

from __future__ import annotations

import ctypes
import gc
import logging
import re
import sys

from .candle_json import compile_writer
from .candle_processor.batch_kernel import compile_kernel
from .hft_features.feature_engine import compile_step

log = logging.getLogger(__name__)
MADV_DONTNEED = 4
_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")


def release_llvm_code(library: str = "libllvmlite.so") -> int:
    """Drop from this process the pages of ``library`` it holds in read-only mappings with no page of its
    own (``Private_Dirty`` and ``Anonymous`` 0: the file's pages as on disk, so nothing is lost). Returns
    the bytes of resident memory released (0 off Linux, or without llvmlite loaded)."""
    if not sys.platform.startswith("linux") or "llvmlite.binding" not in sys.modules:
        return 0
    try:
        with open("/proc/self/smaps") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    mappings: list[dict[str, int]] = []
    current: dict[str, int] | None = None
    for line in lines:
        m = _MAPPING.match(line)
        if m is not None:
            start, end, perms, path = m.groups()
            current = None
            if path.endswith(library) and perms in ("r-xp", "r--p"):
                current = {"start": int(start, 16), "end": int(end, 16)}
                mappings.append(current)
        elif current is not None and ":" in line:
            key, _, value = line.partition(":")
            if key in ("Rss", "Private_Dirty", "Anonymous"):
                current[key] = int(value.split()[0]) * 1024
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for m in mappings:
        if m.get("Private_Dirty", 1) or m.get("Anonymous", 1):
            continue
        if libc.madvise(m["start"], m["end"] - m["start"], MADV_DONTNEED) == 0:
            released += m.get("Rss", 0)
    return released


def prepare(features: bool) -> None:
    """Compile the hot path (the feature step only with ``features``) and freeze the heap made so far."""
    if features:
        compile_step()
    compile_writer()
    compile_kernel()
    gc.collect()
    gc.freeze()
    released = release_llvm_code()
    log.debug("hot path ready: %.1f MiB of LLVM's library pages handed back", released / 2**20)
