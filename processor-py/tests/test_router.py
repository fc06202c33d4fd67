"""DataTypeRouter (data_types/router.py): the supported types, their configs, processors and sources,
what the ingester must stream per exchange, unavailable types and the start frame; see
docs/DATA_TYPES.md."""

import asyncio
import logging
from pathlib import Path

import pytest
from helpers import T0, S, control_frame, trade_frame

from market_data_tick_handler.config import DataTypeConfig, DataTypesConfig, config_from_dict, load_config
from market_data_tick_handler.streaming_service import DataTypeRouter
from market_data_tick_handler.streaming_service.ingest import ingester_args
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler
from market_data_tick_handler.streaming_service.tick_processor.frame_router import ExchangeAsk

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
    assert h.features.live["binance"].features.groups == ("book",)


def test_with_several_exchanges_the_start_frame_is_checked_and_the_features_narrowed_per_exchange(caplog):
    # binance: every enabled type it can have (frames trade, book_snapshot, derivative_ticker,
    # option_summary; feature groups book and derivative: liquidations from trades are not binance's);
    # deribit: its data_types [trades, derivative_ticker] only (ingest.exchanges.deribit.data_types)
    asked = {"deribit": ExchangeAsk(("trade", "derivative_ticker"), ("derivative",))}
    h = TickHandler(
        CandleSettings(
            timeframes=TF, hft_timeframes=("15s",), feature_groups=("book", "derivative"), asked=asked
        )
    )
    assert h.feature_groups_of == {"deribit": ("derivative",)}
    start = control_frame(
        "start", 0, source="replay", exchanges=["binance", "deribit"], speed="max",
        data_types=["trade", "book_snapshot", "derivative_ticker"],  # the union: deribit streams tickers
        unavailable={"derivative_ticker": "binance: no such channel", "option_summary": "binance: none"},
        streams={
            "binance": {
                "data_types": ["trade", "book_snapshot"],
                "unavailable": {"derivative_ticker": "no such channel", "option_summary": "none"},
            },
            "deribit": {"data_types": ["trade", "derivative_ticker"], "unavailable": {}},
        },
    )  # fmt: skip
    h.handle_bytes(start)
    # a type one exchange misses is said of it, though another exchange streams it
    assert (
        "derivative_ticker not available for binance: the ingester does not stream derivative_ticker for it"
        " (no such channel)" in caplog.text
    )
    assert "options_chain not available for binance" in caplog.text
    # deribit was not asked for its book, liquidations or options: nothing is missing there
    assert "for deribit" not in caplog.text
    assert h.feature_groups_of == {"binance": ("book",), "deribit": ("derivative",)}
    assert h.settings.feature_groups == ("book", "derivative")  # every exchange's
    symbols = (("binance", "BTCUSDT"), ("deribit", "BTC-PERPETUAL"))
    h.handle_bytes(
        trade_frame([(0, T0 + S, 100.0, 1.0, "buy"), (1, T0 + S, 60_000.0, 10.0, "sell")], 1, symbols=symbols)
    )
    assert h.features.live["binance"].features.groups == ("book",)
    assert h.features.live["deribit"].features.groups == ("derivative",)


# -- routing worked out from docs/DATA_TYPES.md's tables ---------------------------------------------------
ALL_TYPES = (
    "trades", "book_snapshots", "liquidations", "derivative_ticker", "options_chain", "funding_rates",
    "gaps", "candles",
)  # fmt: skip


def _router(enabled: tuple[str, ...] = ALL_TYPES, **sections: dict) -> DataTypeRouter:
    """A router on the config ``data_types`` with only ``enabled`` on (``sections``: more keys per type)."""
    raw = {t: {"enabled": t in enabled, **sections.get(t, {})} for t in ALL_TYPES}
    return DataTypeRouter(config_from_dict({"data_types": raw}).data_types)


# the table's "made from (wire frame)" column; gaps need no frame of their own (disconnects always come)
MADE_FROM = {
    "trades": ("trade",),
    "book_snapshots": ("book_snapshot",),
    "liquidations": ("liquidation",),
    "derivative_ticker": ("derivative_ticker",),
    "options_chain": ("option_summary",),
    "funding_rates": ("derivative_ticker",),
    "gaps": (),
    "candles": ("trade",),
}


@pytest.mark.parametrize("data_type", ALL_TYPES)
def test_one_type_enabled_asks_the_ingester_for_the_frames_it_is_made_from(data_type):
    router = _router((data_type,))
    assert router.enabled_data_types() == [data_type]
    assert [t for t in ALL_TYPES if router.enabled(t)] == [data_type]
    assert router.ingester_data_types() == MADE_FROM[data_type]
    # deribit can have all of them (liquidations from its flagged trades)
    assert router.ingester_data_types("deribit") == MADE_FROM[data_type]


def test_a_frame_is_streamed_while_any_enabled_type_is_made_from_it():
    assert _router(("candles", "funding_rates")).ingester_data_types() == ("trade", "derivative_ticker")
    assert _router(("trades", "candles", "derivative_ticker")).ingester_data_types() == (
        "trade",
        "derivative_ticker",
    )
    # every type but trades and candles: no trade frames at all
    no_trades = tuple(t for t in ALL_TYPES if t not in ("trades", "candles"))
    assert _router(no_trades).ingester_data_types() == (
        "book_snapshot",
        "derivative_ticker",
        "liquidation",
        "option_summary",
    )
    assert _router(()).enabled_data_types() == [] and _router(()).ingester_data_types() == ()


NO_FLAG = "its trades carry no liquidation flag; deribit's do (and cryptofacilities', dydx-v4's, ftx's)"
HAS_FEED = " (it has a liquidation feed: set data_types.liquidations.source: tardis_realtime)"
FLAGS = " (its trades flag liquidations: set data_types.liquidations.source: trade_transformation)"


FROM_TRADES = "liquidations (trade_transformation) not available for {}: " + NO_FLAG
FROM_FEED = "liquidations not available for {}: it has no liquidation feed"


@pytest.mark.parametrize(
    ("source", "exchange", "reason"),
    [
        # from trades: the four exchanges whose trades are flagged (docs/DATA_TYPES.md "Which exchange ...")
        ("trade_transformation", "deribit", None),
        ("trade_transformation", "cryptofacilities", None),
        ("trade_transformation", "dydx-v4", None),
        ("trade_transformation", "ftx", None),
        ("trade_transformation", "coinbase", FROM_TRADES.format("coinbase")),
        ("trade_transformation", "bybit", FROM_TRADES.format("bybit") + HAS_FEED),
        (
            "trade_transformation",
            "huobi-dm-linear-swap",
            FROM_TRADES.format("huobi-dm-linear-swap") + HAS_FEED,
        ),
        # the exchange's own feed (native: no source in the label)
        ("tardis_realtime", "bitmex", None),
        ("tardis_realtime", "okex-swap", None),
        ("tardis_realtime", "binance-delivery", None),
        ("tardis_realtime", "coinbase", FROM_FEED.format("coinbase")),
        ("tardis_realtime", "deribit", FROM_FEED.format("deribit") + FLAGS),
    ],
)
def test_liquidations_are_unavailable_where_their_source_does_not_exist_and_the_reason_says_why(
    source, exchange, reason
):
    router = _router(liquidations={"source": source})
    assert router.unavailable(exchange) == ({} if reason is None else {"liquidations": reason})
    asked = router.ingester_data_types(exchange)
    # trades make the candles; every other type is the ingester's to say (check_start)
    if reason is None:
        assert asked == ("trade", "book_snapshot", "derivative_ticker", "liquidation", "option_summary")
    else:
        assert asked == ("trade", "book_snapshot", "derivative_ticker", "option_summary")
    groups = router.feature_groups(exchange)
    assert groups == (("book", "derivative", "liquidations") if reason is None else ("book", "derivative"))


def test_a_disabled_type_is_never_unavailable_and_feeds_no_feature_group():
    router = _router(tuple(t for t in ALL_TYPES if t not in ("liquidations", "book_snapshots")))
    assert router.unavailable("coinbase") == {}
    assert router.feature_groups("coinbase") == ("derivative",)
    assert router.feature_groups() == ("derivative",)


def test_check_start_names_each_enabled_type_whose_frames_were_not_streamed_with_the_ingesters_reason(caplog):
    router = _router()
    with caplog.at_level(logging.WARNING):
        assert (
            router.check_start(
                ["deribit"], ["trade", "book_snapshot", "derivative_ticker", "liquidation", "option_summary"]
            )
            == {}
        )
    assert caplog.records == []
    with caplog.at_level(logging.WARNING):
        missing = router.check_start(
            ["deribit"],
            ["trade", "derivative_ticker"],
            {"book_snapshot": "no depth snapshot in the recording"},
        )
    not_streamed = "{} not available for deribit: the ingester does not stream {} for it"
    assert missing == {
        "book_snapshots": not_streamed.format("book_snapshots", "book_snapshot")
        + " (no depth snapshot in the recording)",
        "liquidations": not_streamed.format("liquidations (trade_transformation)", "liquidation"),
        "options_chain": not_streamed.format("options_chain", "option_summary"),
    }
    assert sorted(r.getMessage() for r in caplog.records) == sorted(missing.values())
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_check_start_says_nothing_of_disabled_types():
    router = _router(("trades", "candles", "gaps"))
    assert router.check_start(["binance"], ["trade"]) == {}
    # and a type's frames that were not asked for (liquidations on binance: unavailable before the start)
    assert _router(("trades", "liquidations")).check_start(["binance"], ["trade"]) == {}
