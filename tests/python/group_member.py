"""One consumer-group member as its own process, so a test can stop it
gracefully (SIGTERM: close, which leaves the group) or kill it -9.

    python group_member.py BOOTSTRAP GROUP TOPIC NAME [PROTOCOL]

PROTOCOL is `consumer` (KIP-848, the default) or `classic`. Every event is
one JSON line on stdout, stamped with CLOCK_MONOTONIC (shared by all the
processes on the machine, so events of different members compare):
  {"ev": "assigned"|"revoked"|"lost", "t": ..., "partitions": [...]}
  {"ev": "record", "t": ..., "partition": P, "offset": O}   (before its commit)
  {"ev": "closed", "t": ...}
A record is reported (processed) before its offset is committed, as an
application would process it: a committed offset the report does not cover
is a lost record.
"""

import json
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition


def emit(ev, **fields):
    fields.update(ev=ev, t=time.monotonic())
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main():
    bootstrap, group, topic, name = sys.argv[1:5]
    protocol = sys.argv[5] if len(sys.argv) > 5 else "consumer"
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": name,
        "group.protocol": protocol,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
    }
    if protocol == "classic":
        conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                     "partition.assignment.strategy": "cooperative-sticky"})
    c = Consumer(conf)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def parts(ps):
        return sorted(tp.partition for tp in ps)

    c.subscribe(
        [topic],
        on_assign=lambda _c, ps: emit("assigned", partitions=parts(ps)),
        on_revoke=lambda _c, ps: emit("revoked", partitions=parts(ps)),
        on_lost=lambda _c, ps: emit("lost", partitions=parts(ps)),
    )
    while not stopping:
        m = c.poll(0.1)
        if m is None or m.error():
            continue
        emit("record", partition=m.partition(), offset=m.offset())
        try:
            c.commit(message=m, asynchronous=False)
        except KafkaException as e:
            # Refused (the partition is moving: stale epoch, rebalance in
            # progress): read it again if it stays here, else its next owner
            # reads it from the last committed offset.
            emit("commit_failed", partition=m.partition(), offset=m.offset(), error=str(e))
            try:
                c.seek(TopicPartition(m.topic(), m.partition(), m.offset()))
            except KafkaException:
                pass
    c.close()
    emit("closed")


if __name__ == "__main__":
    main()
