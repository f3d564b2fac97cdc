#!/usr/bin/env bash
# Produce benchmark of Weir beside Tansu (a Rust Kafka-compatible broker),
# with the same librdkafka load for both; see docs/benchmarks.md.
# Installs Tansu with cargo on first use (about 8 minutes); never commit it.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${WEIR_CACHE:-$HOME/.cache/weir}"
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$cache/target-release}"

cargo build --release -p weir-cli
cargo build --release -p weir-e2e --example rdkafka_load
export WEIR_BIN="$CARGO_TARGET_DIR/release/weir" LOAD_BIN="$CARGO_TARGET_DIR/release/examples/rdkafka_load"

if ! command -v tansu >/dev/null && [ ! -x "$HOME/.cargo/bin/tansu" ] && [ "${SKIP_TANSU:-}" != 1 ]; then
  cargo install tansu --locked --features dynostore
fi

venv="$cache/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null || "$venv/bin/pip" install -q -r tests/python/requirements.txt
"$venv/bin/python" scripts/bench.py "$@"
