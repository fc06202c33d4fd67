"""Consumers of what the processor publishes."""

from .live_feature_stream import LiveFeatureStream

__all__ = ["LiveFeatureStream"]
