#!/usr/bin/env bash
# Task-group moves beside consumer-group rebalances, same broker build, same
# run (issue "Task groups", Performance; docs/benchmarks.md):
#   1. `weir bench tasks`: 64 tasks, 3 → 4 → 3 members (join, leave, crash)
#      against one release `weir broker`;
#   2. the peer: scripts/bench_rebalance.py with 64 partitions and 3 → 4 → 3
#      members, cooperative-sticky classic groups (the protocol Kafka
#      Streams and Connect rebalance with before KIP-1071) and KIP-848,
#      at default heartbeats and at 500 ms (task groups' default).
# BENCH_ROUNDS (default 5) repeats each.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${WEIR_CACHE:-$HOME/.cache/weir}"
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$cache/target-release}"
rounds="${BENCH_ROUNDS:-5}"
nice -n 19 cargo build --release -p weir-cli
weir="$CARGO_TARGET_DIR/release/weir"

data="$(mktemp -d)"
port="${BENCH_PORT:-19492}"
"$weir" broker --node-id 1 --data-dir "$data" --listen "127.0.0.1:$port" > "$data/broker.log" 2>&1 &
broker=$!
trap 'kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do
  "$weir" topic list --bootstrap-server "127.0.0.1:$port" > /dev/null 2>&1 && break
  sleep 0.2
done
echo "== task groups (weir bench tasks)"
"$weir" bench tasks --bootstrap-server "127.0.0.1:$port" --tasks 64 --members 3 --rounds "$rounds"
kill "$broker"; wait "$broker" 2>/dev/null || true

venv="${BENCH_VENV:-$cache/venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null || "$venv/bin/pip" install -q -r tests/python/requirements.txt
export WEIR_BIN="$weir" BENCH_PARTITIONS=64 BENCH_MEMBERS=3 BENCH_REPEAT="$rounds" BENCH_MODES=cooperative,consumer
echo "== consumer groups, default heartbeats"
BENCH_JSON="$data/default.json" "$venv/bin/python" scripts/bench_rebalance.py
echo "== consumer groups, 500 ms heartbeats"
BENCH_JSON="$data/fast.json" BENCH_HEARTBEAT_MS=500 "$venv/bin/python" scripts/bench_rebalance.py
