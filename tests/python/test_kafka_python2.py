"""kafka-python 2.x (the issue asks for 2.x compatibility; the main venv has
3.x). scripts/test.sh keeps a second venv with kafka-python 2.0.2 and points
KAFKA_PYTHON2 at its interpreter; the smoke script runs there, against a
real broker."""

import collections
import json
import os
import subprocess

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "legacy", "kafka_python2_smoke.py")


def test_kafka_python_2_produces_consumes_and_commits(broker):
    python = os.environ.get("KAFKA_PYTHON2")
    if not python:
        pytest.fail("KAFKA_PYTHON2 is not set: run through scripts/test.sh, which creates the kafka-python 2.x venv")
    out = subprocess.run([python, SCRIPT, broker.bootstrap, "kp2", "kp2-group"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["version"].startswith("2."), result["version"]
    assert sorted(result["values"], key=lambda v: int(v[1:])) == ["v%d" % i for i in range(100)]
    per_partition = collections.Counter(p for p, _ in result["acked"])
    # Committed offsets equal what each partition received.
    assert {int(p): o for p, o in result["offsets"].items()} == dict(per_partition)
    assert "kp2-group" in result["groups"]
