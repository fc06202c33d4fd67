"""What the service does once at start, so that the first candle boundary and the long run after it do not
pay for it (``make bench`` measures both, bench/feature_bench.py):

- the compiled kernels of the hot path (feature step, candle JSON writer, the candle engine's compiled
  path for one instrument) are loaded from numba's cache,
  or compiled, now: done at the first boundary, the JSON writer alone delayed its candles by ~0.14 s
  (persist mode's row writer is compiled by ``PersistMode.start``, which runs before this); the feature
  step also with the strided columns of a live boundary of several instruments (``warm_live_features``),
  a specialization of its own;
- every object made so far (modules, compiled code, clients, warm-up) is moved out of the garbage
  collector's view (``gc.freeze``): a full collection walks ~150,000 of them, a ~55 ms pause at a moment
  the collector picks; after the freeze a full collection only sees what the run itself keeps;
- glibc's mmap and trim thresholds are fixed (``steady_malloc``), so that a burst of large buffers goes
  back to the system rather than staying in the heap;
- the clean pages of the files mapped read-only (machine code and read-only data of the libraries) are
  dropped from the process (``release_file_pages``): ~100 MiB, most of it LLVM's library (llvmlite),
  which numba runs only to compile or load a kernel, never on the live path; then the code only start-up
  ran (OpenSSL's, OpenBLAS's, most of libpython's and numpy's). The page cache keeps them, shared, and
  the kernel may drop such pages itself at any time, so nothing is lost: what the live path runs faults
  straight back in (~12 MiB), a later compile what it needs. This is resident memory the process stops
  holding, not heap freed (docs/ARCHITECTURE.md "Bounds").
"""

from __future__ import annotations

import ctypes
import gc
import logging
import re
import sys
from collections.abc import Callable

import numpy as np

from .candle_json import compile_writer
from .candle_processor.batch_kernel import compile_kernel
from .hft_features.feature_engine import compile_step

log = logging.getLogger(__name__)
MADV_DONTNEED = 4
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")


def release_file_pages(keep: Callable[[str], bool] = lambda path: False) -> int:
    """Drop from this process the pages it holds of files mapped read-only with no page of its own
    (``Private_Dirty`` and ``Anonymous`` 0: the file's pages as on disk), except of the paths ``keep``
    names: what the kernel itself may drop at any time under memory pressure, so nothing is lost; a page
    used again faults back in from the page cache. Returns the bytes of resident memory released (0 off
    Linux)."""
    if not sys.platform.startswith("linux"):
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
            file = path.startswith("/") and not path.startswith("/dev/")
            if file and perms in ("r-xp", "r--p") and not keep(path):
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
        if m.get("Private_Dirty", 1) or m.get("Anonymous", 1) or not m.get("Rss"):
            continue
        if libc.madvise(m["start"], m["end"] - m["start"], MADV_DONTNEED) == 0:
            released += m["Rss"]
    return released


def warm_live_features() -> None:
    """Step the features of candles a live engine closed for two instruments at one boundary: their
    columns as the engine hands them over (volume and the sides are strided views, numba's layout ``A``)
    load a specialization of the step of its own, which ``compile_step``'s contiguous candle does not.
    Loaded only at the first live boundary, it paged LLVM's library back in after the release below
    (+38 MiB resident for the rest of the run, issue 19's 1,000 symbols)."""
    from .candle_processor.live_candle_processor import LiveCandleProcessor
    from .hft_features.live_features import LiveFeatures

    engine = LiveCandleProcessor("X-Y").engine
    live = LiveFeatures(engine, ("15s",))
    ts = np.array([1, 2, 15_000_001, 15_000_002], dtype=np.int64)  # the last two close both 15s candles
    one = np.ones(len(ts))
    sym = np.array([0, 1, 0, 1], dtype=np.uint16)
    batch = engine.on_trades(["XY", "ZW"], sym, ts, one, one, np.ones(len(ts), dtype=np.uint8))
    live.annotate(batch)
    if not any(part.features is not None for part in batch.parts):
        raise RuntimeError("warm_live_features: no candle of the boundary got features")


def steady_malloc(threshold: int = 128 * 1024) -> bool:
    """Fix glibc's thresholds at ``threshold`` bytes: blocks as large are mapped on their own and unmapped
    when freed, and free memory at the heap's top beyond it goes back to the system. By default glibc
    raises both each time such a block is freed (up to 32 MiB), so a boundary's one-off burst of large
    buffers later stays in the heap for good: the 30-minute soak of 1,000 symbols grew by steps of 2-6 MiB
    at such moments. Then hands back what start-up freed (``malloc_trim``). False where the C library
    has no ``mallopt`` (not glibc)."""
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallopt"):
        return False
    libc.mallopt(M_MMAP_THRESHOLD, threshold)
    libc.mallopt(M_TRIM_THRESHOLD, threshold)
    libc.malloc_trim(0)
    return True


def prepare(features: bool) -> None:
    """Compile the hot path (the feature step only with ``features``) and freeze the heap made so far."""
    if features:
        compile_step()
    compile_writer()
    compile_kernel()
    if features:
        warm_live_features()
    gc.collect()
    gc.freeze()
    steady_malloc()
    released = release_file_pages()
    log.debug("hot path ready: %.1f MiB of clean file pages handed back", released / 2**20)
