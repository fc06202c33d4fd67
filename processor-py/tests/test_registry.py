"""The data-type registry (data_types/registry.py), one line per type, and what is derived from it: the
configuration's ``data_types`` section, the router's tables, the wire order, the feature groups, the
tick types and the frame router's dispatch table. Expected values are written out from
docs/DATA_TYPES.md and proto/wire.json."""

import dataclasses

from market_data_tick_handler.config import BookSnapshotsConfig, DataTypeConfig, DataTypesConfig, GapsConfig
from market_data_tick_handler.streaming_service.data_types import DataTypeRouter, records
from market_data_tick_handler.streaming_service.data_types.registry import (
    BY_NAME,
    DATA_TYPES,
    FEATURE_GROUP_OF,
    FRAMES_OF,
    SUPPORTED_DATA_TYPES,
    TICK_TYPES,
    TYPES_OF_FRAME,
    WIRE_ORDER,
)
from market_data_tick_handler.streaming_service.tick_processor import TickHandler
from market_data_tick_handler.wire import load_schema

NAMES = (
    "trades", "book_snapshots", "liquidations", "derivative_ticker", "options_chain", "funding_rates",
    "gaps", "candles",
)  # fmt: skip


def test_every_type_once_in_the_order_the_router_lists_them():
    assert tuple(t.name for t in DATA_TYPES) == SUPPORTED_DATA_TYPES == NAMES
    assert DataTypeRouter().get_supported_data_types() == list(NAMES)


def test_each_types_record_says_its_data_type_and_the_router_makes_its_processor():
    router = DataTypeRouter()
    for t in DATA_TYPES:
        assert type(router.processor(t.name)) is t.processor
        assert t.processor.data_type == t.name
        if issubclass(t.record, records.Record):
            assert t.name == t.record.DATA_TYPE


def test_the_config_section_is_the_registrys_types_with_their_defaults():
    config = DataTypesConfig()
    assert config.names() == NAMES
    assert [f.name for f in dataclasses.fields(config)] == list(NAMES)
    classes = {f.name: f.type for f in dataclasses.fields(config)}
    assert classes["book_snapshots"] is BookSnapshotsConfig and classes["gaps"] is GapsConfig
    assert all(classes[n] is DataTypeConfig for n in NAMES if n not in ("book_snapshots", "gaps"))
    # the first source is the default; a source that is not tardis_realtime is a fallback
    assert config.liquidations == DataTypeConfig(
        source="trade_transformation", batch_timeout=900_000, fallback=True
    )
    assert config.trades == DataTypeConfig(source="tardis_realtime", batch_timeout=60_000, fallback=False)
    assert config.book_snapshots == BookSnapshotsConfig(batch_timeout=60_000, depth=25, interval_ms=100)
    assert config["gaps"] == GapsConfig(
        source="disconnect_and_stale_detection", batch_timeout=900_000, fallback=True, stale_after_ms=30_000
    )
    assert config.get("nope") is None
    assert DataTypesConfig(trades=DataTypeConfig(enabled=False)).trades.enabled is False
    assert BY_NAME["liquidations"].sources == ("trade_transformation", "tardis_realtime")


def test_the_wire_order_is_proto_wire_json_s_order_of_the_frames_types_are_made_from():
    assert WIRE_ORDER == ("trade", "book_snapshot", "derivative_ticker", "liquidation", "option_summary")
    frames = list(load_schema().frames)
    assert [frames.index(f) for f in WIRE_ORDER] == sorted(frames.index(f) for f in WIRE_ORDER)
    assert FRAMES_OF["gaps"] == () and FRAMES_OF["funding_rates"] == ("derivative_ticker",)


def test_feature_groups_and_the_types_each_frame_makes():
    assert list(FEATURE_GROUP_OF.items()) == [
        ("book_snapshots", "book"),
        ("derivative_ticker", "derivative"),
        ("liquidations", "liquidations"),
    ]
    assert TYPES_OF_FRAME == {
        "trade": ("trades", "candles"),
        "book_snapshot": ("book_snapshots",),
        "derivative_ticker": ("derivative_ticker", "funding_rates"),
        "liquidation": ("liquidations",),
        "option_summary": ("options_chain",),
    }


def test_a_tick_is_named_by_its_native_data_type_or_by_its_wire_frame():
    assert TICK_TYPES == {
        "trades": "trade", "trade": "trade",
        "book_snapshots": "book_snapshot", "book_snapshot": "book_snapshot",
        "liquidations": "liquidation", "liquidation": "liquidation",
        "derivative_ticker": "derivative_ticker",
        "options_chain": "option_summary", "option_summary": "option_summary",
    }  # fmt: skip


def test_the_frame_router_has_a_handler_for_every_frame_type_of_the_wire():
    h = TickHandler()
    assert set(h.handlers) == set(load_schema().frames)
