"""The wire format: this side's encoder, and both sides' golden vectors, against hand-written cases."""

import math
import struct

import numpy as np
import pytest

from market_data_tick_handler.wire import WireError, decode_frame, encode_frame, frame_rows
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
