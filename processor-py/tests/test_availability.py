"""The liquidation exchange lists: read from proto/exchanges.json, the file the Node ingester reads too
(ingest-node/test/availability.test.js checks the same file against tardis-dev's mappers)."""

import json
from pathlib import Path

import pytest

from market_data_tick_handler.streaming_service.data_types import availability
from market_data_tick_handler.streaming_service.data_types.availability import (
    FLAGGED_TRADES,
    LIQUIDATION_FEEDS,
    exchanges_path,
    read_liquidation_exchanges,
    unavailable_reason,
)

REPO_EXCHANGES = Path(__file__).resolve().parents[2] / "proto" / "exchanges.json"


def test_the_lists_are_the_ones_in_proto_exchanges_json():
    assert exchanges_path().resolve() == REPO_EXCHANGES.resolve()
    raw = json.loads(REPO_EXCHANGES.read_text())["liquidations"]
    assert frozenset(raw["native_feed"]) == LIQUIDATION_FEEDS
    assert frozenset(raw["from_trades"]) == FLAGGED_TRADES
    assert "deribit" in FLAGGED_TRADES and {"bitmex", "binance-futures"} <= LIQUIDATION_FEEDS
    assert not FLAGGED_TRADES & LIQUIDATION_FEEDS


def test_read_not_copied(tmp_path, monkeypatch):
    """Another file gives other lists; the module names no exchange of its own."""
    other = tmp_path / "exchanges.json"
    other.write_text(json.dumps({"liquidations": {"native_feed": ["y-feed"], "from_trades": ["x-trades"]}}))
    got = read_liquidation_exchanges(other)
    assert (got.native_feed, got.from_trades) == (frozenset({"y-feed"}), frozenset({"x-trades"}))
    monkeypatch.setenv("MDTH_EXCHANGES_JSON", str(other))
    assert exchanges_path() == other
    assert read_liquidation_exchanges().from_trades == frozenset({"x-trades"})
    code = Path(availability.__file__).read_text()
    for exchange in ("huobi-dm-swap", "okex-futures", "bitfinex-derivatives", "bybit", "binance-delivery"):
        assert f'"{exchange}"' not in code, exchange


def test_a_malformed_list_names_the_file_and_key(tmp_path):
    bad = tmp_path / "exchanges.json"
    bad.write_text(json.dumps({"liquidations": {"native_feed": "bitmex", "from_trades": []}}))
    with pytest.raises(ValueError, match=r"exchanges\.json: liquidations\.native_feed must be a list"):
        read_liquidation_exchanges(bad)


@pytest.mark.parametrize("exchange", sorted(LIQUIDATION_FEEDS))
def test_every_feed_exchange_has_liquidations_from_its_feed(exchange):
    assert unavailable_reason("liquidations", "tardis_realtime", exchange) is None
    assert unavailable_reason("liquidations", "trade_transformation", exchange) is not None


@pytest.mark.parametrize("exchange", sorted(FLAGGED_TRADES))
def test_every_flagged_trades_exchange_has_liquidations_from_its_trades(exchange):
    assert unavailable_reason("liquidations", "trade_transformation", exchange) is None
    assert unavailable_reason("liquidations", "tardis_realtime", exchange) is not None
