#!/usr/bin/env bash
# Produce throughput over SASL_SSL beside PLAINTEXT, same client, same run;
# see scripts/bench_security.py and docs/benchmarks.md. Settings are
# environment variables (BENCH_RECORDS, BENCH_RECORD_SIZE, BENCH_REPEAT).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${WEIR_CACHE:-$HOME/.cache/weir}"
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$cache/target-release}"

nice -n 19 cargo build --release -p weir-cli
export WEIR_BIN="$CARGO_TARGET_DIR/release/weir"

venv="${BENCH_VENV:-$cache/venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null || "$venv/bin/pip" install -q -r tests/python/requirements.txt
"$venv/bin/python" scripts/bench_security.py "$@"
