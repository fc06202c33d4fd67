"""TickHandler's public API: process_tick on every data type, get_stats and drops of disabled types."""

from helpers import T0, S, book_frame, trade_frame

from market_data_tick_handler.config import DataTypesConfig
from market_data_tick_handler.streaming_service import DataTypeRouter, LiveCandleProcessor
from market_data_tick_handler.streaming_service.messages import record_message
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler

TF = ("15s", "1m")


async def test_process_tick_takes_every_data_type():
    h = TickHandler()
    trade = {
        "symbol": "BTC-USDT", "exchange": "binance", "timestamp": "2024-10-25T12:51:00.500000+00:00",
        "type": "trades", "price": 67000.0, "amount": 0.1, "side": "buy",
    }  # fmt: skip
    assert await h.process_tick(trade) is True
    book = {
        "type": "book_snapshots", "exchange": "binance", "symbol": "BTC-USDT", "depth": 3, "interval": 100,
        "timestamp": "2024-10-25T12:51:00.600000Z", "localTimestamp": "2024-10-25T12:51:00.601000Z",
        "bids": [{"price": 67000.0, "amount": 1.5}, {"price": 66999.5, "amount": 2.0}],
        "asks": [{"price": 67000.5, "amount": 0.5}],
    }  # fmt: skip
    assert await h.process_tick(book) is True
    (snapshot,) = h.last_result.records
    assert (snapshot.bids, snapshot.asks, snapshot.depth) == (
        ((67000.0, 1.5), (66999.5, 2.0)),
        ((67000.5, 0.5),),
        3,
    )
    assert record_message(snapshot)["local_timestamp"] == "2024-10-25T12:51:00.601000Z"
    ticker = {
        "type": "derivative_ticker", "exchange": "binance-futures", "symbol": "BTC-USDT-PERP",
        "timestamp": "2024-10-25T12:51:01.000000Z", "lastPrice": 67010.0, "openInterest": 80_000.0,
        "fundingRate": 0.0001, "fundingTimestamp": "2024-10-25T16:00:00.000Z", "indexPrice": 67005.0,
        "markPrice": 67008.0, "predictedFundingRate": None,
    }  # fmt: skip
    assert await h.process_tick(ticker) is True
    tick_record, funding = h.last_result.records
    assert (tick_record.exchange_symbol, tick_record.funding_timestamp) == ("BTCUSDT", 1_729_872_000_000_000)
    assert (funding.funding_rate, funding.predicted_funding_rate) == (0.0001, None)
    liquidation = {
        "type": "liquidations", "exchange": "deribit", "symbol": "BTC-PERPETUAL",
        "timestamp": 1_729_860_661_000_000,
        "price": 67000.0, "amount": 1000.0, "side": "sell", "id": "x1",
    }  # fmt: skip
    assert await h.process_tick(liquidation) is True
    assert [(r.side, r.id, r.symbol) for r in h.last_result.records] == [("sell", "x1", "BTC-USD-PERP")]
    option = {
        "type": "options_chain", "exchange": "deribit", "symbol": "BTC-27SEP24-60000-C",
        "timestamp": "2024-10-25T12:51:02Z", "optionType": "put", "strikePrice": 60000,
        "expirationDate": "2024-09-27T08:00:00.000Z", "bestBidPrice": 0.05, "bestBidIV": 48.5, "markIV": 49.0,
        "delta": -0.55, "underlyingIndex": "BTC-27SEP24", "underlyingPrice": 58000,
    }  # fmt: skip
    assert await h.process_tick(option) is True
    (opt,) = h.last_result.records
    assert (opt.option_type, opt.strike_price, opt.best_bid_iv, opt.mark_iv, opt.delta) == (
        "put",
        60000.0,
        48.5,
        49.0,
        -0.55,
    )
    assert (opt.expiration, opt.best_ask_price, opt.underlying_index) == (
        1_727_424_000_000_000,
        None,
        "BTC-27SEP24",
    )
    assert await h.process_tick({**book, "bids": [{"price": -1, "amount": 1}]}) is False
    assert await h.process_tick({**trade, "type": "quotes"}) is False
    stats = h.get_stats()
    assert stats["ticks_by_type"] == {
        "trade": 1, "book_snapshot": 2, "derivative_ticker": 1, "liquidation": 1, "option_summary": 1,
    }  # fmt: skip
    assert stats["ticks_by_symbol"]["binance:BTCUSDT"] == {"trade": 1, "book_snapshot": 2}
    assert stats["records_by_type"] == {
        "book_snapshots": 1, "derivative_ticker": 1, "funding_rates": 1, "liquidations": 1,
        "options_chain": 1,
    }  # fmt: skip
    assert stats["counts"]["bad_book_snapshots"] == 1 and stats["counts"]["bad_ticks"] == 1


def test_get_stats_shape_and_a_candle_processor_s_own_stats():
    h = TickHandler(CandleSettings(timeframes=TF, grace_ms=0))
    h.handle_bytes(trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy"), (0, T0 + 16 * S, 100.0, 1.0, "buy")]))
    h.handle_bytes(trade_frame([(0, T0 + 2 * S, 100.0, 1.0, "buy")], seq=1))  # late: its bucket closed
    h.handle_bytes(book_frame([(0, T0 + 17 * S, [(99.0, 1.0)], [(101.0, 1.0)])], seq=2))
    stats = h.get_stats()
    assert set(stats) >= {
        "counts", "ticks_by_type", "ticks_by_symbol", "records_by_type", "bad_rows", "drops", "late_ticks",
        "gaps", "engines", "recent_errors",
    }  # fmt: skip
    assert stats["ticks_by_type"] == {"trade": 3, "book_snapshot": 1}
    assert (stats["late_ticks"], stats["drops"]["late"], stats["drops"]["bad_rows"]) == (1, 1, 0)
    assert stats["gaps"] == {
        "disconnect": 0,
        "stale": 0,
        "frames_lost": 0,
        "ingester_exit": 0,
        "processor_restart": 0,
        "journal_missing": 0,
        "open": 0,
    }
    p = h.engines["binance"].processors["BTCUSDT"]
    mine = p.get_stats()
    assert mine["ticks_by_type"] == {"trade": 3, "book_snapshot": 1}
    assert (mine["late_ticks"], mine["drops"]["late"], mine["gaps"], mine["trades"]) == (1, 1, 0, 3)
    alone = LiveCandleProcessor("BTC-USDT").get_stats()  # one on its own (docs/DATA_TYPES.md "Monitoring")
    assert alone["ticks_by_type"] == {"trade": 0} and alone["drops"] == {
        "late": 0,
        "late_too_old": 0,
        "ahead": 0,
        "jump": 0,
    }


def test_disabled_types_are_counted_as_drops():
    router = DataTypeRouter(
        DataTypesConfig(book_snapshots=DataTypesConfig().book_snapshots.__class__(enabled=False))
    )
    h = TickHandler(CandleSettings(timeframes=TF), router=router)
    result = h.handle_bytes(book_frame([(0, T0 + S, [(99.0, 1.0)], [(101.0, 1.0)])]))
    assert result.records == [] and h.get_stats()["drops"]["book_snapshots_disabled"] == 1
