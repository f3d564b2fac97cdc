"""The Apache Kafka Java client (kafka-clients 3.9, the reference client)
runs the transaction sequence against the real broker: commit, abort,
read_committed vs read_uncommitted, offsets in a transaction, fencing.

The classpath comes from $WEIR_JAVA_CLASSPATH, which scripts/test.sh sets
after fetching the jar (see ../shared/design/TESTING.md).
"""

import os
import shutil
import subprocess

from weir_helpers import create_topic, unique

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "..", "java", "TransactionsCheck.java")


def test_java_client_transactions(module_broker):
    classpath = os.environ.get("WEIR_JAVA_CLASSPATH")
    assert classpath, "WEIR_JAVA_CLASSPATH is not set: run through scripts/test.sh"
    java = shutil.which("java")
    assert java, "java is not installed"
    topic = create_topic(module_broker.bootstrap, unique("java-txn"), 2)
    run = subprocess.run([java, "-cp", classpath, CHECK, module_broker.bootstrap, topic],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "FAILED" not in run.stdout, run.stdout
