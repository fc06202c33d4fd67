from .ingester_process import IngesterProcess, find_ingester, ingester_args

__all__ = ["IngesterProcess", "find_ingester", "ingester_args"]
