"""DataTypeRouter (data_types/router.py): the supported types, their configs, processors and sources,
what the ingester must stream per exchange, unavailable types and the start frame; see
docs/DATA_TYPES.md."""

import asyncio
import logging
from pathlib import Path

import pytest
from helpers import T0, S, control_frame, trade_frame

from market_data_tick_handler.config import DataTypeConfig, DataTypesConfig, load_config
from market_data_tick_handler.streaming_service import DataTypeRouter
from market_data_tick_handler.streaming_service.ingest import ingester_args
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler

TF = ("15s", "1m")
SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "001_b0489267966ac9be.txt"
#: the table the supported-types snippet below prints, line by line as the project's seed document (outside
#: the repository) gives it (one line has two trailing blanks); docs/DATA_TYPES.md lists the same types
SUPPORTED_TYPES_TABLE = (
    "📊 SUPPORTED DATA TYPES:",
    "========================================",
    "1. ✅ NATIVE trades",
    "2. ✅ NATIVE book_snapshots  ",
    "3. 🔄 FALLBACK liquidations",
    "4. ✅ NATIVE derivative_ticker",
    "5. ✅ NATIVE options_chain",
    "6. 🔄 FALLBACK funding_rates",
    "7. 🔄 FALLBACK gaps",
    "8. 🔄 FALLBACK candles",
    "",
    "Total: 8 data types supported",
)


def test_the_supported_types_snippet_prints_the_eight_types_native_or_fallback(capsys):
    async def show_data_types():
        router = DataTypeRouter()

        print("📊 SUPPORTED DATA TYPES:")
        print("=" * 40)

        # Show all 8 data types
        all_types = router.get_supported_data_types()
        for i, data_type in enumerate(all_types, 1):
            config = router.get_config(data_type)
            status = "🔄 FALLBACK" if config and config.fallback else "✅ NATIVE"
            print(f"{i}. {status} {data_type}")

        print(f"\nTotal: {len(all_types)} data types supported")

    asyncio.run(show_data_types())
    printed = capsys.readouterr().out
    if SEEDS.is_file():  # the copy above is the seed document's text, where that document is at hand
        text = SEEDS.read_text().split("## Walkthrough 1:")[1].split("**Expected Output**:\n```\n")[1]
        assert tuple(text.split("\n```")[0].splitlines()) == SUPPORTED_TYPES_TABLE
    assert [line.rstrip() for line in printed.splitlines()] == [
        line.rstrip() for line in SUPPORTED_TYPES_TABLE
    ]


async def test_router_configs_processors_and_sources():
    router = DataTypeRouter()
    sources = {
        t: (router.get_config(t).source, router.get_config(t).batch_timeout)
        for t in router.get_supported_data_types()
    }
    assert sources == {
        "trades": ("tardis_realtime", 60_000),
        "book_snapshots": ("tardis_realtime", 60_000),
        "liquidations": ("trade_transformation", 900_000),
        "derivative_ticker": ("tardis_realtime", 900_000),
        "options_chain": ("tardis_realtime", 900_000),
        "funding_rates": ("derivative_ticker_extraction", 900_000),
        "gaps": ("disconnect_and_stale_detection", 900_000),
        "candles": ("trade_aggregation", 60_000),
    }
    assert router.get_config("nope") is None
    kinds = {t: type(await router.get_processor(t)).__name__ for t in router.get_supported_data_types()}
    assert kinds == {
        "trades": "TradeProcessor",
        "book_snapshots": "BookSnapshotProcessor",
        "liquidations": "LiquidationProcessor",
        "derivative_ticker": "DerivativeTickerProcessor",
        "options_chain": "OptionsChainProcessor",
        "funding_rates": "FundingRateProcessor",
        "gaps": "GapProcessor",
        "candles": "CandlesProcessor",
    }
    assert await router.get_processor("liquidations") is await router.get_processor("liquidations")
    with pytest.raises(ValueError, match="unknown data type 'nope'"):
        await router.get_processor("nope")


def test_router_ingester_data_types_and_availability_warnings(caplog):
    router = DataTypeRouter()
    assert router.ingester_data_types() == (
        "trade",
        "book_snapshot",
        "derivative_ticker",
        "liquidation",
        "option_summary",
    )
    # liquidations from trades: deribit's (and three others') only; the rest is the ingester's to say
    assert router.ingester_data_types("binance") == (
        "trade", "book_snapshot", "derivative_ticker", "option_summary"
    )  # fmt: skip
    assert router.ingester_data_types("deribit") == (
        "trade", "book_snapshot", "derivative_ticker", "liquidation", "option_summary"
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        messages = router.warn_unavailable(["binance"])
    assert messages == [
        "liquidations (trade_transformation) not available for binance:"
        " its trades carry no liquidation flag; deribit's do (and cryptofacilities', dydx-v4's, ftx's)"
    ]
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    futures = router.unavailable("binance-futures")["liquidations"]
    assert futures.endswith(
        "(it has a liquidation feed: set data_types.liquidations.source: tardis_realtime)"
    )
    # the ingester's start frame lists what tardis-dev can stream for binance (spot): fewer than asked for
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        missing = router.check_start(["binance"], ["trade", "book_snapshot"])
    assert missing == {
        "derivative_ticker": "derivative_ticker not available for binance:"
        " the ingester does not stream derivative_ticker for it",
        "options_chain": "options_chain not available for binance:"
        " the ingester does not stream option_summary for it",
        "funding_rates": "funding_rates (derivative_ticker_extraction) not available for binance:"
        " the ingester does not stream derivative_ticker for it",
    }
    assert len(caplog.records) == 3
    # funding rates alone still need derivative tickers; a native liquidation feed with tardis_realtime
    only = DataTypeRouter(
        DataTypesConfig(
            derivative_ticker=DataTypeConfig(enabled=False),
            book_snapshots=DataTypesConfig().book_snapshots.__class__(enabled=False),
            options_chain=DataTypeConfig(enabled=False),
            liquidations=DataTypeConfig(source="tardis_realtime", batch_timeout=900_000),
        )
    )
    assert only.ingester_data_types("bitmex") == ("trade", "derivative_ticker", "liquidation")
    assert only.feature_groups("bitmex") == ("liquidations",)
    assert only.unavailable("deribit")["liquidations"].startswith(
        "liquidations not available for deribit: it has no liquidation feed (its trades flag liquidations"
    )
    args = ingester_args(load_config(None).ingest, "ipc:///x", only.ingester_data_types("bitmex"), 25, 100)
    assert args[args.index("--data-types") + 1] == "trade,derivative_ticker,liquidation"
    assert args[args.index("--book-depth") + 1 : args.index("--book-depth") + 4] == [
        "25",
        "--book-interval-ms",
        "100",
    ]


def test_the_start_frame_leaves_out_the_features_of_types_not_streamed(caplog):
    h = TickHandler(
        CandleSettings(
            timeframes=TF, hft_timeframes=("15s",), feature_groups=("book", "derivative", "liquidations")
        )
    )
    start = control_frame(
        "start", 0, source="replay", exchanges=["binance"], data_types=["trade", "book_snapshot"], speed="max"
    )
    h.handle_bytes(start)
    # liquidations from trades are not available on binance, and it streams no derivative tickers
    assert h.settings.feature_groups == ("book",)
    assert "derivative_ticker not available for binance: the ingester does not stream derivative_ticker" in (
        caplog.text
    )
    h.handle_bytes(trade_frame([(0, T0 + S, 100.0, 1.0, "buy")], seq=1))
    assert h.features["binance"].features.groups == ("book",)
