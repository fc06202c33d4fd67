from .serve_mode import ServeConfig, ServeMode

__all__ = ["ServeConfig", "ServeMode"]
