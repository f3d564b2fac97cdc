"""Exactly-once with the real confluent-kafka (librdkafka) client: transactions
committed and aborted over several partitions and topics, read_committed held
at the last stable offset, offsets sent in a transaction, fencing, the
coordinator's timeout abort, a restart with open and aborted transactions in
the logs, and a consume-transform-produce loop killed with SIGKILL at random
points that still reflects every input record exactly once.
"""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from weir_helpers import create_topic, produce_sync, unique, wait_until

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


def committed_offset(bootstrap, group, topic, partition):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return c.committed([TopicPartition(topic, partition)], timeout=10)[0].offset
    finally:
        c.close()


def fenced(exc):
    err = exc.args[0]
    return err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                          KafkaError.INVALID_PRODUCER_EPOCH)


def test_commit_and_abort_over_partitions_and_topics(module_broker):
    b = module_broker.bootstrap
    a = create_topic(b, unique("txa"), 3)
    t2 = create_topic(b, unique("txb"), 2)
    p = txn_producer(b, unique("tx"))
    p.begin_transaction()
    for i in range(30):
        p.produce(a, value=b"c%d" % i, partition=i % 3)
        p.produce(t2, value=b"c%d" % i, partition=i % 2)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(12):
        p.produce(a, value=b"x%d" % i, partition=i % 3)
        p.produce(t2, value=b"x%d" % i, partition=i % 2)
    p.flush(30)
    p.abort_transaction(30)
    committed = sorted(b"c%d" % i for i in range(30))
    for topic, n in ((a, 3), (t2, 2)):
        assert sorted(read(b, topic, n, "read_committed", want=30)) == committed
        everything = read(b, topic, n, "read_uncommitted", want=42)
        assert sorted(everything) == sorted(committed + [b"x%d" % i for i in range(12)])


def test_an_open_transaction_holds_read_committed_at_the_lso(module_broker):
    b = module_broker.bootstrap
    topic = create_topic(b, unique("lso"), 1)
    plain = Producer({"bootstrap.servers": b})
    produce_sync(plain, topic, value=b"before", partition=0)
    p = txn_producer(b, unique("tx"))
    p.begin_transaction()
    p.produce(topic, value=b"inside", partition=0)
    p.flush(30)
    produce_sync(plain, topic, value=b"after", partition=0)
    assert read(b, topic, 1, "read_committed") == [b"before"], \
        "read_committed must stop at the open transaction"
    assert read(b, topic, 1, "read_uncommitted", want=3) == [b"before", b"inside", b"after"]
    p.commit_transaction(30)
    assert read(b, topic, 1, "read_committed", want=3) == [b"before", b"inside", b"after"]


def test_offsets_sent_in_a_transaction_move_only_on_commit(module_broker):
    b = module_broker.bootstrap
    src = create_topic(b, unique("src"), 1)
    out = create_topic(b, unique("out"), 1)
    group = unique("eos-group")
    consumer = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False})
    meta = consumer.consumer_group_metadata()
    p = txn_producer(b, unique("tx"))
    p.begin_transaction()
    p.produce(out, value=b"x")
    p.send_offsets_to_transaction([TopicPartition(src, 0, 5)], meta, 30)
    p.abort_transaction(30)
    assert committed_offset(b, group, src, 0) < 0, "an aborted transaction's offsets do not count"
    p.begin_transaction()
    p.produce(out, value=b"y")
    p.send_offsets_to_transaction([TopicPartition(src, 0, 7)], meta, 30)
    p.commit_transaction(30)
    wait_until(lambda: committed_offset(b, group, src, 0) == 7, 15, "offset 7 committed")
    consumer.close()


def test_a_second_producer_with_the_same_id_fences_the_first(module_broker):
    b = module_broker.bootstrap
    topic = create_topic(b, unique("fence"), 1)
    txn_id = unique("tx")
    first = txn_producer(b, txn_id)
    first.begin_transaction()
    first.produce(topic, value=b"zombie")
    first.flush(30)
    second = txn_producer(b, txn_id)
    with pytest.raises(KafkaException) as raised:
        first.produce(topic, value=b"zombie-2")
        first.commit_transaction(30)
    assert fenced(raised.value), raised.value
    second.begin_transaction()
    second.produce(topic, value=b"live")
    second.commit_transaction(30)
    assert read(b, topic, 1, "read_committed", want=1) == [b"live"]


@pytest.mark.broker_config({"transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"})
def test_a_transaction_left_open_past_its_timeout_is_aborted(broker):
    b = broker.bootstrap
    topic = create_topic(b, unique("timeout"), 1)
    stuck = txn_producer(b, unique("tx"), **{"transaction.timeout.ms": 2000,
                                              "message.timeout.ms": 2000})
    stuck.begin_transaction()
    stuck.produce(topic, value=b"abandoned")
    stuck.flush(30)
    plain = Producer({"bootstrap.servers": b})
    produce_sync(plain, topic, value=b"later", partition=0)
    # The coordinator aborts it; read_committed then reaches the later record.
    wait_until(lambda: read(b, topic, 1, "read_committed", quiet=0.5, timeout=3) == [b"later"],
               20, "the timed-out transaction to be aborted")
    with pytest.raises(KafkaException) as raised:
        stuck.commit_transaction(30)
    assert raised.value.args[0].code() != KafkaError.NO_ERROR


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
