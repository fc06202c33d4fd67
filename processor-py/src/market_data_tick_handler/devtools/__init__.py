"""Helpers for running the pipeline locally: a private redis-server."""
