from .persist_mode import PersistMode
from .serve_mode import ServeConfig, ServeMode

__all__ = ["PersistMode", "ServeConfig", "ServeMode"]
