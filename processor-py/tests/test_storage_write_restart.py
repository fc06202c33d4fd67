"""A batch made by an earlier process (carried by a checkpoint, kept by the spill) against the real
BigQuery endpoint (bqemulator): it goes to its own committed stream at its own offset first, so one that
landed before the restart is not written twice, and one that did not lands once."""

import pickle
import uuid

from market_data_tick_handler.config import BigQueryConfig, EmulatorConfig
from market_data_tick_handler.streaming_service import CandleBatch
from market_data_tick_handler.streaming_service.bigquery_client import RowBatch, candle_tables
from market_data_tick_handler.streaming_service.bigquery_client.storage_write import StorageWriteSink
from market_data_tick_handler.streaming_service.candle_processor import Candle, Stamps
from support.bigquery import client, query

T_IN = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z
MINUTE = 60_000_000


def _batch(sink: StorageWriteSink, spec, start: int, n: int) -> RowBatch:
    """``n`` 1m candles from minute ``start``, closes 100 + minute."""
    candles = CandleBatch.from_candles(
        [
            Candle("binance", "BTC-USDT", "BTCUSDT", "1m", T_IN + k * MINUTE, 100.0, 101.0, 99.0, 100.0 + k,
                   1.0, 0.5, 0.5, 100.0, 3, T_IN + k * MINUTE, T_IN + k * MINUTE + 1, False, False, False, 0)
            for k in range(start, start + n)
        ]
    )  # fmt: skip
    rows = [row for block in candles.blocks(Stamps(T_IN, T_IN)) for row in sink.encode(spec, block)]
    return RowBatch(spec, rows, sum(map(len, rows)))


def test_a_batch_of_an_earlier_process_lands_once_whether_or_not_it_had_landed(bigquery_emulator):
    dataset = f"t_{uuid.uuid4().hex[:10]}"
    config = BigQueryConfig(
        project_id=bigquery_emulator.project,
        dataset_live=dataset,
        emulator=EmulatorConfig(bigquery_emulator.rest_url, bigquery_emulator.grpc_target),
        request_timeout_s=5.0,
    )
    spec = candle_tables(config, "tardis-realtime", ("1m",))["1m"]
    before = StorageWriteSink(config, bigquery_emulator.project)
    before.ensure(spec)
    landed, pending = _batch(before, spec, 0, 2), _batch(before, spec, 2, 3)
    assert before.append(landed) is True  # written, then the process is killed: its checkpoint holds
    pending.stream, pending.offset = landed.stream, 2  # ... it and the next batch, sent to no one yet
    carried = [pickle.loads(pickle.dumps(b)) for b in (landed, pending)]  # what a checkpoint keeps

    after = StorageWriteSink(config, bigquery_emulator.project)  # the process started again
    after.ensure(spec)
    assert after.append(carried[0]) is False  # it was there: ALREADY_EXISTS on its own stream
    assert after.append(carried[1]) is True  # its own stream, at its offset: written now, once
    fresh = _batch(after, spec, 5, 1)
    assert after.append(fresh) is True and fresh.stream != landed.stream  # new rows: this process's stream
    rows = query(client(bigquery_emulator), f"SELECT close FROM {dataset}.candles_1m ORDER BY close")
    assert [r["close"] for r in rows] == [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]
    before.close()
    after.close()
