"""A batch's side column as side codes (``candle_processor/sides.py``): every form pandas and numpy hold
names in gives the codes worked out here by plain comparison; Arrow text in pieces (made in a worker
thread) gives the same as at once; a bad row is named by its row in the whole column, in whatever
chunk or piece it lies, and the rows before it are not taken for names."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from market_data_tick_handler.streaming_service.candle_processor import sides
from market_data_tick_handler.streaming_service.candle_processor.sides import side_codes, side_pieces

NAMES = np.array(["unknown", "buy", "sell"], dtype=object)
EXPECTED = {"unknown": 0, "buy": 1, "sell": 2}  # proto/wire.json's side column


def _names(n: int, seed: int = 7) -> np.ndarray:
    return NAMES[np.random.default_rng(seed).integers(0, 3, n)]


def _by_hand(names) -> np.ndarray:
    return np.array([EXPECTED[x] for x in names], dtype=np.uint8)


def _arrow(names, chunk: int | None = None, large: bool = False) -> pd.Series:
    kind = pa.large_string() if large else pa.string()
    parts = [names] if chunk is None else [names[i : i + chunk] for i in range(0, len(names), chunk)]
    array = pa.chunked_array([pa.array(list(p), kind) for p in parts], kind)
    return pd.Series(pd.arrays.ArrowExtensionArray(array))


FORMS = {
    "object": lambda x: pd.Series(x, dtype=object),
    "str (pandas' own text)": lambda x: pd.Series(list(x)).astype("string[pyarrow]"),
    "arrow string, 3 chunks": lambda x: _arrow(x, chunk=len(x) // 3 + 1),
    "arrow large_string": lambda x: _arrow(x, large=True),
    "category": lambda x: pd.Series(x).astype("category"),
    "numpy U": lambda x: np.array(list(x)),
    "numpy S": lambda x: np.array([s.encode() for s in x]),
    "list": list,
}


@pytest.mark.parametrize("form", FORMS)
def test_every_form_gives_the_codes_worked_out_by_hand(form):
    names = _names(5_000)
    assert np.array_equal(side_codes(FORMS[form](names)), _by_hand(names))


@pytest.mark.parametrize("form", ["object", "str (pandas' own text)", "arrow string, 3 chunks", "numpy U"])
@pytest.mark.parametrize(
    ("bad", "shown"),
    [("BUY", "'BUY'"), ("sel", "'sel'"), ("buyer", "'buyer'"), ("selling_!", "'selling_!'"), ("buy\0", None)],
)
def test_a_bad_name_is_an_error_naming_its_row(form, bad, shown):
    if form == "numpy U" and bad.endswith("\0"):
        pytest.skip("numpy's fixed-width text drops trailing NULs: 'buy\\0' is 'buy' there")
    names = _names(3_000)
    names[2_345] = bad
    names[2_900] = "nope"  # a second bad row: the first is named
    with pytest.raises(ValueError, match="trade row 2345: side ") as caught:
        side_codes(FORMS[form](names))
    if shown:
        assert shown in str(caught.value)


def test_a_null_is_an_error_naming_its_row():
    names = list(_names(1_000))
    names[600] = None
    with pytest.raises(ValueError, match="trade row 600: side None"):
        side_codes(_arrow(names, chunk=250))


def test_in_pieces_the_same_codes_as_at_once(monkeypatch):
    monkeypatch.setattr(sides, "PIECE", 1_000)
    names = _names(10_500)
    column = _arrow(names, chunk=3_700)  # chunks and pieces do not line up
    pieces = list(side_pieces(column, len(names)))
    assert [p[0] for p in pieces] == sorted(p[0] for p in pieces)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert pieces[0][0] == 0 and pieces[-1][1] == len(names)
    assert all(len(codes) == stop - start for start, stop, codes in pieces)
    assert np.array_equal(np.concatenate([p[2] for p in pieces]), _by_hand(names))


def test_in_pieces_a_bad_row_raises_where_its_piece_is_taken(monkeypatch):
    monkeypatch.setattr(sides, "PIECE", 1_000)
    names = _names(10_000)
    names[7_777] = "short"
    taken = []
    with pytest.raises(ValueError, match="trade row 7777: side 'short'"):
        for start, stop, codes in side_pieces(_arrow(names, chunk=3_000), len(names)):
            taken.append((start, stop))
            assert np.array_equal(codes, _by_hand(names[start:stop]))
    assert taken[-1][1] <= 7_777  # every piece before the bad row was good and handed out


def test_other_forms_come_as_one_piece():
    names = _names(2_000)
    assert [(a, b) for a, b, _ in side_pieces(pd.Series(names, dtype=object), 2_000)] == [(0, 2_000)]
