"""Candle rows for the local store: per row its numbers as fixed 8-byte words, then its names as text.

A row is ``layout id | timestamp_in | local_timestamp | timestamp_out | every other non-STRING column in
table order (candle fields, then every feature of the catalogue) | symbol \\0 exchange \\0
exchange_symbol \\0 timeframe``; a word is the int64 (a time: µs since the epoch; a bool: 0/1) or the
float64's 8 bytes (native byte order). ``encode`` fills one numpy matrix for a whole block (one
timeframe's bucket) and cuts it into rows, so a row costs about what the Storage Write API's row does
(``bigquery_client/proto_rows.py``); ``decode`` joins a batch's words and reads them with one
``frombuffer``.

Nulls are those of the BigQuery rows: a field the schema makes null on an empty candle
(``null_when_empty``: ``vwap``, the trade times) is null where ``is_empty``; a feature is null where it
is NaN (a window not full, a group that is off, a timeframe without features)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ..bigquery_client.tables import CANDLE_COLUMNS, TableSpec
from ..candle_processor.schema import CANDLE_FIELDS, EMPTY, FLOAT
from .arrow_schema import TIMESTAMP, arrow_schema
from .codec import LayoutMismatch, layout_id

if TYPE_CHECKING:
    from ..candle_processor import ClosedCandles

#: the STRING columns of a candle row, in table order: its tail
_NAMES = ("symbol", "exchange", "exchange_symbol", "timeframe")
#: the words before the candle fields: the layout id and the part's three times
_STAMPS = ("timestamp_in", "local_timestamp", "timestamp_out")
_FIELDS = {f.name: f for f in CANDLE_FIELDS}


class CandleCodec:
    """Rows of one candle table (``tables.candle_tables``): ``encode(block)``, ``decode(rows)``."""

    def __init__(self, table: TableSpec) -> None:
        self.table = table
        self.schema = arrow_schema(table)
        self.layout = layout_id(table, "candle-words-1")
        candle = [c.name for c in CANDLE_COLUMNS]
        strings = tuple(c.name for c in table.columns if c.type == "STRING")
        numbers = [c for c in table.columns if c.type != "STRING"]
        if strings != _NAMES or tuple(c.name for c in numbers[:3]) != _STAMPS:
            raise ValueError(f"{table.name}: not a candle table's columns")
        #: word of each non-STRING column (word 0 is the layout id)
        self._word = {c.name: j for j, c in enumerate(numbers, 1)}
        self._words = len(numbers) + 1
        self._width = self._words * 8
        #: per candle field: (word, name, float); a per-part field's scalar fills its word's column
        self._fields = tuple((self._word[f.name], f.name, f.kind is FLOAT) for f in CANDLE_FIELDS)
        self._features = tuple(c.name for c in numbers if c.name not in candle)
        self._first_feature = self._word[self._features[0]] if self._features else self._words
        self._feature_words: dict[tuple[str, ...], tuple[slice | np.ndarray, bool]] = {}
        self._tails: dict[tuple[str, str, str, str], bytes] = {}
        self._names: dict[bytes, tuple[str, ...]] = {}

    # -- encode ----------------------------------------------------------------------------------------
    def encode(self, block: ClosedCandles) -> list[bytes]:
        c = block.columns
        n = len(c)
        words = np.empty((n, self._words), np.int64)
        floats = words.view(np.float64)
        words[:, 0] = self.layout
        words[:, 1] = c.timestamp_in
        words[:, 2] = block.stamps.local_us
        words[:, 3] = block.stamps.out_us
        for j, name, is_float in self._fields:
            (floats if is_float else words)[:, j] = getattr(c, name)
        features = c.features
        if features is not None and len(features.names):
            where, every = self._feature_positions(features.names)
            if not every:
                floats[:, self._first_feature :] = np.nan
            floats[:, where] = features.values
        else:
            floats[:, self._first_feature :] = np.nan
        buf, width = words.tobytes(), self._width
        exchange, timeframe = block.exchange, c.timeframe
        symbols, exchange_symbols, tails, rows = block.symbols, block.exchange_symbols, self._tails, []
        for i, slot in enumerate(c.slots.tolist()):
            key = (symbols[slot], exchange, exchange_symbols[slot], timeframe)
            tail = tails.get(key)
            if tail is None:
                tail = tails[key] = "\0".join(key).encode()
            rows.append(buf[i * width : (i + 1) * width] + tail)
        return rows

    def _feature_positions(self, names: tuple[str, ...]) -> tuple[slice | np.ndarray, bool]:
        """The words of ``names`` (a slice where they are consecutive, as the catalogue's order makes
        them), and whether they are every feature word (no NaN to fill in first)."""
        got = self._feature_words.get(names)
        if got is None:
            unknown = [name for name in names if name not in self._word]
            if unknown:
                raise ValueError(f"{self.table.name}: no column for the feature(s) {unknown}")
            words = [self._word[name] for name in names]
            consecutive = words == list(range(words[0], words[0] + len(words)))
            where = slice(words[0], words[-1] + 1) if consecutive else np.array(words)
            every = sorted(words) == list(range(self._first_feature, self._words))
            got = self._feature_words[names] = (where, every)
        return got

    # -- decode ----------------------------------------------------------------------------------------
    def decode(self, rows: Sequence[bytes]) -> pa.Table:
        n, width = len(rows), self._width
        if not n:
            return self.schema.empty_table()
        joined = b"".join([row[:width] for row in rows])
        if len(joined) != n * width:
            raise ValueError(f"{self.table.name}: a row is shorter than a candle row")
        words = np.frombuffer(joined, np.int64).reshape(n, self._words).T.copy()  # a column per word
        if not (words[0] == self.layout).all():
            raise LayoutMismatch(f"{self.table.name}: rows made for other columns (another version's)")
        strings = dict(zip(_NAMES, zip(*self._decode_names(rows), strict=True), strict=True))
        empty = words[self._word[EMPTY]].astype(bool)
        arrays = []
        for field in self.schema:
            name = field.name
            if name in strings:
                arrays.append(pa.array(strings[name], pa.string()))
                continue
            column = words[self._word[name]]
            spec = _FIELDS.get(name)
            mask = empty if spec is not None and spec.null_when_empty else None
            if field.type == TIMESTAMP:
                arrays.append(pa.array(column, TIMESTAMP, mask=mask))
            elif field.type == pa.bool_():
                arrays.append(pa.array(column.astype(bool)))
            elif field.type == pa.float64():
                # a feature is null where NaN (from_pandas); a candle field only by its rule
                arrays.append(pa.array(column.view(np.float64), mask=mask, from_pandas=spec is None))
            else:
                arrays.append(pa.array(column, mask=mask))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _decode_names(self, rows: Sequence[bytes]) -> list[tuple[str, ...]]:
        width, names, out = self._width, self._names, []
        for row in rows:
            tail = row[width:]
            got = names.get(tail)
            if got is None:
                got = tuple(tail.decode().split("\0"))
                if len(got) != len(_NAMES):
                    raise ValueError(f"{self.table.name}: a row's names are not {_NAMES}")
                names[tail] = got
            out.append(got)
        return out
