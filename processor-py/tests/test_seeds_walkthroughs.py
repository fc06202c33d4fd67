"""The seeds' instrument code runs as written (issue 17 item 5): walkthrough 2 as a script, walkthrough 7's
import block and its ``ExecutionService`` (min size check, rounding to tick, fee) against definitions
loaded from ccxt's market files, and walkthrough 11's integration tests. The code is taken from the seeds'
walkthrough guide itself, block by block, and run unchanged; nothing reaches the network:
``$MDTH_MARKETS_DIR`` (``live_instruments.markets_dir``) points the seeds' ``LiveInstrumentProvider()``
at the market files.

The expected values are read from the market files here (shared/notes/ccxt.md): binance BTC/USDT tick
0.01, min amount 1e-05, taker fee 0.001."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
SEEDS = SHARED / "seeds" / "001_b0489267966ac9be.txt"
MARKETS = SHARED / "data" / "ccxt-markets"
pytestmark = pytest.mark.skipif(
    not SEEDS.is_file() or not (MARKETS / "derived").is_dir(), reason="shared/seeds or ccxt-markets absent"
)


def walkthrough_blocks(number: int) -> list[str]:
    """The ```python blocks of walkthrough ``number`` of the seeds' guide, as written."""
    text = SEEDS.read_text()
    section = re.split(r"\n## Walkthrough \d+:", text)[number]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def spot_market() -> dict:
    markets = json.loads((MARKETS / "derived" / "binance.markets.ccxt-4.5.90.json").read_text())
    return markets["BTC/USDT"]


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("MDTH_MARKETS_DIR", str(MARKETS))


def test_walkthrough_2_as_a_script_prints_the_exchange_mappings(tmp_path):
    (block,) = walkthrough_blocks(2)
    script = tmp_path / "walkthrough_2.py"
    script.write_text(block)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    # Tardis id -> ccxt id (Tardis names OKX okex; ccxt has a class per Binance market family)
    for pair in ("binance → binance", "binance-futures → binanceusdm", "binance-delivery → binancecoinm",
                 "deribit → deribit", "okex → okx", "bybit → bybit"):  # fmt: skip
        assert pair in lines, (pair, run.stdout)
    mappings = [line for line in lines if " → " in line]
    total = next(line for line in lines if line.startswith("Total: "))
    assert total == f"Total: {len({line.split(' → ')[1] for line in mappings})} exchanges"
    assert "provider = LiveInstrumentProvider()" in run.stdout


async def test_walkthrough_7_execution_service_checks_rounds_and_prices_the_fee(offline):
    (block,) = walkthrough_blocks(7)
    names: dict = {}
    exec(compile(block, "walkthrough_7", "exec"), names)  # the import block and both classes
    features = names["FeaturesService"]()  # LiveInstrumentProvider() with no arguments
    assert features.instrument_provider is not None

    class Execution(names["ExecutionService"]):  # what the seeds leave to the service: its provider
        def __init__(self, provider) -> None:
            self.instrument_provider = provider
            self.orders: list[tuple] = []

        async def place_exchange_order(self, symbol, size, price, fee):
            self.orders.append((symbol, size, price, fee))
            return len(self.orders)

    market = spot_market()
    tick, minimum, taker = market["precision"]["price"], market["limits"]["amount"]["min"], market["taker"]
    assert (tick, minimum, taker) == (0.01, 1e-05, 0.001)
    async with names["LiveInstrumentProvider"]() as provider:
        service = Execution(provider)
        assert await service.place_order("BTC/USDT", 0.5, 67000.004) == 1
        assert await service.place_order("BTCUSDT", 0.25, 67000.016) == 2  # the native id too
        with pytest.raises(ValueError, match=r"Order size 1e-06 below minimum 1e-05"):
            await service.place_order("BTC-USDT", 0.000001, 67000.0)
    (s1, size1, price1, fee1), (s2, size2, price2, fee2) = service.orders
    assert (s1, size1, s2, size2) == ("BTC/USDT", 0.5, "BTCUSDT", 0.25)
    assert price1 == pytest.approx(67000.00, abs=1e-9) and price2 == pytest.approx(67000.02, abs=1e-9)
    assert fee1 == pytest.approx(0.5 * 67000.00 * taker) and fee2 == pytest.approx(0.25 * 67000.02 * taker)


async def test_walkthrough_11_integration_tests_pass_offline(offline):
    blocks = walkthrough_blocks(11)
    (block,) = [b for b in blocks if "class TestIntegration" in b]
    names: dict = {}
    exec(compile(block, "walkthrough_11", "exec"), names)
    tests = names["TestIntegration"]()
    await tests.test_data_type_routing()
    await tests.test_live_instruments()
    # and what its comment leaves out, offline: the instrument it would ask for
    async with names["LiveInstrumentProvider"]() as provider:
        instrument = await provider.get_instrument("binance", "BTC/USDT")
        assert instrument.tick_size == 0.01 > 0
        for exchange in ("binance", "deribit"):
            assert provider.stats["exchanges"][exchange]["last_error"] is None, provider.stats
