"""Helpers for running the pipeline locally: a private redis-server, a private BigQuery emulator."""
