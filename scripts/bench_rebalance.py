"""Rebalance benchmark: KIP-848 consumer groups beside classic ones (issue
"Consumer groups, part 2", Performance; see docs/benchmarks.md).

Run through scripts/bench_rebalance.sh, which builds the release `weir` and
the venv; or directly, with WEIR_BIN set and confluent-kafka importable:

    WEIR_BIN=.../release/weir python scripts/bench_rebalance.py

One `weir broker` on 127.0.0.1 with a fresh data directory, one topic with
900 partitions (no records). For each group protocol, in one run and
interleaved (BENCH_REPEAT=N repeats the whole sequence N times):

  consumer     group.protocol=consumer (KIP-848, the broker's default
               server-side assignor, `uniform`)
  cooperative  group.protocol=classic, cooperative-sticky
  eager        group.protocol=classic, range (eager: everything is revoked)

eleven member processes (scripts/bench_rebalance_member.py, confluent-kafka)
are started; ten subscribe at once and settle ("initial"), then the eleventh
subscribes ("join"), then one of the first ten closes cleanly ("leave").
For each event, from the callbacks' CLOCK_MONOTONIC stamps:

  converge ms  event (the member's subscribe() or close() call) → the last
               ownership change, after which every partition is owned by
               exactly one member, every member owns some, nothing moves for
               the quiet period and DescribeGroups/ConsumerGroupDescribe says
               Stable;
  max gap ms   the longest time one partition had no owner during the
               rebalance (revoke/lost callback returned → assign callback
               entered on its next owner);
  moved        partitions whose owner after differs from before; `with a
               gap` partitions that were without an owner for any time
               (eager: all of them); `double` counts partitions
               that had two owners at once (an assign entered before the
               previous owner's revoke returned) — it must be 0.

Ownership is rebuilt from the callbacks: `assigned` adds the partitions it
was given, `revoked`/`lost` removes them (incremental for cooperative and
KIP-848, the whole assignment for eager, which the same rule covers). Each
member also reports its full assignment() after every callback; the run
checks that the rebuilt set matches (`mismatch` in the JSON).

Settings (environment):
  BENCH_REPEAT=N        repetitions (default 1)
  BENCH_MODES=a,b       subset of consumer,cooperative,eager
  BENCH_PARTITIONS=900  BENCH_MEMBERS=10
  BENCH_HEARTBEAT_MS=X  KIP-848: broker group.consumer.heartbeat.interval.ms
                        (and its min bound) = X; classic: the members'
                        heartbeat.interval.ms = X. Unset: every default
                        (KIP-848 5000 ms from the broker, classic 3000 ms).
  BENCH_QUIET_S         quiet period (default 2 × the longest heartbeat
                        interval in use, at least 3 s)
  BENCH_JSON=path       JSON output (default bench-rebalance.json)
Prints a Markdown table on stdout, progress on stderr; the JSON also holds
every member's raw events. The broker's log is
kept (path printed) and its WARN/ERROR lines are counted in the JSON.
"""

import collections
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka.admin import AdminClient, NewTopic

WEIR = os.environ.get("WEIR_BIN", "")
HERE = os.path.dirname(os.path.abspath(__file__))
MEMBER = os.path.join(HERE, "bench_rebalance_member.py")
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "900"))
MEMBERS = int(os.environ.get("BENCH_MEMBERS", "10"))
HEARTBEAT_MS = int(os.environ.get("BENCH_HEARTBEAT_MS", "0") or 0)
MODES = os.environ.get("BENCH_MODES", "consumer,cooperative,eager").split(",")
REPEAT = int(os.environ.get("BENCH_REPEAT", "1"))
KIP848_HB_S = (HEARTBEAT_MS or 5000) / 1000
CLASSIC_HB_S = (HEARTBEAT_MS or 3000) / 1000
QUIET_S = float(os.environ.get("BENCH_QUIET_S") or max(3.0, 2 * max(KIP848_HB_S, CLASSIC_HB_S)))
PHASE_TIMEOUT_S = 120.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One `weir broker` on a fresh data directory; stopped by its own PID."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bench-rebalance-")
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        configs = {"group.initial.rebalance.delay.ms": "0"}
        if HEARTBEAT_MS:
            configs["group.consumer.min.heartbeat.interval.ms"] = str(min(HEARTBEAT_MS, 5000))
            configs["group.consumer.heartbeat.interval.ms"] = str(HEARTBEAT_MS)
        cmd = [WEIR, "broker", "--node-id", "1", "--data-dir", os.path.join(self.dir, "data"),
               "--listen", self.bootstrap, "--advertise", self.bootstrap, "--admin-listen", "127.0.0.1:0"]
        for k, v in configs.items():
            cmd += ["--config", f"{k}={v}"]
        self.log_path = os.path.join(tempfile.gettempdir(), f"bench-rebalance-broker-{self.port}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        self.admin = None
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weir broker exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                self.admin = AdminClient({"bootstrap.servers": self.bootstrap})
                self.admin.list_topics(timeout=5)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_topic(self, name, partitions):
        for f in self.admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=60).values():
            f.result(90)
        deadline = time.monotonic() + 60
        while True:
            t = self.admin.list_topics(topic=name, timeout=10).topics.get(name)
            if t is not None and t.error is None and len(t.partitions) == partitions and all(
                    p.leader >= 0 for p in t.partitions.values()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {name} not ready")
            time.sleep(0.2)

    def group_state(self, group):
        """(state name, member count) as the broker describes the group, or an error string."""
        try:
            d = self.admin.describe_consumer_groups([group], request_timeout=5)[group].result(10)
            return d.state.name, len(d.members)
        except Exception as e:  # reported, never fatal
            return f"error: {e}", None

    def problems(self):
        """WARN/ERROR lines of the broker's log."""
        with open(self.log_path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return [ln for ln in lines if " WARN " in ln or " ERROR " in ln or "panick" in ln]

    def stop(self):
        self.admin = None  # close the client before the broker goes
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Member:
    """A member process; its JSON events are collected by a reader thread."""

    def __init__(self, bootstrap, group, topic, name, mode, log):
        self.name = name
        args = [sys.executable, MEMBER, bootstrap, group, topic, name, mode]
        if HEARTBEAT_MS and mode != "consumer":
            args.append(str(HEARTBEAT_MS))
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        self.events = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            ev["member"] = self.name
            with self.lock:
                self.events.append(ev)

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def first(self, kind):
        return next((e for e in self.snapshot() if e["ev"] == kind), None)

    def send(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def wait_for(self, kind, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            e = self.first(kind)
            if e is not None:
                return e
            if self.proc.poll() is not None:
                raise RuntimeError(f"member {self.name} exited with {self.proc.returncode}")
            time.sleep(0.02)
        raise RuntimeError(f"member {self.name}: no {kind!r} event within {timeout}s")

    def finish(self, timeout=60):
        try:
            if self.proc.poll() is None:
                self.send("close")
        except (BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.reader.join(5)


def ownership_events(members):
    """Every callback of every member as (time, order, member, op, partitions),
    sorted by time. An assignment starts when its callback is entered; a
    revocation ends when its callback returns (the application may use the
    partition until then)."""
    out = []
    for m in members:
        for e in m.snapshot():
            if e["ev"] == "assigned":
                out.append((e["t"], 1, m.name, "add", e["partitions"]))
            elif e["ev"] in ("revoked", "lost"):
                out.append((e["t_end"], 0, m.name, "remove", e["partitions"]))
    out.sort(key=lambda x: (x[0], x[1]))
    return out


def replay(events, until=None):
    """Owner sets per partition after `events` (up to time `until`)."""
    owners = {p: set() for p in range(PARTITIONS)}
    for t, _, m, op, ps in events:
        if until is not None and t > until:
            break
        for p in ps:
            (owners[p].add if op == "add" else owners[p].discard)(m)
    return owners


def valid(owners, active):
    """Exactly one owner per partition, every owner active, every active member owning some."""
    counts = {m: 0 for m in active}
    for ps in owners.values():
        if len(ps) != 1:
            return False
        (m,) = ps
        if m not in counts:
            return False
        counts[m] += 1
    return all(counts.values()) or PARTITIONS < len(active)


def analyse(events, t_event, t_stop):
    """Figures of the rebalance after `t_event` (up to `t_stop`)."""
    owners = {p: set() for p in range(PARTITIONS)}
    unowned_since = {p: float("-inf") for p in range(PARTITIONS)}
    before = None
    gaps = []
    gapped = set()
    overlaps = set()
    last_change = None
    callbacks = 0
    for t, _, m, op, ps in events:
        if t > t_stop:
            break
        during = t >= t_event
        if during and before is None:
            before = {p: frozenset(o) for p, o in owners.items()}
        if during:
            callbacks += 1
            last_change = t
        for p in ps:
            if op == "add":
                if owners[p] - {m} and during:
                    overlaps.add(p)
                if p in unowned_since:
                    since = unowned_since.pop(p)
                    if during:
                        gaps.append(t - max(since, t_event))
                        gapped.add(p)
                owners[p].add(m)
            else:
                owners[p].discard(m)
                if not owners[p]:
                    unowned_since[p] = t
    if before is None:
        before = {p: frozenset(o) for p, o in owners.items()}
    for p, since in unowned_since.items():
        gaps.append(t_stop - max(since, t_event))  # not owned again by the end
        gapped.add(p)
    per_member = collections.Counter(m for ps in owners.values() for m in ps)
    return {
        "converge_ms": None if last_change is None else (last_change - t_event) * 1e3,
        "max_gap_ms": max(gaps) * 1e3 if gaps else 0.0,
        "partitions_with_gap": len(gapped),
        "moved": sum(1 for p, o in owners.items() if o != before[p]),
        "double_owned": len(overlaps),
        "callbacks": callbacks,
        "unowned_at_end": sum(1 for ps in owners.values() if not ps),
        "counts_at_end": sorted(per_member.values()),
    }


def check_reported(members):
    """Compare, per member, the set rebuilt from its callbacks with the
    assignment() it reported after them; returns the number of mismatches."""
    bad = 0
    for m in members:
        mine = set()
        for e in m.snapshot():
            if e["ev"] == "assigned":
                mine |= set(e["partitions"])
            elif e["ev"] in ("revoked", "lost"):
                mine -= set(e["partitions"])
            elif e["ev"] == "assignment" and set(e["partitions"]) != mine:
                bad += 1
    return bad


def settle(broker, group, members, active, t_event):
    """Wait until ownership is valid for `active`, quiet for QUIET_S and the
    group Stable; returns (analysis, state) or raises on timeout."""
    deadline = t_event + PHASE_TIMEOUT_S
    state = None
    while True:
        now = time.monotonic()
        events = ownership_events(members)
        last = events[-1][0] if events else t_event
        if valid(replay(events), active) and now - max(last, t_event) >= QUIET_S:
            state = broker.group_state(group)
            if state[0] == "STABLE" or state[0].startswith("error") or now > deadline:
                break
        if now > deadline:
            state = broker.group_state(group)
            break
        time.sleep(0.1)
    result = analyse(events, t_event, now)
    result["converged"] = valid(replay(events), active)
    result["group_state"] = state[0]
    result["group_members"] = state[1]
    return result


def scenario(broker, topic, mode, log):
    group = f"bench-{mode}-{uuid.uuid4().hex[:8]}"
    members = [Member(broker.bootstrap, group, topic, f"m{i:02d}", mode, log) for i in range(MEMBERS + 1)]
    phases = {}
    try:
        for m in members:
            m.wait_for("created")
        first, joiner, leaver = members[:MEMBERS], members[MEMBERS], members[0]
        for m in first:
            m.send("subscribe")
        t0 = min(m.wait_for("subscribe")["t"] for m in first)
        phases["initial"] = settle(broker, group, members, {m.name for m in first}, t0)
        joiner.send("subscribe")
        t1 = joiner.wait_for("subscribe")["t"]
        phases["join"] = settle(broker, group, members, {m.name for m in members}, t1)
        leaver.send("close")
        t2 = leaver.wait_for("closing")["t"]
        phases["leave"] = settle(broker, group, members, {m.name for m in members[1:]}, t2)
        mismatches = check_reported(members)
        for p in phases.values():
            p["mismatch"] = mismatches
        phases["initial"]["t_event"], phases["join"]["t_event"], phases["leave"]["t_event"] = t0, t1, t2
    finally:
        for m in members:
            m.finish()
    raw = sorted((e for m in members for e in m.snapshot()), key=lambda e: e["t"])
    return phases, raw


LABELS = {"consumer": "KIP-848 (uniform)", "cooperative": "classic cooperative-sticky", "eager": "classic range (eager)"}


def fmt(v, digits=0):
    return "—" if v is None else f"{v:,.{digits}f}"


def main():
    if not WEIR:
        sys.exit("set WEIR_BIN to the weir binary (scripts/bench_rebalance.sh does)")
    broker = Broker()
    print(f"broker {broker.bootstrap} pid {broker.proc.pid}, log {broker.log_path}", file=sys.stderr, flush=True)
    member_log_path = broker.log_path.replace("broker", "members")
    results = []
    events = []
    try:
        topic = "bench-rebalance"
        broker.create_topic(topic, PARTITIONS)
        with open(member_log_path, "w") as log:
            for rep in range(REPEAT):
                for mode in MODES:
                    phases, raw = scenario(broker, topic, mode, log)
                    events.append({"mode": mode, "rep": rep + 1, "events": raw})
                    for phase, r in phases.items():
                        r.update(mode=mode, phase=phase, rep=rep + 1)
                        results.append(r)
                        print(f"#{rep + 1} {mode:11} {phase:7} converge {fmt(r['converge_ms'])} ms, max gap "
                              f"{fmt(r['max_gap_ms'])} ms, moved {r['moved']}, double {r['double_owned']}, "
                              f"{r['group_state']}, counts {r['counts_at_end'][:1]}..{r['counts_at_end'][-1:]}",
                              file=sys.stderr, flush=True)
        problems = broker.problems()
    finally:
        broker.stop()
    out = {"partitions": PARTITIONS, "members": MEMBERS, "heartbeat_ms": HEARTBEAT_MS or None,
           "quiet_s": QUIET_S, "repeat": REPEAT, "results": results,
           "broker_warn_error_lines": len(problems), "broker_warn_error_sample": problems[:20],
           "events": events}
    with open(os.environ.get("BENCH_JSON", "bench-rebalance.json"), "w") as f:
        json.dump(out, f, indent=1)

    hb = (f"heartbeat {HEARTBEAT_MS} ms" if HEARTBEAT_MS
          else "default heartbeats (KIP-848 5 s from the broker, classic 3 s)")
    print(f"{MEMBERS} members + 1 joining, {PARTITIONS} partitions, {hb}, quiet period {QUIET_S:g} s, "
          f"{REPEAT} repetition(s).\n")
    print("| protocol | event | run | converge ms | max gap ms | moved | partitions with a gap | double-owned "
          "| callbacks | per member at end | group state |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode in MODES:
        for phase in ("initial", "join", "leave"):
            for r in (r for r in results if r["mode"] == mode and r["phase"] == phase):
                c = r["counts_at_end"]
                print(f"| {LABELS[mode]} | {phase} | {r['rep']} | {fmt(r['converge_ms'])} | {fmt(r['max_gap_ms'])} "
                      f"| {r['moved']} | {r['partitions_with_gap']} | {r['double_owned']} | {r['callbacks']} "
                      f"| {c[0] if c else 0}–{c[-1] if c else 0} | {r['group_state']}"
                      f"{'' if r['converged'] else ' (NOT converged)'} |")
    if REPEAT > 1:
        print("\nMedians over the repetitions:\n")
        print("| protocol | event | converge ms | max gap ms |")
        print("| --- | --- | --- | --- |")
        for mode in MODES:
            for phase in ("initial", "join", "leave"):
                rs = [r for r in results if r["mode"] == mode and r["phase"] == phase]
                conv = [r["converge_ms"] for r in rs if r["converge_ms"] is not None]
                print(f"| {LABELS[mode]} | {phase} | {fmt(statistics.median(conv) if conv else None)} "
                      f"| {fmt(statistics.median(r['max_gap_ms'] for r in rs))} |")
    mism = sorted({r["mismatch"] for r in results})
    print(f"\nCallback deltas vs reported assignment(): mismatches {mism}. "
          f"Broker WARN/ERROR lines: {len(problems)}.")


if __name__ == "__main__":
    main()
