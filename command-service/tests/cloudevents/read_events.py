"""Reads COUNT records of the given topics from their start, as a consumer written against
the CloudEvents SDK would (its Kafka protocol binding, binary mode), and prints each event as
one JSON line. Exits non-zero when a record is not a valid CloudEvent.

    read_events.py BROKERS COUNT TOPIC...
"""

import json
import sys
import time

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


def main() -> None:
    brokers, count, topics = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": "cloudevents-reader",
            "enable.auto.commit": False,
        }
    )
    metadata = consumer.list_topics(timeout=10)
    consumer.assign(
        [
            TopicPartition(topic, partition, OFFSET_BEGINNING)
            for topic in topics
            for partition in metadata.topics[topic].partitions
        ]
    )
    deadline = time.monotonic() + 30
    read = 0
    while read < count:
        if time.monotonic() > deadline:
            sys.exit(f"only {read} of {count} records arrived")
        record = consumer.poll(0.5)
        if record is None:
            continue
        if record.error():
            sys.exit(f"consumer error: {record.error()}")
        event = from_binary_event(
            KafkaMessage(
                headers={key: value for key, value in (record.headers() or [])},
                key=record.key(),
                value=record.value(),
            )
        )
        print(
            json.dumps(
                {
                    "topic": record.topic(),
                    "specversion": event.get_specversion(),
                    "id": event.get_id(),
                    "source": event.get_source(),
                    "type": event.get_type(),
                    "subject": event.get_subject(),
                    "time": event.get_time().isoformat(),
                    "datacontenttype": event.get_datacontenttype(),
                    "dataschema": event.get_dataschema(),
                    "partitionkey": event.get_extension("partitionkey"),
                    "data": event.get_data().hex(),
                }
            ),
            flush=True,
        )
        read += 1
    consumer.close()


if __name__ == "__main__":
    main()
