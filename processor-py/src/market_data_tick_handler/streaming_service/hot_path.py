"""What the service does once at start, so that the first candle boundary and the long run after it do not
pay for it (``make bench`` measures both, bench/feature_bench.py):

- the compiled kernels of the hot path (feature step, candle JSON writer, the candle engine's compiled
  path for one instrument) are loaded from numba's cache,
  or compiled, now: done at the first boundary, the JSON writer alone delayed its candles by ~0.14 s
  (persist mode's row writer is compiled by ``PersistMode.start``, which runs before this);
- every object made so far (modules, compiled code, clients, warm-up) is moved out of the garbage
  collector's view (``gc.freeze``): a full collection walks ~150,000 of them, a ~55 ms pause at a moment
  the collector picks; after the freeze a full collection only sees what the run itself keeps.
"""

from __future__ import annotations

import gc

from .candle_json import compile_writer
from .candle_processor.batch_kernel import compile_kernel
from .hft_features.feature_engine import compile_step


def prepare(features: bool) -> None:
    """Compile the hot path (the feature step only with ``features``) and freeze the heap made so far."""
    if features:
        compile_step()
    compile_writer()
    compile_kernel()
    gc.collect()
    gc.freeze()
