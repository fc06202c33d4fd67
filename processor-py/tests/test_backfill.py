"""The backfill's parts (issue 19 item 3): reading Tardis trade CSV files and ``<ns> <json>`` recordings,
the frames a day is cut into, the resume state and the progress line. The whole command is tested in
tests/test_backfill_cli.py."""

from __future__ import annotations

import collections
import gzip
import io
import logging
import re
from datetime import date
from pathlib import Path

import pytest

from market_data_tick_handler.backfill.progress import Progress
from market_data_tick_handler.backfill.sources import SourceError, read_recordings, read_tardis_trades
from market_data_tick_handler.backfill.state import SymbolState
from market_data_tick_handler.devtools.tardis_csv import write_tardis_trades_csv

HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
DAY = date(2024, 8, 8)
T0 = 1_723_161_255_342_000  # 2024-08-08T23:54:15.342Z, µs


def _csv(tmp_path: Path, lines: list[str], name: str = "binance_trades_2024-08-08_BTCUSDT.csv.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def _row(
    k: int, side: str = "buy", price: str = "61837.63", amount: str = "0.02", symbol: str = "BTCUSDT"
) -> str:
    return f"binance,{symbol},{T0 + k * 1000},{T0 + k * 1000 + 500},{100 + k},{side},{price},{amount}"


def test_a_tardis_file_reads_into_arrays_in_file_order(tmp_path):
    path = _csv(tmp_path, [HEADER, _row(0), _row(1, "sell", "61837.64", "1.5"), _row(2, "unknown")])
    day = read_tardis_trades(path, "binance", "BTCUSDT", DAY)
    assert day.timestamp.tolist() == [T0, T0 + 1000, T0 + 2000]
    assert day.local_timestamp.tolist() == [T0 + 500, T0 + 1500, T0 + 2500]
    assert day.price.tolist() == [61837.63, 61837.64, 61837.63]
    assert day.amount.tolist() == [0.02, 1.5, 0.02]
    assert day.side.tolist() == [1, 2, 0]  # the wire's codes: buy 1, sell 2, unknown 0
    assert list(day.ids) == ["100", "101", "102"]
    assert not day.bad_rows


def test_bad_rows_are_named_by_line_counted_and_the_rows_around_them_kept(tmp_path, caplog):
    lines = [
        HEADER,
        _row(0),  # line 2
        _row(1, price="6x837.63"),  # 3: not a number
        "binance,BTCUSDT,1",  # 4: three cells
        _row(3, side="sideways"),  # 5
        _row(4, amount="-1"),  # 6: not positive
        f"binance,BTCUSDT,,{T0},105,buy,1,1",  # 7: no exchange time
        _row(6, symbol="ETHUSDT"),  # 8: another symbol in the file
        _row(7),  # 9
    ]
    path = _csv(tmp_path, lines)
    with caplog.at_level(logging.ERROR):
        day = read_tardis_trades(path, "binance", "BTCUSDT", DAY)
    assert day.timestamp.tolist() == [T0, T0 + 7000]
    assert list(day.ids) == ["100", "107"]
    assert day.bad_rows == {"price": 1, "cells": 1, "side": 1, "amount": 1, "timestamp": 1, "symbol": 1}
    text = caplog.text
    assert f"{path}:3: bad row (price): price='6x837.63'" in text
    assert f"{path}:4: bad row (cells): 3 cells, expected 8" in text
    assert f"{path}:5: bad row (side): side='sideways'" in text
    assert f"{path}:6: bad row (amount)" in text
    assert f"{path}:7: bad row (timestamp)" in text
    assert f"{path}:8: bad row (symbol): symbol='ETHUSDT'" in text


def test_files_that_cannot_be_used_are_errors_naming_them(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        read_tardis_trades(tmp_path / "missing.csv.gz", "binance", "BTCUSDT", DAY)
    other = _csv(tmp_path, [HEADER, _row(0, symbol="ETHUSDT"), _row(1, symbol="ETHUSDT")], "eth.csv.gz")
    with pytest.raises(SourceError, match="a file of ETHUSDT, not BTCUSDT"):
        read_tardis_trades(other, "binance", "BTCUSDT", DAY)
    quotes_header = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"
    quotes = _csv(tmp_path, [quotes_header, f"binance,BTCUSDT,{T0},{T0},1,2,1,1"], "q.csv.gz")
    with pytest.raises(SourceError, match="not a Tardis trades file"):
        read_tardis_trades(quotes, "binance", "BTCUSDT", DAY)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(("\n".join([HEADER] + [_row(k) for k in range(2000)])).encode())[:3000])
    with pytest.raises(SourceError, match="cannot be read"):
        read_tardis_trades(cut, "binance", "BTCUSDT", DAY)


def _recording(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "rec.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def _trade(
    ns: int, t_ms: int, trade_id: int, price: str, qty: str, maker: bool, stream: str = "btcusdt"
) -> str:
    m = "true" if maker else "false"
    return (f'{ns} {{"stream":"{stream}@trade","data":{{"e":"trade","E":{t_ms},"s":"{stream.upper()}",'
            f'"t":{trade_id},"p":"{price}","q":"{qty}","T":{t_ms},"m":{m}}}}}')  # fmt: skip


def test_a_recording_reads_as_tardis_rows_by_day_of_local_time(tmp_path, caplog):
    midnight_ns = 1_723_161_600 * 10**9  # 2024-08-09T00:00:00Z
    lines = [
        f'{midnight_ns - 5 * 10**9} {{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate"}}}}',
        _trade(midnight_ns - 10**9, 1_723_161_600_300, 7, "61000.5", "0.1", True),  # local 08-08, T 08-09
        "garbage line",
        _trade(midnight_ns + 10**9, 1_723_161_601_200, 8, "61001", "0.2", False),
        f'{midnight_ns + 2 * 10**9} {{"stream":"btcusdt@trade","data":{{"T":1}}}}',  # no fields
        _trade(midnight_ns + 3 * 10**9, 1_723_161_603_000, 9, "61002", "0.3", False, stream="ethusdt"),
    ]
    path = _recording(tmp_path, lines)
    with caplog.at_level(logging.ERROR):
        days = read_recordings([path], "BTCUSDT")
    assert sorted(days) == [date(2024, 8, 8), date(2024, 8, 9)]
    first, second = days[date(2024, 8, 8)], days[date(2024, 8, 9)]
    assert first.timestamp.tolist() == [1_723_161_600_300_000]  # T * 1000
    assert first.local_timestamp.tolist() == [(midnight_ns - 10**9) // 1000]
    assert first.side.tolist() == [2] and second.side.tolist() == [1]  # m: the taker sold
    assert first.price.tolist() == [61000.5] and second.amount.tolist() == [0.2]
    assert list(first.ids) == ["7"] and list(second.ids) == ["8"]
    assert first.skipped == {"other": 1, "ethusdt@trade": 1}
    assert first.bad_rows == {"line": 1, "frame": 1}
    assert f"{path}:3: bad row (line)" in caplog.text and f"{path}:5: bad row (frame)" in caplog.text
    eth = _recording(tmp_path, [_trade(midnight_ns, 1_723_161_600_000, 1, "1", "1", True, "ethusdt")])
    with pytest.raises(SourceError, match="a recording of ethusdt@trade, not solusdt@trade"):
        read_recordings([eth], "SOLUSDT")


def test_tardis_csv_of_a_recording_is_tardis_format(tmp_path):
    midnight_ns = 1_723_161_600 * 10**9
    path = _recording(tmp_path, [
        _trade(midnight_ns - 10**9, 1_723_161_600_300, 7, "61000.50000000", "0.10000000", True),
        _trade(midnight_ns + 10**9, 1_723_161_601_200, 8, "61001.00000000", "0.20000000", False),
    ])  # fmt: skip
    files = write_tardis_trades_csv([path], tmp_path / "out")
    assert [f.name for f in files] == ["binance_trades_2024-08-08_BTCUSDT.csv.gz",
                                       "binance_trades_2024-08-09_BTCUSDT.csv.gz"]  # fmt: skip
    local = (midnight_ns - 10**9) // 1000
    assert gzip.decompress(files[0].read_bytes()).decode() == (
        f"{HEADER}\nbinance,BTCUSDT,1723161600300000,{local},7,sell,61000.50000000,0.10000000\n"
    )
    assert gzip.decompress(files[1].read_bytes()).decode().splitlines()[1] == (
        f"binance,BTCUSDT,1723161601200000,{(midnight_ns + 10**9) // 1000},8,buy,61001.00000000,0.20000000"
    )


def test_the_state_is_saved_whole_and_read_back(tmp_path):
    state = SymbolState.load(tmp_path, "binance", "BTCUSDT")
    assert not state.days and state.checkpoint_day is None
    state.fingerprint, state.seq = "abc", 12
    state.mark_day(date(2024, 8, 8), {"trades": 3}, {"the": "router"})
    state.mark_day(date(2024, 8, 9), {"trades": 4}, {"the": "router", "day": 2})
    back = SymbolState.load(tmp_path, "binance", "BTCUSDT")
    assert back.days == {"2024-08-08": {"trades": 3}, "2024-08-09": {"trades": 4}}
    assert (back.checkpoint_day, back.fingerprint, back.seq) == ("2024-08-09", "abc", 12)
    assert back.done(date(2024, 8, 8)) and not back.done(date(2024, 8, 10))
    assert back.load_checkpoint(date(2024, 8, 9)) == {"the": "router", "day": 2}
    assert back.load_checkpoint(date(2024, 8, 8)) is None  # only the state after the last day is kept
    back.forget_from(date(2024, 8, 9))
    assert list(back.days) == ["2024-08-08"] and back.checkpoint_day is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binance-BTCUSDT.ckpt", "binance-BTCUSDT.json"]
    (tmp_path / "binance-BTCUSDT.json").write_text("{not json")
    assert not SymbolState.load(tmp_path, "binance", "BTCUSDT").days  # unreadable: afresh, said so


def test_the_progress_line_says_days_trades_rate_and_time_left():
    out = io.StringIO()
    progress = Progress(total_days=4, total_bytes=1000, stream=out, every_s=0)
    progress.started -= 10.0  # ten seconds in
    progress.days, progress.trades, progress.bytes_done = 1, 2_000_000, 250
    progress.update("binance BTC-USDT")
    line = out.getvalue()
    assert line.startswith("backfill binance BTC-USDT: days 1/4, trades 2,000,000, ")
    assert "trades/s" in line and "ETA 00:30" in line  # 3/4 of the bytes left at 25 per second
    assert line.endswith("\n") and "\r" not in line  # not a terminal: plain lines


def test_the_rate_counts_from_start_and_the_last_line_says_how_long_the_start_up_took():
    out = io.StringIO()
    progress = Progress(total_days=1, total_bytes=100, stream=out, every_s=0)
    progress.started -= 30.0  # thirty seconds of start-up (imports, kernels, tables) before start()
    progress.start()
    progress.started -= 2.0  # then two seconds of work
    progress.start()  # a later symbol's: changes nothing
    progress.days, progress.trades, progress.bytes_done = 1, 3_000_000, 100
    progress.close()
    line = out.getvalue()
    rate = int(re.search(r"trades 3,000,000, ([\d,]+) trades/s", line).group(1).replace(",", ""))
    assert 1_499_000 < rate <= 1_500_000  # over the two seconds, not thirty-two
    assert line.rstrip().endswith("(after a start-up of 30.00 s: tables, compiled kernels)")


def test_a_bad_row_met_while_streaming_goes_on_from_the_first_row_not_handed_on(tmp_path, caplog):
    from market_data_tick_handler.backfill.sources import iter_tardis_trades

    lines = [HEADER, *(_row(k) for k in range(10))]
    lines[8] = _row(7, price="oops")  # line 9, in the third piece of three rows
    path = _csv(tmp_path, lines)
    with caplog.at_level(logging.ERROR):
        # blocks of ~2 rows: the first pieces are read typed and handed on before the bad row is met
        pieces = list(iter_tardis_trades(path, "binance", "BTCUSDT", DAY, piece_rows=3, block_size=200))
    # a short first piece (an eighth, at least a row), then pieces of three rows or more
    assert len(pieces) >= 3 and len(pieces[0]) >= 1 and len(pieces[1]) >= 3
    got = [i for p in pieces for i in p.ids]
    assert got == [str(100 + k) for k in range(10) if k != 7]  # each good row once, in order
    assert sum((p.bad_rows for p in pieces), start=collections.Counter()) == {"price": 1}
    assert f"{path}:9: bad row (price): price='oops'" in caplog.text


async def test_the_read_ahead_hands_over_the_pieces_in_order_then_the_error_where_it_was_met():
    from market_data_tick_handler.backfill.runner import ReadAhead

    def pieces():
        for k in range(20):  # more than it reads ahead
            yield DAY, k
        raise SourceError("file.csv.gz: cannot be read: truncated")

    reader = ReadAhead(pieces())
    try:
        got = [await reader.next() for _ in range(20)]
        assert got == [(DAY, k) for k in range(20)]
        with pytest.raises(SourceError, match="truncated"):
            await reader.next()
    finally:
        reader.close()
