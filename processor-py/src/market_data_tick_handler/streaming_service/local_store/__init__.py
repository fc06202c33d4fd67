"""The embedded default store: persist mode's and the tick sink's tables as Parquet files under
``persist.local.path`` (``data/warehouse``), read through DuckDB, when no BigQuery project and no
emulator is configured (docs/ARCHITECTURE.md "The local store").

``store.py``: ``LocalStore``, the ``RowSink``; ``candle_codec.py``/``tick_codec.py``: the rows as bytes;
``arrow_schema.py``: the columns as Arrow types; ``layout.py``: folders and file names; ``retention.py``:
partition expiry; ``views.py``: the DuckDB views and ``connect``."""

from .store import LocalStore
from .views import connect, write_views_sql

__all__ = ["LocalStore", "connect", "write_views_sql"]
