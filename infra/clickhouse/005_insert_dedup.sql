-- Each insert of the worker carries a deduplication token derived from its batch's source offsets
-- (streams/processor.py `batch_token`). With a window, the tables remember the tokens of their last 10,000 insert
-- blocks and drop a block inserted again under the same token: a retried or redone batch adds no row, and a BI
-- query without FINAL sees each event (and each event, task and model kind) once. The materialised view's target
-- inherits the tokens. On a replicated server the same holds through `replicated_deduplication_window`.
ALTER TABLE events MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE predictions MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE latest_scores MODIFY SETTING non_replicated_deduplication_window = 10000;
