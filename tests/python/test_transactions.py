"""Kafka transactions end to end: confluent-kafka's transactional producer and
read_committed / read_uncommitted consumers against the real `weir broker`.

Covered: commit and abort over several partitions of two topics, the last stable
offset (LSO) holding read_committed consumers back while a transaction is open,
consumer offsets sent in a transaction (applied only on commit), fencing of a
zombie producer by a newer one with the same transactional.id, the coordinator
aborting a transaction left open past its timeout, and a consume-transform-produce
loop that aborts some of its batches and still produces every record exactly once.

Reading strategy: after the transactions under test, a non-transactional
"sentinel" record is appended to every partition read. A consumer that has
received a partition's sentinel has read past everything before it in that
partition, so for read_committed it proves the LSO moved past every transaction
there (their markers are written) and that any aborted record would have been
delivered by then if the broker did not filter it.
"""

import collections
import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, OFFSET_INVALID, Consumer, ConsumerGroupTopicPartitions,
                             IsolationLevel, KafkaError, KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import OffsetSpec

from weir_helpers import admin, create_topic, flush_all, producer, unique, wait_until

T = 15.0              # timeout (s) of one client call (commit, abort, send offsets, committed)
INIT_TIMEOUT = 30.0   # init_transactions may wait for __transaction_state to be created
TXN_TIMEOUT_MS = 10000

# Errors a fenced (zombie) transactional producer may see, depending on which
# request notices first and on the librdkafka version.
FENCED_CODES = {KafkaError._FENCED,
                getattr(KafkaError, "PRODUCER_FENCED", 90),
                KafkaError.INVALID_PRODUCER_EPOCH}

# The coordinator's timeout check, fast enough for test_open_transaction_past_timeout_is_aborted.
TIMEOUT_CHECK_CONFIG = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": "500"}


# --------------------------------------------------------------------------- helpers

def _txn_producer(bootstrap, txn_id, timeout_ms=TXN_TIMEOUT_MS, **extra):
    """A transactional producer, already through init_transactions().
    message.timeout.ms and socket.timeout.ms are left unset: librdkafka derives
    them from transaction.timeout.ms and refuses explicit values above it."""
    conf = {"bootstrap.servers": bootstrap, "transactional.id": txn_id,
            "transaction.timeout.ms": timeout_ms, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(INIT_TIMEOUT)
    return p


def _produce_checked(p, records):
    """Produce (topic, partition, value) records, flush, and assert each was delivered."""
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append((msg.topic(), msg.partition(), msg.value(), err))

    for topic, part, value in records:
        p.produce(topic, partition=part, value=value, on_delivery=on_delivery)
        p.poll(0)
    flush_all(p, timeout=T)
    assert not errors, "delivery failed: %s" % errors[:5]


def _sentinels(bootstrap, tps, tag):
    """Append one non-transactional record to each (topic, partition); returns their values."""
    p = producer(bootstrap)
    vals = []
    for topic, part in tps:
        v = b"sentinel-%s-%s-%d" % (tag.encode(), topic.encode(), part)
        vals.append(v)
    _produce_checked(p, [(t, part, v) for (t, part), v in zip(tps, vals)])
    return set(vals)


def _reader(bootstrap, isolation, tps, **extra):
    """A consumer (no group membership) assigned every (topic, partition) from the beginning."""
    conf = {"bootstrap.servers": bootstrap, "group.id": unique("txn-reader"),
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": isolation, "fetch.wait.max.ms": 100}
    conf.update(extra)
    c = Consumer(conf)
    c.assign([TopicPartition(t, part, OFFSET_BEGINNING) for t, part in tps])
    return c


def _poll_once(c, out, wait=0.1):
    m = c.poll(wait)
    if m is None:
        return
    if m.error():
        if m.error().code() == KafkaError._PARTITION_EOF:
            return
        raise KafkaException(m.error())
    out.append(m)


def _poll_until(c, out, until, timeout, what):
    """Poll `c`, appending data records to `out`, until `until()` holds (bounded)."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s; got %d records: %s"
                                 % (timeout, what, len(out), sorted(_values(out))[:40]))
        _poll_once(c, out)


def _poll_for(c, out, seconds):
    """Observation window: poll `c` for `seconds`, appending whatever arrives to `out`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _poll_once(c, out)


def _values(msgs):
    return [m.value() for m in msgs]


def _read_through(bootstrap, isolation, tps, sentinels, timeout=30.0):
    """Every record of `tps` a fresh consumer gets up to and including the sentinels."""
    c = _reader(bootstrap, isolation, tps)
    out = []
    try:
        _poll_until(c, out, lambda: sentinels <= set(_values(out)), timeout,
                    "the sentinel of every partition (%s)" % isolation)
        return out
    finally:
        c.close()


def _end_offsets(bootstrap, topic, part):
    """(last stable offset, high watermark) of one partition, via ListOffsets latest."""
    a = admin(bootstrap)
    tp = TopicPartition(topic, part)

    def latest(level):
        return a.list_offsets({tp: OffsetSpec.latest()}, isolation_level=level,
                              request_timeout=T)[tp].result(timeout=T + 5).offset
    return latest(IsolationLevel.READ_COMMITTED), latest(IsolationLevel.READ_UNCOMMITTED)


def _txn_error(exc):
    """The KafkaError carried by a KafkaException raised by a transactional call."""
    err = exc.args[0] if exc.args else None
    assert isinstance(err, KafkaError), "unexpected exception payload: %r" % (exc.args,)
    return err


def _is_fenced(err):
    return err.code() in FENCED_CODES or (
        err.code() == KafkaError._FATAL and "fenced" in err.str().lower())


# --------------------------------------------------------------------------- tests

def test_commit_and_abort_over_partitions_of_two_topics(module_broker):
    """One transaction spanning 5 partitions of 2 topics is committed, the next
    (other values, same partitions) is aborted. read_committed sees exactly the
    committed values, none of the aborted ones; read_uncommitted sees both; each
    partition holds its records plus one control marker per transaction."""
    b = module_broker.bootstrap
    ta = create_topic(b, unique("txn-a"), 3)
    tb = create_topic(b, unique("txn-b"), 2)
    tps = [(ta, 0), (ta, 1), (ta, 2), (tb, 0), (tb, 1)]
    n_commit, n_abort = 25, 15   # 5 and 3 per partition
    committed = [(tps[i % 5][0], tps[i % 5][1], b"committed-%d" % i) for i in range(n_commit)]
    aborted = [(tps[i % 5][0], tps[i % 5][1], b"aborted-%d" % i) for i in range(n_abort)]

    p = _txn_producer(b, unique("tid-commit-abort"))
    p.begin_transaction()
    _produce_checked(p, committed)
    p.commit_transaction(T)
    p.begin_transaction()
    _produce_checked(p, aborted)
    p.abort_transaction(T)

    sentinels = _sentinels(b, tps, "t1")
    want_committed = {v for _, _, v in committed}
    want_aborted = {v for _, _, v in aborted}

    rc = _read_through(b, "read_committed", tps, sentinels)
    got = _values(rc)
    assert len(got) == len(set(got)), "read_committed returned duplicates"
    leaked = set(got) & want_aborted
    assert not leaked, "read_committed returned %d aborted records, e.g. %s" % (
        len(leaked), sorted(leaked)[:5])
    assert set(got) == want_committed | sentinels, (
        "read_committed: missing %s, unexpected %s" % (
            sorted(want_committed - set(got))[:5], sorted(set(got) - want_committed - sentinels)[:5]))
    for t, part in tps:   # per-partition order: committed records, then the sentinel
        seq = [m.value() for m in rc if (m.topic(), m.partition()) == (t, part)]
        assert seq == [v for tt, pp, v in committed if (tt, pp) == (t, part)] + \
            [v for v in sentinels if v.endswith(b"-%s-%d" % (t.encode(), part))], (t, part, seq)

    ru = _values(_read_through(b, "read_uncommitted", tps, sentinels))
    assert sorted(ru) == sorted(want_committed | want_aborted | sentinels), (
        "read_uncommitted should see committed and aborted records: missing %s" %
        sorted((want_committed | want_aborted) - set(ru))[:5])

    # Markers occupy offsets: per partition 5 + 3 records, 2 markers, 1 sentinel.
    for t, part in tps:
        lso, hw = _end_offsets(b, t, part)
        assert hw == 5 + 3 + 2 + 1, "%s/%d high watermark %d, want 11 (8 records, 2 markers, 1 sentinel)" % (
            t, part, hw)
        assert lso == hw, "%s/%d: LSO %d behind high watermark %d with no open transaction" % (
            t, part, lso, hw)


def test_open_transaction_holds_read_committed_at_lso(module_broker):
    """While a transaction is open, read_committed consumers stop at its first
    offset (the LSO): its records and records written after it by a
    non-transactional producer are withheld, while read_uncommitted sees them all.
    ListOffsets(latest, read_committed) answers the LSO. After the commit the
    read_committed consumer receives the withheld records, in offset order."""
    b = module_broker.bootstrap
    topic = create_topic(b, unique("txn-lso"), 1)
    plain = producer(b)
    before = [b"before-%d" % i for i in range(5)]
    opened = [b"open-%d" % i for i in range(5)]
    after = [b"after-%d" % i for i in range(5)]

    _produce_checked(plain, [(topic, 0, v) for v in before])            # offsets 0..4
    p = _txn_producer(b, unique("tid-lso"))
    p.begin_transaction()
    _produce_checked(p, [(topic, 0, v) for v in opened])                # offsets 5..9
    _produce_checked(plain, [(topic, 0, v) for v in after])             # offsets 10..14

    lso, hw = _end_offsets(b, topic, 0)
    assert hw == 15, "high watermark %d, want 15" % hw
    assert lso == 5, "ListOffsets read_committed gave %d, want the open transaction's first offset 5" % lso

    rc = _reader(b, "read_committed", [(topic, 0)])
    ru = _reader(b, "read_uncommitted", [(topic, 0)])
    try:
        rc_out = []
        _poll_until(rc, rc_out, lambda: len(rc_out) >= len(before), 20, "the records before the transaction")
        _poll_for(rc, rc_out, 2.0)
        assert _values(rc_out) == before, (
            "read_committed went past the LSO of an open transaction: %s" % _values(rc_out))

        ru_out = []
        _poll_until(ru, ru_out, lambda: len(ru_out) >= 15, 20, "all 15 records read_uncommitted")
        assert _values(ru_out) == before + opened + after

        p.commit_transaction(T)

        _poll_until(rc, rc_out, lambda: len(rc_out) >= 15, 20,
                    "read_committed to get the transaction's and later records after the commit")
        _poll_for(rc, rc_out, 0.5)
        assert _values(rc_out) == before + opened + after
        assert [m.offset() for m in rc_out] == list(range(15))
    finally:
        rc.close()
        ru.close()

    def caught_up():
        lso_, hw_ = _end_offsets(b, topic, 0)
        return lso_ == hw_ == 16 and (lso_, hw_)
    wait_until(caught_up, 10, "LSO == high watermark == 16 (15 records + commit marker)", interval=0.1)


def test_offsets_sent_in_transaction_apply_only_on_commit(module_broker):
    """Offsets sent with send_offsets_to_transaction are not committed for the
    group when the transaction aborts, and are once it commits; offsets of an
    aborted transaction do not resurface with a later commit that names other
    partitions. (The group metadata comes from a consumer that has not joined, as
    with a manually assigned consumer.)"""
    b = module_broker.bootstrap
    topic = create_topic(b, unique("txn-offsets"), 2)
    plain = producer(b)
    _produce_checked(plain, [(topic, i % 2, b"v%d" % i) for i in range(20)])   # 10 per partition
    group = unique("g-txn")
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    # read_committed makes librdkafka ask for stable offsets (require_stable):
    # committed() then waits out any transaction still pending for the group.
    gc = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False,
                   "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                   "fetch.wait.max.ms": 100})
    try:
        def committed():
            return {tp.partition: tp.offset for tp in gc.committed([tp0, tp1], timeout=T)}

        assert committed() == {0: OFFSET_INVALID, 1: OFFSET_INVALID}

        p = _txn_producer(b, unique("tid-offsets"))
        p.begin_transaction()
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 3)],
                                      gc.consumer_group_metadata(), T)
        p.abort_transaction(T)

        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:   # observation window: stays uncommitted
            got = committed()
            assert got == {0: OFFSET_INVALID, 1: OFFSET_INVALID}, (
                "offsets of an aborted transaction were committed: %s" % got)

        p.begin_transaction()
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 7)], gc.consumer_group_metadata(), T)
        p.commit_transaction(T)

        seen = []
        wait_until(lambda: seen.append(committed()) or seen[-1] == {0: 7, 1: OFFSET_INVALID}, 10,
                   "group offsets {0: 7, 1: none} after the commit", interval=0.1)

        a = admin(b)
        res = a.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, [tp0, tp1])], require_stable=True,
            request_timeout=T)[group].result(timeout=T + 5)
        assert {tp.partition: tp.offset for tp in res.topic_partitions} == {0: 7, 1: OFFSET_INVALID}

        # A consumer of the group resumes partition 0 from the transactionally committed offset.
        gc.assign([tp0])
        out = []
        _poll_until(gc, out, lambda: out, 20, "a record from the committed offset")
        assert out[0].offset() == 7 and out[0].value() == b"v14", (out[0].offset(), out[0].value())
    finally:
        gc.close()


def test_newer_producer_fences_older_one(module_broker):
    """A second producer with the same transactional.id fences the first: the
    first one's open transaction is aborted, its further produce / commit fail with
    a fencing error, its records are never visible read_committed (but are in the
    log, read_uncommitted, except the one sent after fencing, which the broker
    refuses), and the new producer commits normally."""
    b = module_broker.bootstrap
    topic = create_topic(b, unique("txn-fence"), 2)
    tps = [(topic, 0), (topic, 1)]
    tid = unique("tid-fence")
    zombie_vals = [b"zombie-%d" % i for i in range(6)]
    late = b"zombie-late"
    new_vals = [b"new-%d" % i for i in range(6)]

    p1 = _txn_producer(b, tid)
    p1.begin_transaction()
    _produce_checked(p1, [(topic, i % 2, v) for i, v in enumerate(zombie_vals)])

    p2 = _txn_producer(b, tid)   # bumps the epoch, aborting p1's transaction

    failure = None
    try:
        p1.produce(topic, partition=0, value=late)
        p1.flush(T)
        p1.commit_transaction(T)
    except KafkaException as e:
        failure = _txn_error(e)
    assert failure is not None, "the fenced producer committed its transaction"
    assert _is_fenced(failure), "fenced producer failed with %s (%s), want one of %s" % (
        failure.name(), failure.str(), sorted(FENCED_CODES))

    p2.begin_transaction()
    _produce_checked(p2, [(topic, i % 2, v) for i, v in enumerate(new_vals)])
    p2.commit_transaction(T)

    sentinels = _sentinels(b, tps, "t4")
    rc = set(_values(_read_through(b, "read_committed", tps, sentinels)))
    assert not rc & (set(zombie_vals) | {late}), "fenced producer's records visible read_committed: %s" % (
        sorted(rc & (set(zombie_vals) | {late})))
    assert rc == set(new_vals) | sentinels, rc

    ru = _values(_read_through(b, "read_uncommitted", tps, sentinels))
    assert set(zombie_vals) <= set(ru), "the fenced producer's first records are missing from the log"
    assert late not in ru, "a produce with the fenced epoch was appended"


@pytest.mark.broker_config(TIMEOUT_CHECK_CONFIG)
def test_open_transaction_past_timeout_is_aborted(broker):
    """A transaction left open longer than its transaction.timeout.ms (3 s) is
    aborted by the coordinator: the LSO moves on (a later non-transactional record
    becomes visible read_committed, not before the timeout), the abandoned records
    are never returned read_committed, and the old producer's commit then fails.
    Assumes the broker checks timeouts every 500 ms
    (transaction.abort.timed.out.transaction.cleanup.interval.ms=500)."""
    b = broker.bootstrap
    topic = create_topic(b, unique("txn-timeout"), 1)
    abandoned = [b"abandoned-%d" % i for i in range(5)]

    t0 = time.monotonic()   # before the producer exists: the broker's timer starts later
    old = _txn_producer(b, unique("tid-timeout"), timeout_ms=3000)
    old.begin_transaction()
    _produce_checked(old, [(topic, 0, v) for v in abandoned])
    plain = producer(b)
    _produce_checked(plain, [(topic, 0, b"after-1")])

    rc = _reader(b, "read_committed", [(topic, 0)])
    try:
        out = []
        _poll_until(rc, out, lambda: b"after-1" in _values(out), 20,
                    "the coordinator to abort the timed-out transaction (LSO to pass it)")
        visible_after = time.monotonic() - t0
        assert visible_after >= 2.5, (
            "the record after the open transaction was visible %.2fs after it began, "
            "before its 3 s timeout" % visible_after)
        assert _values(out) == [b"after-1"], "read_committed returned %s" % _values(out)

        # The zombie's commit fails: its epoch was bumped by the abort.
        failure = None
        try:
            old.commit_transaction(T)
        except KafkaException as e:
            failure = _txn_error(e)
        assert failure is not None, "commit of a transaction the coordinator timed out succeeded"
        assert _is_fenced(failure) or failure.txn_requires_abort() or failure.fatal(), (
            "unexpected error on commit after timeout: %s (%s)" % (failure.name(), failure.str()))

        _produce_checked(plain, [(topic, 0, b"after-2")])
        _poll_until(rc, out, lambda: b"after-2" in _values(out), 20, "the second later record")
        assert _values(out) == [b"after-1", b"after-2"], (
            "abandoned records surfaced read_committed: %s" % _values(out))
    finally:
        rc.close()

    ru = _values(_read_through(b, "read_uncommitted", [(topic, 0)], {b"after-2"}))
    assert ru == abandoned + [b"after-1", b"after-2"], ru


def test_consume_transform_produce_exactly_once(module_broker):
    """A group consumer (read_committed, no auto commit) and a transactional
    producer copy 200 records upper-cased from a 2-partition input topic, one
    transaction per batch of up to 50 with the input offsets sent in it; every
    third batch is aborted and the consumer rewound to the group's committed
    offsets. The output, read_committed, holds each input record transformed
    exactly once, the aborted copies are in the log (read_uncommitted) but
    filtered, and the group's committed offsets are the input's ends."""
    b = module_broker.bootstrap
    nparts, per_part = 2, 100
    src = create_topic(b, unique("ctp-in"), nparts)
    dst = create_topic(b, unique("ctp-out"), nparts)
    inputs = [(src, i % nparts, b"rec-%d-%03d" % (i % nparts, i)) for i in range(nparts * per_part)]
    _produce_checked(producer(b), inputs)

    group = unique("g-ctp")
    c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                  "fetch.wait.max.ms": 100, "session.timeout.ms": 10000,
                  "heartbeat.interval.ms": 500})
    p = _txn_producer(b, unique("tid-ctp"))
    done = {part: 0 for part in range(nparts)}    # offsets committed so far (tracked here)
    batches = aborts = aborted_records = 0
    try:
        c.subscribe([src])
        deadline = time.monotonic() + 90
        while any(done[part] < per_part for part in range(nparts)):
            assert time.monotonic() < deadline, "copy loop did not finish: committed %s" % done
            msgs = c.consume(num_messages=50, timeout=0.5)
            recs = []
            for m in msgs:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(m.error())
                recs.append(m)
            if not recs:
                continue
            batches += 1
            nxt = dict(done)
            for m in recs:
                nxt[m.partition()] = m.offset() + 1
            p.begin_transaction()
            for m in recs:
                p.produce(dst, partition=m.partition(), key=m.key(), value=m.value().upper())
            # The next offsets to read, from the records themselves (what position() gives),
            # for the partitions read so far.
            p.send_offsets_to_transaction(
                [TopicPartition(src, part, off) for part, off in sorted(nxt.items()) if off > 0],
                c.consumer_group_metadata(), T)
            if batches % 3 == 0:
                # Flush first so the aborted copies are in the log (abort_transaction
                # would purge unsent ones): they must then be filtered, not just missing.
                flush_all(p, timeout=T)
                p.abort_transaction(T)
                aborts += 1
                aborted_records += len(recs)
                # Rewind to the group's committed offsets, which must be the last commit's.
                want = {part: (off if off > 0 else OFFSET_INVALID) for part, off in done.items()}

                def committed_is_last_commit():
                    got = c.committed([TopicPartition(src, part) for part in range(nparts)], timeout=T)
                    return {tp.partition: tp.offset for tp in got} == want
                wait_until(committed_is_last_commit, 10,
                           "group offsets %s (the last commit's) after the abort" % want, interval=0.1)
                for part in {m.partition() for m in recs}:   # partitions read in the aborted batch
                    c.seek(TopicPartition(src, part, done[part]))
            else:
                p.commit_transaction(T)
                done = nxt
        final = {tp.partition: tp.offset for tp in
                 c.committed([TopicPartition(src, part) for part in range(nparts)], timeout=T)}
        assert final == {part: per_part for part in range(nparts)}, final
    finally:
        c.close()
    assert aborts >= 1 and aborted_records > 0, "no batch was aborted (%d batches)" % batches

    out_tps = [(dst, part) for part in range(nparts)]
    sentinels = _sentinels(b, out_tps, "t6")
    got = collections.Counter(_values(_read_through(b, "read_committed", out_tps, sentinels))) \
        - collections.Counter({s: 1 for s in sentinels})
    want = collections.Counter(v.upper() for _, _, v in inputs)
    assert got == want, "output read_committed: missing %s, duplicated/unexpected %s" % (
        sorted((want - got).elements())[:10], sorted((got - want).elements())[:10])

    ru = _values(_read_through(b, "read_uncommitted", out_tps, sentinels))
    assert len(ru) == len(inputs) + aborted_records + len(sentinels), (
        "read_uncommitted output holds %d records, want %d committed + %d aborted + %d sentinels" % (
            len(ru), len(inputs), aborted_records, len(sentinels)))
