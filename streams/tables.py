"""The worker's ClickHouse tables, one sink each (its own client and insert thread)."""

from __future__ import annotations

from dataclasses import dataclass

from churnstream.settings import Settings
from streams.bronze import BRONZE_COLUMNS, DEAD_LETTER_COLUMNS
from streams.labels import METRIC_COLUMNS
from streams.scoring import PREDICTION_COLUMNS
from streams.segment_watch import BOUNDARY_COLUMNS
from streams.segments import SEGMENT_COLUMNS
from streams.sinks import ClickHouseSink


@dataclass
class Tables:
    events: ClickHouseSink
    predictions: ClickHouseSink
    model_metrics: ClickHouseSink
    dead_letters: ClickHouseSink
    user_segments: ClickHouseSink
    rfm_boundaries: ClickHouseSink  # also reads `events` for the daily RFM cut, off the events' insert thread

    @classmethod
    def from_settings(cls, settings: Settings) -> Tables:
        dsn = settings.clickhouse_dsn
        return cls(
            ClickHouseSink(dsn, "events", BRONZE_COLUMNS),
            ClickHouseSink(dsn, "predictions", PREDICTION_COLUMNS),
            ClickHouseSink(dsn, "model_metrics", METRIC_COLUMNS),
            ClickHouseSink(dsn, "dead_letters", DEAD_LETTER_COLUMNS),
            ClickHouseSink(dsn, "user_segments", SEGMENT_COLUMNS),
            ClickHouseSink(dsn, "rfm_boundaries", BOUNDARY_COLUMNS),
        )
