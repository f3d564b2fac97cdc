"""Produce throughput over SASL_SSL beside PLAINTEXT (issue "Security",
Performance: goal ≥ 80 %; see docs/benchmarks.md).

Run through scripts/bench_security.sh, which builds the release `weir` and
the venv; or directly, with WEIR_BIN set and confluent-kafka importable.

One `weir broker` on 127.0.0.1 with a PLAINTEXT and a SASL_SSL listener
(TLS 1.3 from rustls, SCRAM-SHA-512 user made with `weir user create`).
The same client (confluent-kafka, librdkafka) produces BENCH_RECORDS
records of BENCH_RECORD_SIZE bytes with acks=all to a fresh one-partition
topic through each listener, alternating, BENCH_REPEAT times each; the
records per second of every run, the medians and their ratio are printed
(JSON with --json).

Settings (environment): BENCH_RECORDS (200000), BENCH_RECORD_SIZE (1024),
BENCH_REPEAT (3).
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

RECORDS = int(os.environ.get("BENCH_RECORDS", "200000"))
SIZE = int(os.environ.get("BENCH_RECORD_SIZE", "1024"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
PASSWORD = "bench-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(directory, *args):
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def keystore(directory):
    """A CA and a PEM keystore (chain, then key) for 127.0.0.1."""
    openssl(directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench-ca")
    openssl(directory, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(directory, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(directory, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    path = os.path.join(directory, "keystore.pem")
    with open(path, "w") as out:
        for part in ("server.crt", "server.key"):
            with open(os.path.join(directory, part)) as f:
                out.write(f.read())
    return os.path.join(directory, "ca.pem"), path


def wait_for(port, deadline=60):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the broker did not start")


def produce(config, topic):
    """Records per second producing RECORDS records through `config`."""
    p = Producer(dict(config, **{"acks": "all", "linger.ms": 5, "batch.size": 1 << 20,
                                 "queue.buffering.max.messages": 1_000_000}))
    value = os.urandom(SIZE)
    start = time.monotonic()
    for _ in range(RECORDS):
        while True:
            try:
                p.produce(topic, value)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(120) == 0, "records left unsent"
    return RECORDS / (time.monotonic() - start)


def main():
    weir = os.environ["WEIR_BIN"]
    work = tempfile.mkdtemp(prefix="weir-bench-security-")
    ca, store = keystore(work)
    plain_port, sasl_port = free_port(), free_port()
    settings = [
        "listeners=PLAINTEXT://127.0.0.1:%d,SASL_SSL://127.0.0.1:%d" % (plain_port, sasl_port),
        "listener.name.sasl_ssl.ssl.keystore.location=" + store,
        "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512",
    ]
    args = [weir, "broker", "--node-id", "1", "--data-dir", os.path.join(work, "data")]
    for s in settings:
        args += ["--config", s]
    log = open(os.path.join(work, "broker.log"), "wb")
    broker = subprocess.Popen(args, stdout=log, stderr=log)
    try:
        wait_for(plain_port)
        plain = "127.0.0.1:%d" % plain_port
        subprocess.run([weir, "user", "create", "bench", "--mechanism", "SCRAM-SHA-512",
                        "--bootstrap-server", plain], check=True, capture_output=True,
                       env=dict(os.environ, WEIR_USER_PASSWORD=PASSWORD))
        clients = {
            "PLAINTEXT": {"bootstrap.servers": plain},
            "SASL_SSL": {"bootstrap.servers": "127.0.0.1:%d" % sasl_port,
                         "security.protocol": "SASL_SSL", "ssl.ca.location": ca,
                         "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "bench",
                         "sasl.password": PASSWORD},
        }
        admin = AdminClient({"bootstrap.servers": plain})
        runs = {name: [] for name in clients}
        for i in range(REPEAT):
            for name, config in clients.items():
                topic = "bench-%s-%d" % (name.lower(), i)
                admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
                runs[name].append(produce(config, topic))
        medians = {name: statistics.median(r) for name, r in runs.items()}
        result = {"records": RECORDS, "record_size": SIZE, "runs": runs, "medians": medians,
                  "ratio": medians["SASL_SSL"] / medians["PLAINTEXT"]}
        if "--json" in sys.argv:
            print(json.dumps(result))
        else:
            for name, r in runs.items():
                print("%-9s %s  median %.0f records/s (%.1f MB/s)" % (
                    name, " ".join("%.0f" % x for x in r), medians[name],
                    medians[name] * SIZE / 1e6))
            print("SASL_SSL / PLAINTEXT: %.1f %%" % (100 * result["ratio"]))
    finally:
        broker.terminate()
        broker.wait(30)
        log.close()


if __name__ == "__main__":
    main()
