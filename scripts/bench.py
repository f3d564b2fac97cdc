"""Produce benchmark: Weir against Tansu, same librdkafka load for both.

Run through scripts/bench.sh, which builds the release binaries and
installs Tansu. Prints a Markdown table (and writes JSON next to it) with
msgs/s, MB/s, p50/p99/p999 latency and broker CPU seconds per GB ingested,
for 100 B and 1 KiB records, 1 and 8 partitions, acks=1 and acks=all, plus
p99 at half of Weir's measured throughput.

Brokers are run one after another on 127.0.0.1, each on a fresh data
directory; runs are interleaved per configuration (Weir, Tansu memory,
Tansu null) so machine noise hits all three alike.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka.admin import AdminClient, NewTopic

WEIR = os.environ["WEIR_BIN"]
LOAD = os.environ["LOAD_BIN"]
TANSU = shutil.which("tansu") or os.path.expanduser("~/.cargo/bin/tansu")
CLK_TCK = os.sysconf("SC_CLK_TCK")
RECORDS = {100: int(os.environ.get("RECORDS_100", "2000000")), 1024: int(os.environ.get("RECORDS_1K", "500000"))}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("broker did not start")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line (1-based).
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Broker:
    def __init__(self, kind):
        self.kind = kind
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"bench-{kind}-")
        addr = f"127.0.0.1:{self.port}"
        if kind == "weir":
            cmd = [WEIR, "broker", "--node-id", "1", "--data-dir", self.dir, "--listen", addr, "--advertise", addr,
                   "--admin-listen", "127.0.0.1:0"]
        else:
            storage = "memory://tansu/" if kind == "tansu-memory" else "null://sink"
            cmd = [TANSU, "broker", "--listener-url", f"tcp://{addr}", "--advertised-listener-url", f"tcp://{addr}",
                   "--storage-engine", storage]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "WEIR_LOG": "warn", "RUST_LOG": "warn"})
        wait_port(self.port, self.proc)
        self.bootstrap = addr

    def create_topic(self, name, partitions):
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
            f.result(30)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_load(broker, topic, records, size, acks, rate=None):
    cpu0 = cpu_seconds(broker.proc.pid)
    args = [LOAD, broker.bootstrap, topic, str(records), str(size), acks] + ([str(rate)] if rate else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=600).stdout
    result = json.loads(out.strip().splitlines()[-1])
    gb = result["records"] * size / 1e9
    result["cpu_s_per_gb"] = (cpu_seconds(broker.proc.pid) - cpu0) / gb if gb else 0
    return result


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def main():
    kinds = ["weir", "tansu-memory", "tansu-null"] if os.path.exists(TANSU) else ["weir"]
    configs = [(size, parts, acks) for size in (100, 1024) for parts in (1, 8) for acks in ("1", "all")]
    # BENCH_ONLY="1024:8:1,100:1:all" runs a subset (size:partitions:acks).
    only = os.environ.get("BENCH_ONLY")
    if only:
        wanted = {tuple(c.split(":")) for c in only.split(",")}
        configs = [c for c in configs if (str(c[0]), str(c[1]), c[2]) in wanted]
    # BENCH_REPEAT=N repeats every configuration N times, brokers interleaved
    # within each repetition, and reports medians: this machine is noisy.
    repeat = int(os.environ.get("BENCH_REPEAT", "1"))
    runs = {}
    for n, (size, parts, acks) in enumerate(configs):
        for rep in range(repeat):
            for kind in kinds:
                broker = Broker(kind)
                try:
                    topic = f"bench-{n}"
                    broker.create_topic(topic, parts)
                    full = run_load(broker, topic, RECORDS[size], size, acks)
                    half = run_load(broker, topic, RECORDS[size] // 2, size, acks,
                                    rate=max(1, int(full["msgs_per_s"] / 2)))
                    runs.setdefault((kind, size, parts, acks), []).append((full, half))
                    print(f"{kind:13} {size:5}B p={parts} acks={acks:3} #{rep + 1}  {full['msgs_per_s']:>9.0f} msg/s "
                          f"{full['mb_per_s']:7.1f} MB/s  p99 {full['p99_ms']:7.2f} ms  half-load p99 {half['p99_ms']:6.2f} ms  "
                          f"CPU {full['cpu_s_per_gb']:.2f} s/GB", file=sys.stderr, flush=True)
                finally:
                    broker.stop()
    results = []
    for (kind, size, parts, acks), pairs in runs.items():
        full = {k: median([f[k] for f, _ in pairs]) for k in pairs[0][0]}
        half = {k: median([h[k] for _, h in pairs]) for k in pairs[0][1]}
        results.append({"broker": kind, "size": size, "partitions": parts, "acks": acks, "runs": len(pairs),
                        "full": full, "half": half, "all": pairs})
    with open(os.environ.get("BENCH_JSON", "bench-results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"Medians of {repeat} run(s) per row.\n")
    print("| broker | record | partitions | acks | msgs/s | MB/s | p50 ms | p99 ms | p999 ms | p99 at half load, ms | broker CPU s/GB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        f, h = r["full"], r["half"]
        print(f"| {r['broker']} | {r['size']} B | {r['partitions']} | {r['acks']} | {f['msgs_per_s']:,.0f} | {f['mb_per_s']:.1f} | "
              f"{f['p50_ms']:.1f} | {f['p99_ms']:.1f} | {f['p999_ms']:.1f} | {h['p99_ms']:.2f} | {f['cpu_s_per_gb']:.2f} |")


if __name__ == "__main__":
    main()
