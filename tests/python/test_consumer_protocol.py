"""KIP-848 consumer groups (`group.protocol=consumer`) with real clients:
confluent-kafka (librdkafka) and the Apache Kafka Java client, each member
its own process. Three members join, one leaves, one is killed -9; every
member's assign/revoke callbacks, stamped with one clock, show that no
partition was ever owned by two members at once, and the committed offsets
carry on without losing a record."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, ConsumerGroupType
from confluent_kafka.admin import AdminClient

from weir_helpers import create_topic, flush_all, producer, unique, wait_until, watermarks

HERE = os.path.dirname(os.path.abspath(__file__))
NPART = 6

# Short session timeouts so the killed member's partitions move in seconds;
# the broker-side bounds must allow them.
BROKER_CONFIGS = {
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.session.timeout.ms": "6000",
    "group.consumer.heartbeat.interval.ms": "500",
    "group.consumer.min.heartbeat.interval.ms": "500",
}


class Member:
    """A member process and the events it printed."""

    def __init__(self, argv, name):
        self.name = name
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events = []
        self.lock = threading.Lock()
        self.ended_at = None
        self.stderr = []
        self.readers = [threading.Thread(target=self._read, daemon=True),
                        threading.Thread(target=self._read_err, daemon=True)]
        for r in self.readers:
            r.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                with self.lock:
                    self.events.append(json.loads(line))

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def owned(self):
        held = set()
        for e in self.snapshot():
            if e["ev"] == "assigned":
                held |= set(e["partitions"])
            elif e["ev"] in ("revoked", "lost"):
                held -= set(e["partitions"])
        return held if self.ended_at is None else set()

    def consumed(self):
        return {(e["partition"], e["offset"]) for e in self.snapshot() if e["ev"] == "record"}

    def leave(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        # The process has exited, but its last lines ("closed") may still be
        # in the pipe: read them to the end before looking.
        for r in self.readers:
            r.join(10)
        self.ended_at = self._closed_at()

    def _closed_at(self):
        closed = [e["t"] for e in self.snapshot() if e["ev"] == "closed"]
        assert closed, "%s did not close: %s" % (self.name, "".join(self.stderr[-20:]))
        return closed[0]

    def kill9(self):
        self.ended_at = time.monotonic()
        self.proc.kill()
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def ownership_intervals(members):
    """partition -> [(start, end, member)] from every member's callbacks; an
    ownership still open ends when its process ended (or never)."""
    out = {}
    for m in members:
        open_since = {}
        for e in m.snapshot():
            if e["ev"] == "assigned":
                for p in e["partitions"]:
                    open_since.setdefault(p, e["t"])
            elif e["ev"] in ("revoked", "lost"):
                for p in e["partitions"]:
                    if p in open_since:
                        out.setdefault(p, []).append((open_since.pop(p), e["t"], m.name))
        for p, start in open_since.items():
            end = m.ended_at if m.ended_at is not None else float("inf")
            out.setdefault(p, []).append((start, end, m.name))
    return out


def assert_never_owned_twice(members):
    for p, spans in ownership_intervals(members).items():
        spans.sort()
        for (s1, e1, m1), (s2, e2, m2) in zip(spans, spans[1:]):
            assert e1 <= s2, (
                "partition %d owned by %s (%.3f..%.3f) and %s (from %.3f) at once"
                % (p, m1, s1, e1, m2, s2))


def _produce_round(bootstrap, topic, n):
    p = producer(bootstrap)
    for part in range(NPART):
        for i in range(n):
            p.produce(topic, partition=part, value=b"v%d" % i)
    flush_all(p)


def _python_member(bootstrap, group, topic, name):
    return Member([sys.executable, os.path.join(HERE, "group_member.py"), bootstrap, group, topic, name],
                  name)


def _java_member(bootstrap, group, topic, name):
    classpath = os.environ.get("WEIR_JAVA_CLASSPATH")
    assert classpath, "WEIR_JAVA_CLASSPATH is not set: run through scripts/test.sh"
    java = shutil.which("java")
    assert java, "java is not installed"
    check = os.path.join(HERE, "..", "java", "GroupMember.java")
    return Member([java, "-cp", classpath, check, bootstrap, group, topic, name], name)


def _split(members, sizes):
    owned = [m.owned() for m in members]
    return (sorted(len(o) for o in owned) == sorted(sizes)
            and set().union(*owned) == set(range(NPART))
            and sum(len(o) for o in owned) == NPART)


def _all_consumed(bootstrap, topic, members):
    hw = watermarks(bootstrap, topic, range(NPART))
    want = {(p, o) for p in range(NPART) for o in range(hw[p][0], hw[p][1])}
    got = set().union(*(m.consumed() for m in members))
    return want - got


def _weir(weir_bin, *args):
    out = subprocess.run([weir_bin, *args], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "WEIR_LOG": "warn"})
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


def _partitions(cell, topic):
    """`topic(0,1)` as {0, 1}; `-` as the empty set."""
    if cell == "-":
        return set()
    assert cell.startswith(topic + "(") and cell.endswith(")"), cell
    return {int(p) for p in cell[len(topic) + 1:-1].split(",")}


def _check_cli_describe(weir_bin, bootstrap, group, topic, members):
    """`weir group describe` shows the type, the epochs and, per member, its
    epoch and its assigned and target partitions, as the members own them."""
    text = _weir(weir_bin, "group", "describe", group, "--bootstrap-server", bootstrap)
    header = dict(f.split(": ", 1) for f in text.splitlines()[0].split("\t"))
    assert header["Type"] == "consumer", text
    assert header["State"] == "Stable", text
    assert header["Assignor"] == "uniform", text
    assert int(header["Group epoch"]) >= 3 and header["Assignment epoch"] == header["Group epoch"], text
    rows = text.split("MEMBER\tEPOCH\tCLIENT-ID\tHOST\tASSIGNED\tTARGET\n", 1)[1].split("\n\n", 1)[0]
    described = {}
    for row in rows.splitlines():
        member_id, epoch, client_id, host, assigned, target = row.split("\t")
        assert int(epoch) >= 1 and host, row
        described[client_id] = (_partitions(assigned, topic), _partitions(target, topic))
    assert described == {m.name: (m.owned(), m.owned()) for m in members}, (text, [m.owned() for m in members])
    assert "Total lag: " in text, text
    listed = [line.split() for line in _weir(weir_bin, "group", "list", "--bootstrap-server", bootstrap).splitlines()]
    assert [group, "Stable", "consumer", "consumer"] in listed, listed


@pytest.mark.parametrize("client", ["librdkafka", "java"])
def test_three_join_one_leaves_one_is_killed(module_broker, client, weir_bin):
    b = module_broker.bootstrap
    topic = create_topic(b, unique("kip848-" + client), NPART)
    group = unique("cg-" + client)
    spawn = _python_member if client == "librdkafka" else _java_member
    _produce_round(b, topic, 20)
    members = [spawn(b, group, topic, "%s-%d" % (client, i)) for i in range(3)]
    try:
        wait_until(lambda: _split(members, [2, 2, 2]), 90, "three members with two partitions each")
        assert_never_owned_twice(members)

        admin = AdminClient({"bootstrap.servers": b})
        desc = admin.describe_consumer_groups([group])[group].result(30)
        assert desc.type == ConsumerGroupType.CONSUMER, desc.type
        assert len(desc.members) == 3
        described = {m.client_id: {tp.partition for tp in m.assignment.topic_partitions} for m in desc.members}
        for m in members:
            assert described[m.name] == m.owned(), (described, m.name, m.owned())
        listed = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result(30)
        assert group in {g.group_id for g in listed.valid}
        listed_classic = admin.list_consumer_groups(types={ConsumerGroupType.CLASSIC}).result(30)
        assert group not in {g.group_id for g in listed_classic.valid}
        # The last acknowledgement may still be on its way to the coordinator.
        for attempt in range(10):
            try:
                _check_cli_describe(weir_bin, b, group, topic, members)
                break
            except AssertionError:
                if attempt == 9:
                    raise
                time.sleep(0.5)

        # One leaves: its partitions go to the other two, 3 each.
        _produce_round(b, topic, 20)
        members[2].leave()
        wait_until(lambda: _split(members[:2], [3, 3]), 60, "two members with three partitions each")
        assert_never_owned_twice(members)

        # One is killed -9: after its session times out the survivor owns all.
        _produce_round(b, topic, 20)
        wait_until(lambda: members[1].consumed(), 30, "the second member consumes")
        members[1].kill9()
        wait_until(lambda: _split(members[:1], [NPART]), 60, "the survivor owns every partition")
        assert_never_owned_twice(members)

        _produce_round(b, topic, 20)
        try:
            wait_until(lambda: not _all_consumed(b, topic, members), 60, "every record consumed")
        except AssertionError:
            missing = sorted(_all_consumed(b, topic, members))
            raise AssertionError("records never consumed (partition, offset): %s...; events: %s" % (
                missing[:20], [(m.name, [e for e in m.snapshot() if e["ev"] != "record"]) for m in members]))

        # The committed offsets are the end of every partition: the survivor
        # took over the killed member's partitions from where it committed.
        members[0].leave()
        hw = watermarks(b, topic, range(NPART))
        offsets = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)])[group].result(30)
        committed = {tp.partition: tp.offset for tp in offsets.topic_partitions if tp.topic == topic}
        assert committed == {p: hw[p][1] for p in range(NPART)}, (committed, hw)
        assert_never_owned_twice(members)
    finally:
        for m in members:
            m.stop()


@pytest.mark.parametrize("protocol", ["consumer", "classic"])
def test_weir_consume_shares_a_group_with_librdkafka(module_broker, weir_bin, protocol):
    """weir-client as `weir consume` and a confluent-kafka member split one
    group — a KIP-848 consumer group, or a classic group with
    cooperative-sticky on both sides; when the weir member stops, the other
    takes over from its commits: every record is read by one of them and
    the committed offsets end at the log end."""
    b = module_broker.bootstrap
    topic = create_topic(b, unique("shared-" + protocol), NPART)
    group = unique("cg-weir-" + protocol)
    _produce_round(b, topic, 10)
    rdkafka = Member([sys.executable, os.path.join(HERE, "group_member.py"), b, group, topic,
                      "librdkafka-0", protocol], "librdkafka-0")
    weir = subprocess.Popen(
        [weir_bin, "consume", topic, "--group", group, "--group-protocol", protocol,
         "--partition-assignment-strategy", "cooperative-sticky",
         "--from-beginning", "--print-offset", "--bootstrap-server", b],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "WEIR_LOG": "warn"})
    try:
        admin = AdminClient({"bootstrap.servers": b})

        def split():
            desc = admin.describe_consumer_groups([group])[group].result(30)
            sizes = sorted(len(m.assignment.topic_partitions) for m in desc.members)
            want = ConsumerGroupType.CONSUMER if protocol == "consumer" else ConsumerGroupType.CLASSIC
            return desc.type == want and sizes == [NPART // 2, NPART // 2] and desc
        desc = wait_until(split, 60, "the two members with half the partitions each")
        weir_parts = {tp.partition for m in desc.members if m.client_id == "weir-consume"
                      for tp in m.assignment.topic_partitions}
        wait_until(lambda: rdkafka.owned() == set(range(NPART)) - weir_parts, 30,
                   "the librdkafka member owns the other half")
        read_by_weir = set()
        reader = threading.Thread(target=lambda: read_by_weir.update(
            tuple(int(x) for x in line.split("\t", 1)[0].split(":")) for line in weir.stdout), daemon=True)
        reader.start()
        _produce_round(b, topic, 10)
        # What was produced after the split, on the weir member's half, is
        # read by the weir member.
        theirs = {(p, o) for p in weir_parts for o in range(10, 20)}
        wait_until(lambda: theirs <= set(read_by_weir), 60, "the weir member reads its half")
        weir.send_signal(signal.SIGINT)
        weir.wait(30)
        reader.join(30)
        assert weir.returncode == 0, weir.stderr.read()
        wait_until(lambda: rdkafka.owned() == set(range(NPART)), 60, "the librdkafka member takes over")
        _produce_round(b, topic, 10)
        hw = watermarks(b, topic, range(NPART))
        want = {(p, o) for p in range(NPART) for o in range(hw[p][0], hw[p][1])}
        wait_until(lambda: want <= (rdkafka.consumed() | read_by_weir), 60, "every record read by a member")
        rdkafka.leave()
        offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
        committed = {tp.partition: tp.offset for tp in offsets.topic_partitions if tp.topic == topic}
        assert committed == {p: hw[p][1] for p in range(NPART)}, (committed, hw)
    finally:
        if weir.poll() is None:
            weir.kill()
            weir.wait()
        rdkafka.stop()
