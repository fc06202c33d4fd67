"""Recent candles from the local store, to warm the HFT features up at start: what
``bigquery_client/recent_candles.py`` reads from BigQuery, read from the store's views with DuckDB, with
the same bounds and choice of rows (the candles that closed at or before the anchor, within the
``hft_warmup_candles`` buckets before it; per bucket the highest ``revision``, and of equal ones the one
written last). A table the store does not have yet, or no store at all, is no history yet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config import StreamingConfig
from ..bigquery_client.recent_candles import (
    CANDLE_FIELDS,
    CONTEXT_FIELDS,
    RecentCandles,
    bounds,
    to_datetime,
    warmup_candle,
)
from ..bigquery_client.tables import candle_table_name, target_dataset
from ..candle_processor import Timeframe

SQL = """SELECT {columns}
FROM "{dataset}"."{table}"
WHERE exchange = ?
  AND lower(exchange_symbol) IN (SELECT unnest(?::VARCHAR[]))
  AND timestamp_in >= ? AND timestamp_in <= ?
QUALIFY row_number() OVER (
  PARTITION BY exchange_symbol, timestamp_in ORDER BY revision DESC, timestamp_out DESC) = 1
ORDER BY exchange_symbol, timestamp_in"""
COLUMNS = ", ".join((*CANDLE_FIELDS, *CONTEXT_FIELDS))


def read_recent_candles(config: StreamingConfig, until_us: int) -> RecentCandles:
    """Recent candles of every hft timeframe and every exchange streamed, from the dataset persist mode
    would write to in the local store at ``persist.local.path`` (blocking; never raises: a failure is in
    ``error``)."""
    from .views import connect  # DuckDB loads only here

    dataset, _ = target_dataset(config.persist.bigquery, config.ingest.source)
    root = Path(config.persist.local.path)
    out = RecentCandles(str(root), dataset, until_us)
    if not root.is_dir():
        out.missing = [candle_table_name(tf) for tf in config.candles.hft_timeframes]
        return out
    try:
        con = connect(root)
    except Exception as exc:  # a damaged views file, ...
        out.error = exc
        return out
    try:
        tables = {name for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [dataset]
        ).fetchall()}  # fmt: skip
        for timeframe in config.candles.hft_timeframes:
            table = candle_table_name(timeframe)
            if table not in tables:
                out.missing.append(table)
                continue
            out.failed_table = table
            since, last_start = bounds(
                until_us, Timeframe.parse(timeframe).micros, config.candles.hft_warmup_candles
            )
            sql = SQL.format(columns=COLUMNS, dataset=dataset, table=table)
            out.candles[timeframe] = [
                warmup_candle(row)
                for stream in config.ingest.streams()
                for row in _rows(con, sql, [
                    stream.exchange, sorted({s.lower() for s in stream.symbols}),
                    to_datetime(since), to_datetime(last_start),
                ])
            ]  # fmt: skip
        out.failed_table = None
    except Exception as exc:  # a file it cannot read; or a fault of ours: the caller says which
        out.error = exc
    finally:
        con.close()
    return out


def _rows(con: Any, sql: str, parameters: list[Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, parameters)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
