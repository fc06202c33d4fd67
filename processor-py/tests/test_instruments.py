"""One instrument table per exchange (instrument_service/instrument_table.py), shared by the candle
engine, the gap tracker and the feature context. Slots and symbols are worked out by hand."""

from helpers import T0, S, book_frame, trade_frame

from market_data_tick_handler.streaming_service.instrument_service import Instruments, InstrumentTable
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler

TF = ("15s", "1m")


def test_a_table_numbers_instruments_in_the_order_they_come_and_only_grows():
    table = InstrumentTable("binance")
    grown: list[int] = []
    table.on_grow(grown.append)
    assert (table.slot("BTCUSDT"), table.slot("ETHUSDT"), table.slot("BTCUSDT")) == (0, 1, 0)
    assert table.symbols == ["BTC-USDT", "ETH-USDT"] and table.exchange_symbols == ["BTCUSDT", "ETHUSDT"]
    assert len(table) == 2 and grown == [16]  # room for 16 slots from the first
    # "" is a row of another exchange; a name not seen yet gets the next slot
    assert table.slots(["ETHUSDT", "", "XRPUSDT"]).tolist() == [1, -1, 2]
    for k in range(3, 17):
        table.slot(f"S{k}")
    assert len(table) == 17 and grown == [16, 32] and table.capacity == 32
    late: list[int] = []
    table.on_grow(late.append)  # a listener that comes later hears of the capacity at once
    assert late == [32]


def test_a_frames_symbol_table_on_the_tables_of_its_exchanges():
    instruments = Instruments()
    symbols = [["binance", "BTCUSDT"], ["deribit", "BTC-PERPETUAL"], ["binance", "ETHUSDT"]]
    got = instruments.of(symbols)
    assert got.names == ["BTC-USDT", "BTC-USD-PERP", "ETH-USDT"]
    binance, deribit = got.exchanges
    assert (binance.table.exchange, deribit.table.exchange) == ("binance", "deribit")
    assert binance.positions.tolist() == [0, 2] and binance.slots.tolist() == [0, 1]
    assert binance.slot_of.tolist() == [0, -1, 1]
    assert deribit.positions.tolist() == [1] and deribit.slots.tolist() == [0]
    assert deribit.slot_of.tolist() == [-1, 0, -1]
    assert instruments.of([list(p) for p in symbols]) is got  # remembered by its content
    assert instruments.table("binance") is binance.table


def test_the_engine_the_gaps_and_the_features_of_an_exchange_share_one_table():
    h = TickHandler(
        CandleSettings(timeframes=TF, grace_ms=0, hft_timeframes=("15s",), feature_groups=("book",))
    )
    both = (("binance", "ETHUSDT"), ("binance", "BTCUSDT"))
    # a book snapshot of ETH comes first: ETH is slot 0 everywhere, BTC slot 1
    h.handle_bytes(book_frame([(0, T0 + 1 * S, [(99.0, 1.0)], [(101.0, 1.0)])], seq=0, symbols=both))
    h.handle_bytes(
        trade_frame(
            [(1, T0 + 2 * S, 100.0, 1.0, "buy"), (0, T0 + 3 * S, 10.0, 1.0, "buy")], seq=1, symbols=both
        )
    )
    table = h.instruments.table("binance")
    engine = h.engines["binance"]
    assert engine.instruments is table and h.gaps.exchanges["binance"].table is table
    assert h.features.live["binance"].engine is engine
    assert table.exchange_symbols == ["ETHUSDT", "BTCUSDT"]
    out = h.handle_bytes(trade_frame([(1, T0 + 16 * S, 100.0, 1.0, "buy")], seq=2, symbols=both))
    # ETH's candle has ETH's book (bid 99, ask 101: a spread of 2 / 100 = 200 bps), BTC's none
    spreads = {c.exchange_symbol: c.hft_features["spread_bps"] for c in out.candles}
    assert spreads == {"ETHUSDT": 200.0, "BTCUSDT": None}


def test_an_instrument_only_the_engine_knows_is_not_watched_for_silence():
    h = TickHandler(CandleSettings(timeframes=TF, grace_ms=0))
    h.handle_bytes(trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy")], seq=0))
    h.engine("binance").slot("XRPUSDT")  # a warm-up's instrument, say: in the table, never subscribed
    result = h.handle_bytes(trade_frame([(0, T0 + 40 * S, 100.0, 1.0, "buy")], seq=1))
    # BTC was silent 39 s (over the 30 s default): one closed gap; XRP none
    assert [(g.exchange_symbol, g.reason, g.start, g.end) for g in result.records] == [
        ("BTCUSDT", "stale", T0 + 1 * S, T0 + 40 * S)
    ]
    h.gaps.frames_lost()
    assert [g.exchange_symbol for g in h.gaps.drain()] == ["BTCUSDT"]
