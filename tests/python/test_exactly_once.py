"""Exactly-once through failures, with the real confluent-kafka (librdkafka)
client: a broker killed with open and aborted transactions in its log, and a
consume-transform-produce loop killed with SIGKILL at random points that
still reflects every input record exactly once. (The transaction API's
semantics are in test_transactions.py.)
"""

import os
import random
import signal
import subprocess
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from weir_helpers import create_topic, produce_sync, unique

HERE = os.path.dirname(os.path.abspath(__file__))


def txn_producer(bootstrap, txn_id, **extra):
    conf = {"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5,
            "transaction.timeout.ms": 60000, "message.timeout.ms": 30000}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(30)
    return p


def read(bootstrap, topic, partitions, isolation, quiet=1.5, timeout=20.0, want=None):
    """Every value in `topic` from the start, as a reader with `isolation` sees
    it: reads until `want` values came (if given) and then `quiet` seconds
    bring nothing new."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out = []
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            m = c.poll(0.1)
            if m is not None and m.error() is None:
                out.append(m.value())
                last_new = time.monotonic()
            elif time.monotonic() - last_new > quiet and (want is None or len(out) >= want):
                break
        return out
    finally:
        c.close()


def test_open_and_aborted_transactions_survive_a_restart(broker):
    b = broker.bootstrap
    topic = create_topic(b, unique("restart"), 1)
    aborted = txn_producer(b, unique("tx"))
    aborted.begin_transaction()
    aborted.produce(topic, value=b"aborted")
    aborted.flush(30)
    aborted.abort_transaction(30)
    plain = Producer({"bootstrap.servers": b})
    produce_sync(plain, topic, value=b"plain")
    open_txn = txn_producer(b, unique("tx"))
    open_txn.begin_transaction()
    open_txn.produce(topic, value=b"open")
    open_txn.flush(30)
    produce_sync(plain, topic, value=b"held")
    assert read(b, topic, 1, "read_committed") == [b"plain"]
    broker.kill9()
    broker.start()
    # The aborted one stays hidden, the open one still holds the LSO.
    assert read(b, topic, 1, "read_committed") == [b"plain"]
    assert sorted(read(b, topic, 1, "read_uncommitted", want=4)) == \
        sorted([b"aborted", b"plain", b"open", b"held"])
    open_txn.commit_transaction(60)
    assert read(b, topic, 1, "read_committed", want=3) == [b"plain", b"open", b"held"]


def test_consume_transform_produce_is_exactly_once_through_kill9(module_broker):
    """A processor (eos_processor.py) copies `src` to `dst` upper-cased in
    transactions with its offsets; it is SIGKILLed at random points and
    restarted until it has caught up. Every input is in the output once."""
    b = module_broker.bootstrap
    total = 100_000
    src = create_topic(b, unique("eos-src"), 4)
    dst = create_topic(b, unique("eos-dst"), 4)
    group = unique("eos")
    p = Producer({"bootstrap.servers": b, "linger.ms": 20, "batch.num.messages": 10000})
    for i in range(total):
        p.produce(src, value=b"rec-%06d" % i, partition=i % 4)
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    rng = random.Random(int(os.environ.get("EOS_SEED", "7")))
    # Transactions of up to 500 records: the run lasts long enough to be
    # killed mid-transaction several times.
    cmd = [sys.executable, os.path.join(HERE, "eos_processor.py"), b, src, dst, group, "4", "500"]
    kills = 0
    deadline = time.monotonic() + 240
    while True:
        assert time.monotonic() < deadline, "the processor did not catch up"
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if kills < 3:
            # After a random number of committed transactions, and a moment
            # into the next one.
            for _ in range(rng.randint(3, 40)):
                if not proc.stdout.readline():
                    break
            time.sleep(rng.uniform(0, 0.05))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                kills += 1
                continue
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()[-3000:]
        break
    assert kills == 3, "the processor finished before it was killed three times"
    values = read(b, dst, 4, "read_committed", want=total, timeout=60)
    expected = sorted(b"REC-%06d" % i for i in range(total))
    assert len(values) == total, "%d records in the output, %d expected" % (len(values), total)
    assert sorted(values) == expected
