#!/usr/bin/env bash
# The whole test suite: builds once, then runs the Rust tests (unit and
# cross-process, with the rdkafka crate) and the real-client suites
# (confluent-kafka, kafka-python, kcat) against the built `weir` binary.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${WEIR_CACHE:-$HOME/.cache/weir}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
venv="$cache/venv"

if [ ! -x "$venv/bin/python" ]; then
  echo "== creating the Python venv for client tests"
  python3 -m venv "$venv"
fi
requirements=(tests/python/requirements.txt tests/operator/requirements.txt)
if ! cat "${requirements[@]}" | cmp -s - "$venv/.requirements"; then
  "$venv/bin/pip" install -q $(printf -- '-r %s ' "${requirements[@]}")
  cat "${requirements[@]}" > "$venv/.requirements"
fi
# kafka-python 2.x cannot share a venv with 3.x: a second one for it.
legacy="$cache/venv-kafka-python2"
if ! "$legacy/bin/python" -c 'import kafka; assert kafka.__version__ == "2.0.2"' 2>/dev/null; then
  python3 -m venv "$legacy"
  "$legacy/bin/pip" install -q "kafka-python==2.0.2"
fi
export KAFKA_PYTHON2="$legacy/bin/python"
if ! command -v kcat >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing kcat"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
  else
    echo "kcat is missing: install it (Debian/Ubuntu: sudo apt-get install kcat) and run again"
    exit 1
  fi
fi

# PostgreSQL's server binaries, for the PostgreSQL connectors' tests (each
# test runs a private server of its own with initdb; none is started here).
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing postgresql"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "PostgreSQL is missing: install it (Debian/Ubuntu: sudo apt-get install postgresql) and run again"
    exit 1
  fi
fi

# The Apache Kafka Java client, as ../shared/design/TESTING.md gets it: the
# kafka-clients jar bundled in a PyPI wheel, slf4j from Debian.
java_dir="$cache/java"
java_jar="$java_dir/_atoti_server_kafka/__resources__/plugin.jar"
if [ ! -f "$java_jar" ]; then
  echo "== fetching the Kafka Java client"
  mkdir -p "$java_dir"
  "$venv/bin/pip" download -q --no-deps -d "$java_dir" atoti-server-kafka==0.9.16
  "$venv/bin/python" -m zipfile -e "$java_dir"/atoti_server_kafka-*.whl "$java_dir"
fi
if [ ! -f /usr/share/java/slf4j-api.jar ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libslf4j-java >/dev/null
  else
    echo "slf4j is missing: install it (Debian/Ubuntu: sudo apt-get install libslf4j-java) and run again"
    exit 1
  fi
fi
export WEIR_JAVA_CLASSPATH="$java_jar:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-nop.jar"

echo "== build (once, shared by every stage)"
cargo build --workspace --all-targets
export WEIR_BIN="$CARGO_TARGET_DIR/debug/weir"

echo "== container image weir:dev (for tests/tests/containers.rs)"
# From the debug binary just built: a release build would double the compile
# time on 2 cores, and the container tests check behaviour, not speed. The
# Dockerfile and `scripts/build-image.sh` alone build from --release.
if docker info >/dev/null 2>&1; then
  WEIR_BIN_RELEASE="$WEIR_BIN" scripts/build-image.sh
else
  echo "!! no Docker engine: the container tests will skip themselves"
fi

echo "== Rust tests (unit + cross-process with rdkafka)"
cargo nextest run --workspace --no-fail-fast

echo "== real clients (confluent-kafka, kafka-python, kcat) and Kubernetes manifests (kubernetes-validate, Helm)"
# A crash inside a client library (librdkafka, Helm's Go SDK) names the test.
export PYTHONFAULTHANDLER=1
"$venv/bin/python" -m pytest tests/python tests/operator -q
