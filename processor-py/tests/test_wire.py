"""The wire format: this side's encoder, and both sides' golden vectors, against hand-written cases."""

import json
import math
import struct

import numpy as np
import pytest

from market_data_tick_handler.wire import WireError, decode_frame, encode_frame, frame_rows
from market_data_tick_handler.wire.schema import load_schema, schema_path
from market_data_tick_handler.wire.vectors import cases_path, encode_case, load_cases

CASES = load_cases()
VECTORS = cases_path().parent


def _same(actual, expected):
    if isinstance(expected, float):
        return isinstance(actual, float) and (
            actual == expected or (math.isnan(actual) and math.isnan(expected))
        )
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(
            _same(a, e) for a, e in zip(actual, expected, strict=True)
        )
    return actual == expected


def _check(frame, case):
    for key, value in case["header"].items():
        assert frame.header[key] == value, f"header {key}"
    assert frame.n == len(case["rows"])
    rows = frame_rows(frame)
    for i, (got, want) in enumerate(zip(rows, case["rows"], strict=True)):
        for key, value in want.items():
            assert _same(got[key], value), f"row {i} {key}: {got[key]!r} != {value!r}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_python_round_trip(name):
    _check(decode_frame(encode_case(CASES[name])), CASES[name])


@pytest.mark.parametrize("side", ["python", "node"])
def test_every_case_has_a_vector(side):
    present = {p.stem for p in (VECTORS / side).glob("*.bin")}
    assert present >= set(CASES), f"vectors/{side} lacks {sorted(set(CASES) - present)}"


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("side", ["python", "node"])
def test_golden_vectors_decode(side, name):
    path = VECTORS / side / f"{name}.bin"
    assert path.is_file(), f"missing {path}: run the {side} vector writer"
    _check(decode_frame(path.read_bytes()), CASES[name])


def test_layout_is_aligned_and_numeric_columns_are_zero_copy():
    data = encode_case(CASES["trade_two_symbols"])
    assert data[:4] == b"MDTW" and struct.unpack_from("<H", data, 4)[0] == 1
    assert len(data) % 8 == 0
    frame = decode_frame(data)
    assert frame.columns["price"].base is not None  # a view on the buffer, not a copy
    assert frame.columns["timestamp"].dtype == np.dtype("<i8")


def _trade(n=2):
    header = {
        "type": "trade",
        "seq": 1,
        "session": "t",
        "symbols": [["binance", "BTCUSDT"]],
        "recv_mono_us": 0,
        "sent_mono_us": 0,
    }
    cols = {
        "sym": [0] * n,
        "timestamp": [1] * n,
        "local_timestamp": [2] * n,
        "price": [1.0] * n,
        "amount": [1.0] * n,
        "side": [1] * n,
        "id": ["a"] * n,
    }
    return encode_frame(header, cols)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[:4] + struct.pack("<H", 2) + b[6:], "wire version 2"),
        (lambda b: b[:40], "runs past the frame end"),
        (lambda b: b[:8], "shorter than"),
        (lambda b: b[: len(b) - 16], "past the frame end"),
    ],
)
def test_bad_frames_name_the_problem(mutate, message):
    with pytest.raises(WireError, match=message):
        decode_frame(mutate(_trade()))


def test_unknown_type_is_rejected():
    with pytest.raises(WireError, match="unknown frame type"):
        encode_frame({"type": "nope"}, {})


def test_tardis_names_are_read_from_wire_json():
    """Each column of a frame made from tardis-dev messages names the message field it is read from
    (tardis-dev's types.ts spells them); the Node ingester's writers use the same names."""
    frames = load_schema().frames
    names = {t: {c.name: c.tardis for c in f.columns} for t, f in frames.items()}
    assert names["trade"] == {
        "sym": None, "timestamp": "timestamp", "local_timestamp": "localTimestamp", "price": "price",
        "amount": "amount", "side": "side", "id": "id",
    }  # fmt: skip
    assert names["liquidation"] == names["trade"]
    option = names["option_summary"]
    assert (option["expiration"], option["best_bid_iv"], option["best_ask_iv"], option["mark_iv"]) == (
        "expirationDate", "bestBidIV", "bestAskIV", "markIV",
    )  # fmt: skip
    assert (option["strike_price"], option["underlying_index"]) == ("strikePrice", "underlyingIndex")
    ticker = names["derivative_ticker"]
    assert (ticker["funding_rate"], ticker["funding_timestamp"]) == ("fundingRate", "fundingTimestamp")
    assert names["book_snapshot"]["bid_price"] == "bids[].price"
    assert names["book_snapshot"]["ask_amount"] == "asks[].amount"
    assert frames["book_snapshot"].tardis["interval_ms"] == "interval"
    assert names["disconnect"] == {"sym": None, "local_timestamp": "localTimestamp"}
    assert frames["start"].tardis == frames["ledger"].tardis == frames["end"].tardis == {}
    raw = json.loads(schema_path().read_text())
    for t, f in frames.items():
        assert f.tardis == raw["frames"][t].get("tardis", {}), t
        if f.tardis:
            assert all(c.tardis is not None for c in f.columns if c.name != "sym"), t


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f["trade"]["tardis"].update(nope="x"), r"frames\.trade\.tardis\.nope: not a column"),
        (lambda f: f["trade"]["tardis"].update(price="pri ce"), "is not a field name"),
    ],
)
def test_bad_tardis_names_are_rejected(tmp_path, monkeypatch, edit, message):
    raw = json.loads(schema_path().read_text())
    edit(raw["frames"])
    path = tmp_path / "wire.json"
    path.write_text(json.dumps(raw))
    monkeypatch.setenv("MDTH_WIRE_SCHEMA", str(path))
    load_schema.cache_clear()
    try:
        with pytest.raises(ValueError, match=message):
            load_schema()
    finally:
        monkeypatch.delenv("MDTH_WIRE_SCHEMA")
        load_schema.cache_clear()
