#!/usr/bin/env bash
# Runs a Python benchmark (scripts/NAME.py) against the release `weir`:
# builds it, makes the venv with confluent-kafka if there is none, sets
# WEIR_BIN. Usage: scripts/bench_python.sh NAME [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
name="$1"
shift
cache="${WEIR_CACHE:-$HOME/.cache/weir}"
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$cache/target-release}"

nice -n 19 cargo build --release -p weir-cli
export WEIR_BIN="$CARGO_TARGET_DIR/release/weir"

venv="${BENCH_VENV:-$cache/venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null || "$venv/bin/pip" install -q -r tests/python/requirements.txt
"$venv/bin/python" "scripts/$name.py" "$@"
