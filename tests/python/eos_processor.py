"""A consume-transform-produce processor for test_exactly_once.py: copies
`src` to `dst` upper-cased, partition for partition, one transaction per
poll with the consumed offsets, until it has read every partition to its end.

usage: eos_processor.py BOOTSTRAP SRC DST GROUP PARTITIONS BATCH
"""

import sys

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition


def main():
    bootstrap, src, dst, group, partitions, batch = sys.argv[1:7]
    partitions = int(partitions)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "fetch.wait.max.ms": 100})
    # Initialising fences (and aborts) whatever a killed predecessor left open,
    # so the offsets read next are stable.
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": group + "-processor",
                         "linger.ms": 5, "transaction.timeout.ms": 30000})
    producer.init_transactions(60)
    tps = [TopicPartition(src, p) for p in range(partitions)]
    # Where the last committed transaction left off (an open one's offsets
    # are not stable yet: the broker makes the client wait for them).
    start = consumer.committed(tps, timeout=60)
    consumer.assign([TopicPartition(src, t.partition, t.offset if t.offset >= 0 else OFFSET_BEGINNING)
                     for t in start])
    ends = {p: consumer.get_watermark_offsets(TopicPartition(src, p), timeout=30)[1]
            for p in range(partitions)}
    # The next offset to process per partition (position() knows none until
    # a record is consumed after assign).
    positions = {t.partition: max(t.offset, 0) for t in start}
    while True:
        if all(positions[p] >= ends[p] for p in range(partitions)):
            return 0
        msgs = [m for m in consumer.consume(int(batch), timeout=0.5) if m.error() is None]
        if not msgs:
            continue
        producer.begin_transaction()
        for m in msgs:
            producer.produce(dst, value=m.value().upper(), partition=m.partition())
        for m in msgs:
            positions[m.partition()] = m.offset() + 1
        offsets = [TopicPartition(src, p, o) for p, o in positions.items()]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        # Progress, so the test can kill this process mid-run.
        print("committed", len(msgs), flush=True)


if __name__ == "__main__":
    sys.exit(main())
