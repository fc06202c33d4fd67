"""Backfill: history from Tardis' downloadable trade CSV datasets, or the project's ``<ns> <json>``
recordings, into the candle tables (with features) and optionally the ``ticks_trades`` table, through the
processor's own candle engine, feature stage and sinks. ``python -m market_data_tick_handler.backfill
--help``; ``runner.py`` says how a day's arrays reach the sinks, ``state.py`` how a run resumes."""
