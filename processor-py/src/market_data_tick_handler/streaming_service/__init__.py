"""The streaming service: the public imports (the names the seeds use; docs/ARCHITECTURE.md maps them).

Each name is imported on first use from the submodule named beside it (PEP 562), so that a consumer
service (``from market_data_tick_handler.streaming_service import LiveFeatureStream``) needs only the base
install: none of the ``streaming``, ``bigquery`` or ``instruments`` extras (pyproject.toml).
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "CHANGE_CHANNEL": ".instrument_service",
    "Candle": ".candle_processor",
    "CandleBatch": ".candle_processor",
    "CandleEngine": ".candle_processor",
    "DataTypeRouter": ".data_types",
    "HFTFeatureCalculator": ".hft_features",
    "HFTFeatures": ".hft_features",
    "InstrumentChange": ".instrument_service",
    "InstrumentDefinition": ".instrument_service",
    "InstrumentMapper": ".instrument_service",
    "LiveCandleProcessor": ".candle_processor",
    "LiveFeatureStream": ".consumers",
    "LiveFeatures": ".hft_features",
    "LiveInstrumentProvider": ".instrument_service",
    "LiveTickStreamer": ".live_tick_streamer",
    "MultiTimeframeProcessor": ".candle_processor.multi_timeframe_processor",
    "PersistMode": ".modes",
    "ServeConfig": ".modes",
    "ServeMode": ".modes",
    "TickHandler": ".tick_processor",
    "candle_messages": ".messages",
    "candles_from_trades": ".candle_processor",
    "candles_to_frame": ".candle_processor",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
