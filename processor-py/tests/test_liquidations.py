"""Liquidations (data_types/liquidations.py) from hand-built wire frames; see docs/DATA_TYPES.md."""

from helpers import T0, S, liquidation_frame

from market_data_tick_handler.streaming_service.data_types import LiquidationProcessor
from market_data_tick_handler.wire import decode_frame


def test_liquidations_keep_side_price_amount_and_id():
    frame = decode_frame(
        liquidation_frame(
            [
                (0, T0 + S, 36_500.0, 1200.0, 1, "liq-1"),  # buy: a short was liquidated
                (0, T0 + 2 * S, 36_400.0, 0.0, 2, "liq-2"),  # amount 0: bad
                (0, T0 + 3 * S, 36_300.0, 800.0, 2, "liq-3"),
            ]
        )
    )
    done = LiquidationProcessor().process(frame)
    assert [(r.side, r.price, r.amount, r.id) for r in done.records] == [
        ("buy", 36_500.0, 1200.0, "liq-1"),
        ("sell", 36_300.0, 800.0, "liq-3"),
    ]
    assert done.records[0].symbol == "BTC-USD-PERP"  # deribit BTC-PERPETUAL
    assert done.bad_rows == 1 and "row 1 (deribit:BTC-PERPETUAL): amount=0.0" in done.error
