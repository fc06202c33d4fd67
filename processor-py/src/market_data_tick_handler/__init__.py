"""Market data tick handler: ticks in from the Node ingester, candles and features out."""

__version__ = "2.0.0"
