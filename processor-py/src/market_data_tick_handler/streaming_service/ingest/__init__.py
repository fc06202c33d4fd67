from .ingester_process import IngesterProcess, find_ingester, ingester_args
from .sessions import Sessions, Tally

__all__ = ["IngesterProcess", "Sessions", "Tally", "find_ingester", "ingester_args"]
