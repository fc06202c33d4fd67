"""Options chain rows (data_types/options_chain.py) from hand-built wire frames; see docs/DATA_TYPES.md."""

from helpers import NAN, T0, S, option_frame

from market_data_tick_handler.streaming_service.data_types import OptionsChainProcessor
from market_data_tick_handler.streaming_service.messages import record_message
from market_data_tick_handler.wire import decode_frame


def test_options_chain_rows():
    frame = decode_frame(
        option_frame(
            [(0, T0 + S, {}), (0, T0 + 2 * S, {"best_bid_iv": NAN}), (0, T0 + 3 * S, {"option_type": 0})]
        )
    )
    done = OptionsChainProcessor().process(frame)
    first, second = done.records
    assert (first.option_type, first.strike_price, first.underlying_index) == (
        "call",
        60_000.0,
        "BTC-27SEP24",
    )
    assert (first.best_bid_price, first.best_ask_iv, first.delta, first.theta) == (0.05, 50.1, 0.45, -60.2)
    assert record_message(first)["expiration"] == "2024-09-27T08:00:00.000000Z"
    assert second.best_bid_iv is None
    assert done.bad_rows == 1 and "row 2 (deribit:BTC-27SEP24-60000-C): option_type=0" in done.error
