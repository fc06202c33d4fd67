"""Book snapshots (data_types/book_snapshots.py): records from hand-built wire frames, bad rows named
and counted. Every expected value is worked out by hand in the comments; see docs/DATA_TYPES.md."""

from helpers import T0, S, book_frame

from market_data_tick_handler.streaming_service.data_types import BookSnapshot, BookSnapshotProcessor
from market_data_tick_handler.streaming_service.messages import record_message
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler
from market_data_tick_handler.wire import decode_frame

TF = ("15s", "1m")


def test_book_snapshots_best_first_with_the_padding_removed():
    frame = decode_frame(
        book_frame(
            [
                (0, T0 + S, [(100.0, 1.0), (99.5, 2.0)], [(100.5, 0.5), (101.0, 0.25), (102.0, 3.0)]),
                (1, T0 + 2 * S, [], [(10.5, 4.0)]),  # an empty bid side
            ],
            symbols=(("binance", "BTCUSDT"), ("binance", "ETHUSDT")),
        )
    )
    done = BookSnapshotProcessor().process(frame)
    assert done.bad_rows == 0
    btc, eth = done.records
    assert btc == BookSnapshot(
        exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0 + S,
        local_timestamp=T0 + S + 7, depth=3, interval_ms=100, bids=((100.0, 1.0), (99.5, 2.0)),
        asks=((100.5, 0.5), (101.0, 0.25), (102.0, 3.0)),
    )  # fmt: skip
    assert (eth.symbol, eth.bids, eth.asks) == ("ETH-USDT", (), ((10.5, 4.0),))
    message = record_message(btc)
    # T0 = 2023-11-14T22:14:00Z; +1 s, and +7 µs for the receipt
    assert message["type"] == "book_snapshot"
    assert message["timestamp"] == "2023-11-14T22:14:01.000000Z"
    assert message["local_timestamp"] == "2023-11-14T22:14:01.000007Z"
    assert message["bids"] == [{"price": 100.0, "amount": 1.0}, {"price": 99.5, "amount": 2.0}]


def test_bad_book_rows_are_named_counted_and_the_good_rows_kept(caplog):
    h = TickHandler(CandleSettings(timeframes=TF, grace_ms=0))
    rows = [
        (0, T0 + 1 * S, [(100.0, 1.0)], [(101.0, 1.0)]),
        (0, T0 + 2 * S, [(100.0, 1.0), (100.5, 1.0)], [(101.0, 1.0)]),  # bids not best first
        (0, T0 + 3 * S, [(100.0, 1.0)], [(101.0, -2.0)]),  # negative amount
        (0, T0 + 4 * S, [(99.0, 1.0)], [(101.0, 1.0)]),
    ]
    result = h.handle_bytes(book_frame(rows, seq=7, depth=2))
    assert [r.timestamp for r in result.records] == [T0 + 1 * S, T0 + 4 * S]
    stats = h.get_stats()
    assert stats["bad_rows"] == {"book_snapshot": 2} and stats["counts"]["bad_book_snapshots"] == 2
    assert "book_snapshot frame seq=7 row 1 (binance:BTCUSDT): bid_price=[100.0, 100.5]" in caplog.text
    assert "2 bad row(s) in this frame dropped, the other 2 kept" in caplog.text
