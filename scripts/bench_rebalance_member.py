"""One consumer-group member for scripts/bench_rebalance.py, as its own process.

    python scripts/bench_rebalance_member.py BOOTSTRAP GROUP TOPIC NAME MODE [HEARTBEAT_MS]

MODE is `consumer` (KIP-848, group.protocol=consumer), `cooperative`
(classic protocol, partition.assignment.strategy=cooperative-sticky) or
`eager` (classic protocol, range). HEARTBEAT_MS, if given and not 0, sets
the classic heartbeat.interval.ms (KIP-848's interval is the broker's).

The consumer is created at once, but joins only when a line `subscribe`
arrives on stdin, and leaves (close(), a clean leave) on a line `close`, so
the bench times the join and the leave from the member's own clock rather
than from process start-up. Every event is one JSON line on stdout, stamped
with CLOCK_MONOTONIC (the same clock in every process on the machine):

  {"ev": "created"|"subscribe"|"closing"|"closed", "t": ...}
  {"ev": "assigned"|"revoked"|"lost", "t": entry, "t_end": return, "partitions": [...]}
  {"ev": "assignment", "t": ..., "partitions": [...]}

`assigned`/`revoked`/`lost` report the partitions the rebalance callback
was given: for the cooperative and KIP-848 protocols librdkafka hands over
only the change (incremental), for eager the whole assignment. After each
callback the member reports the consumer's full `assignment()` as it stands
once the callback has been applied, so the bench can check that adding and
removing the callbacks' partitions gives the same set.

No records are consumed or committed: the topic is empty, and the bench
measures only who owns what.
"""

import json
import sys
import threading
import time

from confluent_kafka import Consumer


def emit(ev, t=None, **fields):
    fields.update(ev=ev, t=time.monotonic() if t is None else t)
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main():
    bootstrap, group, topic, name, mode = sys.argv[1:6]
    heartbeat_ms = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": name,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 500,
    }
    if mode == "consumer":
        conf["group.protocol"] = "consumer"
    else:
        conf["group.protocol"] = "classic"
        conf["partition.assignment.strategy"] = "cooperative-sticky" if mode == "cooperative" else "range"
        if heartbeat_ms:
            conf["heartbeat.interval.ms"] = heartbeat_ms
    c = Consumer(conf)

    commands = []
    wake = threading.Event()

    def read_stdin():
        for line in sys.stdin:
            commands.append(line.strip())
            wake.set()
        commands.append("close")  # the bench went away: leave
        wake.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    emit("created")

    changed = []

    def callback(ev):
        def cb(_consumer, partitions):
            t = time.monotonic()
            ps = sorted(tp.partition for tp in partitions)
            emit(ev, t=t, t_end=time.monotonic(), partitions=ps)
            changed.append(True)
        return cb

    while "subscribe" not in commands and "close" not in commands:
        wake.wait(0.5)
        wake.clear()
    if "subscribe" in commands:
        emit("subscribe")
        c.subscribe([topic], on_assign=callback("assigned"), on_revoke=callback("revoked"),
                    on_lost=callback("lost"))
        while "close" not in commands:
            c.poll(0.05)
            if changed:
                changed.clear()
                emit("assignment", partitions=sorted(tp.partition for tp in c.assignment()))
        emit("closing")
    c.close()
    emit("closed")


if __name__ == "__main__":
    main()
