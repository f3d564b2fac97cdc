"""Runs tests/kcat/run.sh (kcat against a real broker) inside the pytest suite:
once with Debian's kcat as installed (librdkafka 2.0.2) and once with the same
kcat loaded against the newer librdkafka bundled in the confluent-kafka wheel."""

import glob
import os
import shutil
import subprocess

import confluent_kafka
import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kcat", "run.sh")
BROKER_CONFIGS = {"auto.create.topics.enable": "true", "num.partitions": "3"}


def _bundled_librdkafka():
    libs = os.path.join(os.path.dirname(confluent_kafka.__file__), "..", "confluent_kafka.libs")
    found = sorted(glob.glob(os.path.join(libs, "librdkafka-*.so.1")))
    return found[0] if found else None


@pytest.mark.parametrize("librdkafka", ["system", "bundled"])
def test_kcat_script(module_broker, tmp_path, librdkafka):
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat is not installed (apt-get install -y kcat)")
    env = dict(os.environ)
    if librdkafka == "bundled":
        lib = _bundled_librdkafka()
        if lib is None:
            pytest.skip("confluent-kafka wheel without a bundled librdkafka")
        os.symlink(os.path.abspath(lib), str(tmp_path / "librdkafka.so.1"))
        env["LD_LIBRARY_PATH"] = str(tmp_path)
    proc = subprocess.run(["bash", SCRIPT, module_broker.bootstrap], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=240)
    out = proc.stdout.decode("utf-8", "replace")
    lines = out.strip().splitlines()
    assert lines, "run.sh printed nothing"
    if librdkafka == "bundled":
        want = "librdkafka %s" % confluent_kafka.libversion()[0]
        assert want in lines[0], "kcat did not load the bundled library: %s" % lines[0]
    assert lines[-1].endswith(" 0 failed"), out
    assert proc.returncode == 0, out
    print(out)
