"""Query the local store (persist mode's and the tick sink's tables without a BigQuery project) with
DuckDB, while the pipeline writes it: ``python -m market_data_tick_handler.query "SQL"``.

Every table is a view named as in BigQuery, ``<dataset>.<table>`` (``market_data_streaming.candles_1m``),
with its de-duplicating view ``<dataset>.<table>_dedup`` beside it (docs/ARCHITECTURE.md "The local
store"). In Python::

    from market_data_tick_handler.query import connect
    con = connect("data/warehouse")
    con.sql("SELECT timestamp_in, close, rsi_5 FROM market_data_streaming.candles_1m ORDER BY 1").show()

The duckdb command line reads the same views: ``duckdb -init data/warehouse/views.sql``.
"""

from __future__ import annotations

import argparse
import sys

from .streaming_service.local_store import connect

__all__ = ["connect", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m market_data_tick_handler.query",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sql", nargs="?", help="the query (default: list the tables and their rows)")
    parser.add_argument("--path", default="data/warehouse", help="the store (persist.local.path)")
    parser.add_argument("--max-rows", type=int, default=100, help="rows printed at most (default 100)")
    args = parser.parse_args(argv)
    import duckdb

    try:
        con = connect(args.path)
        sql = args.sql or (
            "SELECT schema_name AS dataset, view_name AS table_name FROM duckdb_views()"
            " WHERE NOT internal ORDER BY 1, 2"
        )
        con.sql(sql).show(max_rows=args.max_rows, max_width=10_000)
    except (FileNotFoundError, duckdb.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
