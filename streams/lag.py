"""Consumer-group progress: committed offsets against the end of each input partition."""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaException, TopicPartition
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from churnstream.settings import Settings


@retry(retry=retry_if_exception_type(KafkaException), wait=wait_fixed(0.5), stop=stop_after_delay(30), reraise=True)
def group_lag(settings: Settings, topics: tuple[str, ...] | None = None) -> int:
    """Records not yet committed by the worker's consumer group, over all partitions of ``topics``.

    Retried while the group coordinator is still being elected (NOT_COORDINATOR right after a broker start).
    """
    topics = topics or settings.input_topics
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": settings.app_id,
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    try:
        md = consumer.list_topics(timeout=10)
        tps = [TopicPartition(t, p) for t in topics for p in md.topics[t].partitions]
        committed = consumer.committed(tps, timeout=10)
        lag = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            position = tp.offset if tp.offset >= 0 else low
            lag += max(0, high - position)
        return lag
    finally:
        consumer.close()
