"""Checkpoints (streaming_service/checkpoints.py): which one a restart loads, what is kept, and that a
processor restored from one carries on as if it had not stopped."""

import logging
import pickle

import numpy as np
from helpers import T0, S, control_frame, trade_frame

from market_data_tick_handler.config import CandlesConfig, IngestConfig, StreamingConfig
from market_data_tick_handler.streaming_service.checkpoints import Checkpoint, Checkpoints, fingerprint
from market_data_tick_handler.streaming_service.recovery import is_start_frame
from market_data_tick_handler.streaming_service.service import StreamingService


def _checkpoint(jseq: int, durable: dict[str, int], fp: str = "fp") -> Checkpoint:
    return Checkpoint(jseq=jseq, made_us=T0, fingerprint=fp, state={"n": jseq}, durable=durable)


def test_a_restart_takes_the_newest_checkpoint_at_or_below_what_every_sink_made_durable(tmp_path):
    store = Checkpoints(tmp_path, "fp")
    store.save(_checkpoint(10, {"serve": 10, "persist": 3}))
    store.save(_checkpoint(20, {"serve": 20, "persist": 10}))
    store.save(_checkpoint(30, {"serve": 30, "persist": 25}))
    checkpoint, durable = store.restore_point()
    # the latest says persist had everything up to 25 written: the state at 20 is needed, and persist
    # skips outputs up to 25, serve up to 30
    assert checkpoint.jseq == 20 and checkpoint.state == {"n": 20}
    assert durable == {"serve": 30, "persist": 25}
    # saving the one at 30 deleted the one at 10 (older than 20, which is all a restart can need now)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-00000000000000000020.ckpt",
        "checkpoint-00000000000000000030.ckpt",
    ]


def test_when_every_sink_is_durable_the_latest_is_taken_and_older_ones_go(tmp_path):
    store = Checkpoints(tmp_path, "fp")
    for jseq in (5, 6, 7):
        store.save(_checkpoint(jseq, {"serve": jseq}))
    checkpoint, durable = store.restore_point()
    assert (checkpoint.jseq, durable) == (7, {"serve": 7})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-00000000000000000007.ckpt"]
    store.clear(ended_at=7)  # the session ended at 7: nothing to carry on from, and where it ended
    assert store.restore_point() is None
    assert store.ended_at() == 7


def test_a_checkpoint_of_another_configuration_or_a_damaged_one_is_not_used(tmp_path, caplog):
    Checkpoints(tmp_path, "other").save(_checkpoint(4, {}, fp="other"))
    with caplog.at_level(logging.WARNING):
        assert Checkpoints(tmp_path, "fp").restore_point() is None
    assert "another configuration" in caplog.text
    (tmp_path / "checkpoint-00000000000000000009.ckpt").write_bytes(b"not a pickle")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert Checkpoints(tmp_path, "other").restore_point() is None
    assert "cannot be read" in caplog.text


def test_the_fingerprint_changes_with_what_the_state_depends_on():
    base = StreamingConfig()
    other = StreamingConfig(candles=CandlesConfig(timeframes=("15s", "1m")))
    assert fingerprint(base) == fingerprint(StreamingConfig())
    assert fingerprint(base) != fingerprint(other)


def _closes(results) -> list[tuple[str, int, float, int]]:
    out = []
    for result in results:
        for batch in result.batches:
            for part in batch.parts:
                out += [
                    (part.timeframe, part.timestamp_in, float(c), int(n))
                    for c, n in zip(part.close, part.trade_count, strict=True)
                ]
    return out


def test_a_processor_restored_from_a_pickled_checkpoint_closes_the_same_candles():
    """One trade every 3 s at price 100 + i; the state is pickled after 50 trades (mid-bucket of every
    timeframe but 15s) and the rest goes to the restored copy: its candles are those of the run that did
    not stop, and the 1m candle that spans the cut holds its 20 trades."""
    frames = [trade_frame([(0, T0 + i * 3 * S, 100.0 + i, 1.0, "buy")], seq=i) for i in range(100)]
    config = StreamingConfig(ingest=IngestConfig(source="replay"))  # the event clock: trades move time
    whole = StreamingService(config).handler
    results_whole = [whole.handle_frame(whole.decode(f)) for f in frames]

    first = StreamingService(config).handler
    results_cut = [first.handle_frame(first.decode(f)) for f in frames[:50]]
    restored = pickle.loads(pickle.dumps(first))
    results_cut += [restored.handle_frame(restored.decode(f)) for f in frames[50:]]

    assert _closes(results_cut) == _closes(results_whole)
    # worked out by hand: T0 is a whole minute; trades i = 40..59 (t = 120..177 s) make the 1m candle of
    # T0 + 120 s, whose close is the price of trade 59
    one_minute = [c for c in _closes(results_cut) if c[0] == "1m" and c[1] == T0 + 120 * S]
    assert one_minute == [("1m", T0 + 120 * S, 159.0, 20)]
    assert np.isfinite([c[2] for c in _closes(results_cut)]).all()


def test_none_old_enough_means_no_checkpoint_to_carry_on_from(tmp_path, caplog):
    """A processor killed before its sinks had written what came before its first checkpoint: the
    latest says persist had made durable only up to 3, and no checkpoint is that old. Starting from one
    would lose rows 4.., so none is used (the session is replayed from its start instead)."""
    store = Checkpoints(tmp_path, "fp")
    store.save(_checkpoint(10, {"serve": 10, "persist": 3}))
    with caplog.at_level(logging.WARNING):
        assert store.restore_point() is None
    assert "no checkpoint at or before position 3" in caplog.text
    assert store.any()


def test_a_start_frame_is_told_from_its_header_alone():
    start = control_frame("start", 0, source="replay", exchanges=["binance"], data_types=["trade"])
    assert is_start_frame(start)
    assert not is_start_frame(control_frame("end", 7, reason="source_closed"))
    assert not is_start_frame(trade_frame([(0, T0, 100.0, 1.0, "buy")], seq=1))
    assert not is_start_frame(b"not a frame")
