#!/usr/bin/env bash
# Rebalance benchmark: KIP-848 consumer groups beside classic ones, 10
# members over 900 partitions, one joining and one leaving; see
# scripts/bench_rebalance.py and docs/benchmarks.md. Settings are
# environment variables (BENCH_REPEAT, BENCH_MODES, BENCH_HEARTBEAT_MS, …,
# listed in the .py's docstring).
exec "$(dirname "$0")/bench_python.sh" bench_rebalance "$@"
