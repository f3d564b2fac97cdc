#!/usr/bin/env bash
# Produce throughput over SASL_SSL beside PLAINTEXT, same client, same run;
# see scripts/bench_security.py and docs/benchmarks.md. Settings are
# environment variables (BENCH_RECORDS, BENCH_RECORD_SIZE, BENCH_REPEAT).
exec "$(dirname "$0")/bench_python.sh" bench_security "$@"
