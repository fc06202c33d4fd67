"""The backfill's inputs, read into one day's arrays (:class:`DayTrades`): Tardis' downloadable trade CSV
datasets (:func:`read_tardis_trades`) and the project's ``<ns> <json>`` recordings of raw Binance
``/stream`` frames (:func:`read_recordings`).

Bad input never stops a file: a row that cannot be read (a wrong number of cells, a number that is not
one, a missing or impossible timestamp, price or amount, an unknown side, another exchange or symbol) is
named by file and line in the log (the first ``LOGGED_PER_FILE`` of a file), counted by reason, and the
good rows around it are kept. What cannot be used at all is a :class:`SourceError` naming the file: a
file that is not a Tardis trades file (its header), one that cannot be read, a file of another symbol.

The checks are those the processor applies to a wire frame (``data_types/base.py``,
``data_types/trades.py``: timestamps in 2000..2100, price and amount finite and positive, a known side),
done here so that the error can name the line; the frame router checks the rows again.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from ..streaming_service.data_types.base import TS_MAX_US, TS_MIN_US
from ..wire import StrColumn

log = logging.getLogger(__name__)

TRADE_COLUMNS = ("exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount")
_DICT = pa.dictionary(pa.int32(), pa.string())
_TYPES = {
    "exchange": _DICT,
    "symbol": _DICT,
    "timestamp": pa.int64(),
    "local_timestamp": pa.int64(),
    "id": pa.string(),
    "side": _DICT,
    "price": pa.float64(),
    "amount": pa.float64(),
}
SIDE_CODES = {"unknown": 0, "buy": 1, "sell": 2}
BAD_SIDE = 255
LOGGED_PER_FILE = 10  # bad rows named in the log per file; all of them are counted
US_PER_DAY = 86_400_000_000
#: a Binance trade frame's fields in the order Binance writes them (and the recordings hold them), read
#: without parsing the JSON; a frame that does not match is parsed as JSON instead
TRADE_FIELDS = re.compile(rb'"t":(\d+),"p":"([^"\\]*)","q":"([^"\\]*)","T":(\d+),"m":(true|false)')
_INT = r"^-?[0-9]+$"
_FLOAT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


class SourceError(Exception):
    """An input that cannot be used at all (named in the message)."""


@dataclass(slots=True)
class DayTrades:
    """One day's valid trades of one instrument, in file order (local time order): exchange time and local
    receive time in µs, price, amount, side code (0 unknown, 1 buy, 2 sell), ids as a wire ``str``
    column. ``bad_rows``: the rows left out, by reason; ``lines``: the lines the file had (header
    aside), for the progress; ``source``: the file(s) it came from."""

    day: date
    timestamp: np.ndarray
    local_timestamp: np.ndarray
    price: np.ndarray
    amount: np.ndarray
    side: np.ndarray
    ids: Any  # StrColumn or a list of str
    source: str
    bad_rows: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # recordings: lines that are not trades
    nbytes: int = 0  # size of the input read (compressed), for the progress

    def __len__(self) -> int:
        return len(self.timestamp)


def day_of_us(t: int) -> date:
    return datetime.fromtimestamp(t // US_PER_DAY * 86_400, UTC).date()


def day_start_us(day: date) -> int:
    return (day - date(1970, 1, 1)).days * US_PER_DAY


class _BadRows:
    """Counts a file's bad rows by reason and logs the first few, named by file and line."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()
        self.logged = 0

    def add(self, reason: str, line: int | None, detail: str) -> None:
        self.counts[reason] += 1
        if self.logged < LOGGED_PER_FILE:
            self.logged += 1
            where = f"{self.path}:{line}" if line is not None else f"{self.path}"
            log.error("%s: bad row (%s): %s; skipped, counted", where, reason, detail)
        elif self.logged == LOGGED_PER_FILE:
            self.logged += 1
            log.error("%s: more bad rows; the rest are counted, not named", self.path)


# -- Tardis CSV --------------------------------------------------------------------------------------
def tardis_path(data_dir: Path, exchange: str, day: date, exchange_symbol: str) -> Path:
    """Where Tardis' dataset file of a day is: ``<dir>/<exchange>_trades_<YYYY-MM-DD>_<SYMBOL>.csv.gz``."""
    return data_dir / f"{exchange}_trades_{day.isoformat()}_{exchange_symbol}.csv.gz"


def _open(path: Path) -> Any:
    """The file to hand pyarrow: a gzip file is decompressed by zlib-ng in a thread of its own when it is
    installed (about 3x zlib's speed, and beside the parsing), else by pyarrow (zlib, before parsing)."""
    if path.suffix == ".gz":
        try:
            from zlib_ng import gzip_ng_threaded
        except ImportError:
            return path
        return gzip_ng_threaded.open(path, "rb")
    return path


def _read_csv(path: Path, types: dict[str, pa.DataType], threads: bool) -> tuple[pa.Table, list]:
    """The file as a table (columns named by its header); rows with a wrong number of cells are skipped
    and returned as (line number or None, cells, text)."""
    invalid: list[tuple[int | None, int, str]] = []

    def handler(row: Any) -> str:
        invalid.append((row.number, row.actual_columns, row.text))
        return "skip"

    source = _open(path)
    try:
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(use_threads=threads, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(invalid_row_handler=handler, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    finally:
        if not isinstance(source, Path):
            source.close()
    return table, invalid


def _numbers(column: pa.ChunkedArray, dtype: type, fill: Any) -> tuple[np.ndarray, np.ndarray]:
    """(values, missing mask) of a numeric column."""
    missing = column.is_null().to_numpy(zero_copy_only=False)
    return column.fill_null(fill).to_numpy().astype(dtype, copy=False), missing


def _codes(column: pa.ChunkedArray, codes: dict[str, int], other: int) -> np.ndarray:
    """A dictionary (or string) column as small integer codes; values not in ``codes`` are ``other``."""
    parts = []
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):
            lookup = np.array([codes.get(v, other) for v in chunk.dictionary.to_pylist()] + [other])
            idx = chunk.indices.fill_null(len(lookup) - 1).to_numpy(zero_copy_only=False)
            parts.append(lookup[idx].astype(np.uint8))
        else:
            parts.append(np.array([codes.get(v, other) for v in chunk.to_pylist()], dtype=np.uint8))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)


def _parse_strings(column: pa.ChunkedArray, pattern: str, to: pa.DataType) -> pa.ChunkedArray:
    """A string column as numbers; values that are not numbers become null (``_numbers`` finds them)."""
    import pyarrow.compute as pc

    ok = pc.match_substring_regex(column, pattern)
    return pc.cast(pc.if_else(ok, column, pa.scalar(None, pa.string())), to)


def _str_column(column: pa.ChunkedArray) -> StrColumn:
    """A string column as the wire's ``str`` column (offsets and one UTF-8 blob), without a copy per row."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    if len(array) == 0:
        return StrColumn(np.zeros(1, dtype=np.uint32), memoryview(b""))
    _, offsets, data = array.buffers()
    off = np.frombuffer(offsets, dtype=np.int32, count=len(array) + 1, offset=array.offset * 4)
    return StrColumn(off.view(np.uint32), memoryview(data) if data is not None else memoryview(b""))


PIECE_ROWS = 200_000  # rows of a file handed on at a time: the next piece is read while this one is used
BLOCK_BYTES = 1 << 20  # the CSV reader's block (larger blocks: no faster, more memory held)


def _text_to_numbers(table: pa.Table) -> pa.Table:
    """A table read as text with its number columns parsed; cells that are not numbers become null."""
    for name, pattern, to in (
        ("timestamp", _INT, pa.int64()),
        ("local_timestamp", _INT, pa.int64()),
        ("price", _FLOAT, pa.float64()),
        ("amount", _FLOAT, pa.float64()),
    ):
        if name in table.column_names:
            table = table.set_column(
                table.column_names.index(name), name, _parse_strings(table[name], pattern, to)
            )
    return table


def _check_header(path: Path, names: list[str]) -> None:
    if tuple(names) != TRADE_COLUMNS:
        raise SourceError(
            f"{path}: not a Tardis trades file: its header is {','.join(names)!r}, expected"
            f" {','.join(TRADE_COLUMNS)!r}"
        )


class _Reader:
    """One Tardis trades file, read in pieces (:meth:`pieces`). Fast: a streaming reader of typed columns,
    the file decompressed beside it. At the first row it cannot take (a number that is not one, a wrong
    number of cells) it reads the file again as text in one thread, so that every row's line is known,
    and goes on from the first row it had not handed on: the rows before were all good and are not handed
    on twice."""

    def __init__(
        self, path: Path, exchange: str, exchange_symbol: str, day: date, piece_rows: int, block_size: int
    ) -> None:
        self.path, self.exchange, self.symbol, self.day = path, exchange, exchange_symbol, day
        self.piece_rows, self.block_size = piece_rows, block_size
        self.bad = _BadRows(path)
        self.delivered = 0  # rows handed on, all good, lines 2 .. delivered + 1
        self.first = True

    def pieces(self) -> Iterator[DayTrades]:
        if not self.path.is_file():
            raise SourceError(
                f"{self.path}: no such file (the {self.day} file of {self.exchange} {self.symbol})"
            )
        try:
            yield from self._typed()
            return
        except _Fallback:
            pass
        try:
            table, invalid = _read_csv(self.path, {c: pa.string() for c in TRADE_COLUMNS}, threads=False)
        except Exception as exc:
            raise SourceError(f"{self.path}: cannot be read as CSV: {type(exc).__name__}: {exc}") from None
        _check_header(self.path, table.column_names)
        n = table.num_rows
        skipped = sorted(number for number, _, _ in invalid if number is not None)
        before = Counter(self.bad.counts)
        for number, cells, text in invalid:
            self.bad.add("cells", number, f"{cells} cells, expected {len(TRADE_COLUMNS)}: {text[:120]!r}")
        lines = np.arange(2, 2 + n + len(skipped))
        if skipped:
            lines = np.setdiff1d(lines, np.array(skipped), assume_unique=True)
        rest = table.slice(self.delivered)
        yield self._piece(_text_to_numbers(rest), lines[self.delivered :], as_text=rest, before=before)

    def _typed(self) -> Iterator[DayTrades]:
        invalid: list[tuple[int | None, int, str]] = []

        def handler(row: Any) -> str:
            invalid.append((row.number, row.actual_columns, row.text))
            return "skip"

        source = _open(self.path)
        try:
            try:
                reader = pacsv.open_csv(
                    source,
                    read_options=pacsv.ReadOptions(use_threads=True, block_size=self.block_size),
                    parse_options=pacsv.ParseOptions(invalid_row_handler=handler, ignore_empty_lines=False),
                    convert_options=pacsv.ConvertOptions(column_types=_TYPES, strings_can_be_null=False),
                )
            except pa.ArrowInvalid as exc:
                if "conversion error" in str(exc) or invalid:
                    raise _Fallback from None
                raise SourceError(f"{self.path}: cannot be read as CSV: {exc}") from None
            _check_header(self.path, reader.schema.names)
            batches: list[pa.RecordBatch] = []
            rows = 0
            want = max(1, self.piece_rows // 8) if self.delivered == 0 else self.piece_rows  # a short first
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except pa.ArrowInvalid as exc:
                    if "conversion error" in str(exc) or invalid:
                        raise _Fallback from None
                    raise SourceError(f"{self.path}: cannot be read as CSV: {exc}") from None
                if invalid:
                    raise _Fallback
                batches.append(batch)
                rows += batch.num_rows
                if rows >= want:  # (a short first piece: the engine starts on it while the next is read)
                    yield self._typed_piece(batches)
                    batches, rows, want = [], 0, self.piece_rows
            if invalid:
                raise _Fallback
            if batches or self.first:
                yield self._typed_piece(batches)
        except (SourceError, _Fallback):
            raise
        except pa.ArrowException as exc:
            raise SourceError(f"{self.path}: cannot be read: {exc}") from None
        except Exception as exc:  # the decompressor's own (a damaged gzip file), OSError
            raise SourceError(f"{self.path}: cannot be read: {type(exc).__name__}: {exc}") from None
        finally:
            if not isinstance(source, Path):
                source.close()

    def _typed_piece(self, batches: list[pa.RecordBatch]) -> DayTrades:
        table = pa.Table.from_batches(batches, schema=None) if batches else _empty()
        lines = np.arange(2 + self.delivered, 2 + self.delivered + table.num_rows)
        piece = self._piece(table, lines)
        self.delivered += table.num_rows
        return piece

    def _piece(
        self,
        table: pa.Table,
        lines: np.ndarray,
        as_text: pa.Table | None = None,
        before: Counter | None = None,
    ) -> DayTrades:
        """Rows of the file (``lines``: their line numbers) checked, the good ones as arrays; the bad ones
        named (``as_text``: the cells as the file has them) and counted."""
        n, bad, path = table.num_rows, self.bad, self.path
        before = Counter(bad.counts) if before is None else before
        ts, ts_missing = _numbers(table["timestamp"], np.int64, 0)
        local, local_missing = _numbers(table["local_timestamp"], np.int64, 0)
        price, price_missing = _numbers(table["price"], np.float64, np.nan)
        amount, amount_missing = _numbers(table["amount"], np.float64, np.nan)
        side = _codes(table["side"], SIDE_CODES, BAD_SIDE)
        exchange_ok = _codes(table["exchange"], {self.exchange: 1}, 0).astype(bool)
        symbol_ok = _codes(table["symbol"], {self.symbol: 1}, 0).astype(bool)
        if self.first and n and not symbol_ok.any():
            found = sorted(set(table["symbol"].cast(pa.string()).unique().to_pylist()) - {""})[:5]
            raise SourceError(
                f"{path}: a file of {', '.join(map(str, found)) or 'no symbol'}, not {self.symbol}: not read"
            )
        self.first = False
        with np.errstate(over="ignore", invalid="ignore"):
            checks = {
                "exchange": ~exchange_ok,
                "symbol": ~symbol_ok,
                "timestamp": ts_missing | (ts < TS_MIN_US) | (ts >= TS_MAX_US),
                "local_timestamp": local_missing | (local < TS_MIN_US) | (local >= TS_MAX_US),
                "price": price_missing | ~(np.isfinite(price) & (price > 0)),
                "amount": amount_missing
                | ~(np.isfinite(amount) & (amount > 0) & np.isfinite(price * amount)),
                "side": side == BAD_SIDE,
            }
        keep = np.ones(n, dtype=bool)
        for reason, mask in checks.items():
            if mask.any():
                for i in np.flatnonzero(mask & keep).tolist():
                    value = (as_text if as_text is not None else table)[reason][i].as_py()
                    bad.add(reason, int(lines[i]), f"{reason}={value!r}")
                keep &= ~mask
        ids = table["id"]
        if not keep.all():
            index = np.flatnonzero(keep)
            ts, local, price, amount, side = ts[index], local[index], price[index], amount[index], side[index]
            ids = ids.take(pa.array(index))
        counts = Counter(bad.counts)
        counts.subtract(before)
        return DayTrades(self.day, ts, local, price, amount, side, _str_column(ids), str(path), +counts)


class _Fallback(Exception):
    """The typed reader met a row it cannot take: read the rest as text."""


def _empty() -> pa.Table:
    return pa.table({c: pa.array([], type=t) for c, t in _TYPES.items()})


def iter_tardis_trades(
    path: Path,
    exchange: str,
    exchange_symbol: str,
    day: date,
    piece_rows: int = PIECE_ROWS,
    block_size: int = BLOCK_BYTES,
) -> Iterator[DayTrades]:
    """One Tardis trades file in pieces of about ``piece_rows`` rows, in file order: each piece's valid
    rows, its bad rows counted by reason (the first of the file named by line in the log). At least one
    piece (empty for an empty file). Raises :class:`SourceError` for a file that cannot be used (missing,
    unreadable, not a trades file, a file of another symbol): before its first piece, except for damage
    found further on (a truncated gzip file)."""
    return _Reader(path, exchange, exchange_symbol, day, piece_rows, block_size).pieces()


def read_tardis_trades(path: Path, exchange: str, exchange_symbol: str, day: date) -> DayTrades:
    """:func:`iter_tardis_trades` in one piece."""
    pieces = list(iter_tardis_trades(path, exchange, exchange_symbol, day, piece_rows=2**62))
    if len(pieces) == 1:
        one = pieces[0]
        one.nbytes = path.stat().st_size
        return one
    bad: Counter[str] = Counter()
    for p in pieces:
        bad.update(p.bad_rows)
    return DayTrades(
        day,
        *(
            np.concatenate([getattr(p, f) for p in pieces])
            for f in ("timestamp", "local_timestamp", "price", "amount", "side")
        ),
        [i for p in pieces for i in p.ids],
        str(path),
        bad,
        nbytes=path.stat().st_size,
    )


# -- recordings --------------------------------------------------------------------------------------
CHUNK_BYTES = 1 << 24  # a recording is decompressed and scanned this much at a time


def _open_binary(path: Path) -> Any:
    if path.suffix != ".gz":
        return open(path, "rb")
    try:
        from zlib_ng import gzip_ng_threaded
    except ImportError:
        return gzip.open(path, "rb")
    return gzip_ng_threaded.open(path, "rb")


def _chunks(f: Any) -> Iterator[bytes]:
    """The file's bytes in pieces that end at a line's end."""
    rest = b""
    while True:
        data = f.read(CHUNK_BYTES)
        if not data:
            if rest:
                yield rest
            return
        data = rest + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        rest = data[cut:]
        yield data[:cut]


_RECORDING_COLUMNS = ("ns", "id", "price", "amount", "T", "maker")
_RECORDING_TYPES = {"ns": pa.int64(), "id": pa.string(), "price": pa.float64(), "amount": pa.float64(),
                    "T": pa.int64(), "maker": pa.bool_()}  # fmt: skip


def _rows_table(rows: list[tuple[bytes, ...]]) -> pa.Table:
    """Trade rows (the fields as bytes, in ``_RECORDING_COLUMNS`` order) as a table, parsed by pyarrow."""
    text = b"\n".join(b",".join(row) for row in rows)
    return pacsv.read_csv(
        pa.py_buffer(text),
        read_options=pacsv.ReadOptions(column_names=list(_RECORDING_COLUMNS), use_threads=True),
        convert_options=pacsv.ConvertOptions(column_types=_RECORDING_TYPES),
    )


def read_recordings(paths: list[Path], exchange_symbol: str) -> dict[date, DayTrades]:
    """The trades of ``exchange_symbol`` in ``<ns> <json>`` recordings of raw Binance ``/stream`` frames
    (read in the order given), by UTC day of the local receive time, as a Tardis file would hold them:
    ``timestamp`` = T (ms) * 1000, ``local_timestamp`` = ns // 1000, side ``sell`` when ``m`` (the buyer
    was the maker) else ``buy``, id = t. Other frames are skipped and counted by stream; a line that is
    not ``<ns> <json>`` or a trade frame without its fields is a bad row, named by file and line. Raises
    :class:`SourceError` for a file that is missing or unreadable, or whose trades are all of other
    symbols.

    A piece of a file whose trade frames are all as Binance writes them is read by one regular expression
    over the piece and pyarrow; any other piece line by line, each frame parsed as JSON."""
    stream = f"{exchange_symbol.lower()}@trade"
    marker = b'@trade"'
    head = b'{"stream":"' + stream.encode() + b'","data":{'  # a frame as Binance writes it
    line_re = re.compile(
        rb"^(\d+) " + re.escape(head) + rb'[^\n]*?"t":(\d+),"p":"([0-9.eE+-]+)","q":"([0-9.eE+-]+)",'
        rb'"T":(\d+),"m":(true|false)[,}][^\n]*$',
        re.M,
    )
    tables: list[tuple[str, pa.Table]] = []
    bad_total: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for path in paths:
        if not path.is_file():
            raise SourceError(f"{path}: no such recording")
        bad = _BadRows(path)
        mine = 0
        others: Counter[str] = Counter()
        lines_before = 0
        try:
            with _open_binary(path) as f:
                for chunk in _chunks(f):
                    lines = chunk.count(b"\n") + (not chunk.endswith(b"\n"))
                    trades = chunk.count(marker)
                    found = line_re.findall(chunk)
                    # every line of the piece "<ns> {...}" and every trade frame ours, as Binance writes it
                    if len(found) == trades and chunk.count(b" {") == lines:
                        skipped["other"] += lines - trades
                        rows: list[tuple[bytes, ...]] = found
                    else:
                        rows = []
                        for k, line in enumerate(chunk.splitlines(), lines_before + 1):
                            row = _recording_line(line, k, stream, marker, bad, others, skipped)
                            if row is not None:
                                rows.append(row)
                    lines_before += lines
                    if rows:
                        mine += len(rows)
                        tables.append((str(path), _rows_table(rows)))
        except (OSError, EOFError) as exc:
            raise SourceError(f"{path}: cannot be read: {exc}") from None
        except Exception as exc:  # the decompressor's own (a damaged gzip file)
            raise SourceError(f"{path}: cannot be read: {type(exc).__name__}: {exc}") from None
        if not mine and others:
            raise SourceError(
                f"{path}: a recording of {', '.join(sorted(others)[:5])}, not {stream}: no trade of"
                f" {exchange_symbol} in it"
            )
        bad_total.update(bad.counts)
    if not tables:
        return {}
    table = pa.concat_tables([t for _, t in tables])
    ns = table["ns"].to_numpy()
    timestamp = table["T"].to_numpy() * 1000
    local = ns // 1000
    price = table["price"].to_numpy()
    amount = table["amount"].to_numpy()
    side = np.where(table["maker"].to_numpy(zero_copy_only=False), 2, 1).astype(np.uint8)
    with np.errstate(invalid="ignore"):
        ok = (
            (timestamp >= TS_MIN_US) & (timestamp < TS_MAX_US) & (local >= TS_MIN_US) & (local < TS_MAX_US)
            & (price > 0) & (price < np.inf) & (amount > 0) & (amount < np.inf)
        )  # fmt: skip
    if not ok.all():
        bad_total["value"] += int(np.count_nonzero(~ok))
        log.error("%d trade frames with a time, price or amount out of range: skipped, counted", (~ok).sum())
    owner = np.repeat(np.arange(len(tables)), [t.num_rows for _, t in tables])
    day_of = local // US_PER_DAY
    out = {}
    size = sum(p.stat().st_size for p in paths)
    total = int(ok.sum()) or 1
    days = np.unique(day_of[ok])
    for day in days.tolist():
        index = np.flatnonzero(ok & (day_of == day))
        when = day_of_us(day * US_PER_DAY)
        files = dict.fromkeys(tables[i][0] for i in np.unique(owner[index]).tolist())
        out[when] = DayTrades(
            when,
            timestamp[index],
            local[index],
            price[index],
            amount[index],
            side[index],
            _str_column(table["id"].take(pa.array(index))),
            ", ".join(files),
            bad_total if day == days[0] else Counter(),
            skipped if day == days[0] else Counter(),
            nbytes=size * len(index) // total,
        )
    return out


def _recording_line(
    line: bytes,
    number: int,
    stream: str,
    marker: bytes,
    bad: _BadRows,
    others: Counter[str],
    skipped: Counter[str],
) -> tuple[bytes, ...] | None:
    """One line of a recording read on its own: the trade's fields (as ``_RECORDING_COLUMNS``), or None
    (another frame, counted; a bad line, named and counted)."""
    ns_text, _, payload = line.partition(b" ")
    if not payload.strip() or not ns_text.isdigit():
        if line.strip():
            bad.add("line", number, f"not '<ns> <json>': {line[:80]!r}")
        return None
    if marker not in payload:
        skipped["other"] += 1
        return None
    try:
        message = orjson.loads(payload)
        name = message.get("stream")
        if name != stream:
            others[str(name)] += 1
            skipped[str(name)] += 1
            return None
        d = message["data"]
        row = (ns_text, str(d["t"]).encode(), str(float(d["p"])).encode(), str(float(d["q"])).encode(),
               str(int(d["T"])).encode(), b"true" if d["m"] else b"false")  # fmt: skip
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        bad.add("frame", number, f"{type(exc).__name__}: {exc}: {line[:80]!r}")
        return None
    if b"," in row[1]:
        bad.add("frame", number, f"an id with a comma: {line[:80]!r}")
        return None
    return row
