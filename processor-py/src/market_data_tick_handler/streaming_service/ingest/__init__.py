from .ingester_process import IngesterProcess, IngestStream, find_ingester, ingester_args, stream_args
from .sessions import Sessions, Tally

__all__ = [
    "IngestStream",
    "IngesterProcess",
    "Sessions",
    "Tally",
    "find_ingester",
    "ingester_args",
    "stream_args",
]
