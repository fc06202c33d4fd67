"""HFT features: one implementation (``FeatureEngine.step``) for historical batches and live candles.

- ``catalogue.py``: what a feature is (name, formula, warm-up); ``indicators/``: one file per indicator;
- ``kernel.py``: the compiled arithmetic of one candle of one series, and the loop over rows;
- ``feature_engine.py``: the step over many series (lanes) at once, and their state;
- ``feature_calculator.py``: ``HFTFeatureCalculator``, the seeds' per-symbol API;
- ``inputs.py``: what a step reads (``CandleInputs``, the ``CONTEXT`` columns);
- ``context.py``: ``FeatureContext``, the context columns of live candles from book snapshots, derivative
  tickers and liquidations;
- ``live_features.py``: ``LiveFeatures``, the features of what one live candle engine closes;
- ``warmup.py``: recent candles as columns (from a file: ``read_candles``), split into series, for a
  warm-up;
- ``stage.py``: ``FeatureStage``, the features of every exchange's engine, their context and warm-up: what
  the frame router calls.
"""

from ..candle_processor.feature_columns import FeatureColumns
from .catalogue import OPTIONAL_GROUPS, WINDOWS, FeatureSpec
from .context import FeatureContext
from .feature_calculator import FEATURE_NAMES, HFTFeatureCalculator, HFTFeatures
from .feature_engine import FeatureEngine, catalogue
from .inputs import CONTEXT, CandleInputs
from .live_features import LiveFeatures
from .stage import FeatureStage
from .warmup import read_candles, warmup_columns

__all__ = [
    "CONTEXT",
    "FEATURE_NAMES",
    "OPTIONAL_GROUPS",
    "WINDOWS",
    "CandleInputs",
    "FeatureColumns",
    "FeatureContext",
    "FeatureEngine",
    "FeatureSpec",
    "FeatureStage",
    "HFTFeatureCalculator",
    "HFTFeatures",
    "LiveFeatures",
    "catalogue",
    "read_candles",
    "warmup_columns",
]
