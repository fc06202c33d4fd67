"""HFT features: one implementation (``FeatureEngine.step``) for historical batches and live candles.

- ``catalogue.py``: what a feature is (name, formula, warm-up); ``indicators/``: one file per indicator;
- ``kernel.py``: the compiled arithmetic of one candle of one series, and the loop over rows;
- ``feature_engine.py``: the step over many series (lanes) at once, and their state;
- ``feature_calculator.py``: ``HFTFeatureCalculator``, the seeds' per-symbol API;
- ``live_features.py``: features of what a live candle engine closes, and warm-up from history.
"""

from ..candle_processor.feature_columns import FeatureColumns
from .catalogue import OPTIONAL_GROUPS, WINDOWS, FeatureSpec
from .feature_calculator import FEATURE_NAMES, HFTFeatureCalculator, HFTFeatures
from .feature_engine import FeatureEngine, catalogue
from .inputs import CONTEXT, CandleInputs
from .live_features import LiveFeatures, read_candles

__all__ = [
    "CONTEXT",
    "FEATURE_NAMES",
    "OPTIONAL_GROUPS",
    "WINDOWS",
    "CandleInputs",
    "FeatureColumns",
    "FeatureEngine",
    "FeatureSpec",
    "HFTFeatureCalculator",
    "HFTFeatures",
    "LiveFeatures",
    "catalogue",
    "read_candles",
]
