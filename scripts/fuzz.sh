#!/usr/bin/env bash
# Fuzzes the request decoder and the SASL exchange parsers with libFuzzer
# (cargo fuzz). A benchmark-like job, not part of CI: run it for as long
# as you like.
#   scripts/fuzz.sh [SECONDS] [TARGET]   (default 300, decode_request;
#   targets: decode_request, sasl_exchange)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo fuzz wants nightly-only flags; RUSTC_BOOTSTRAP lets the stable
# toolchain accept them, and `-s none` skips the sanitizer runtime, which
# stable does not ship.
export RUSTC_BOOTSTRAP=1
target="${2:-decode_request}"
mkdir -p "fuzz/corpus/$target"
cargo fuzz run -s none "$target" "fuzz/corpus/$target" -- \
  -max_total_time="$seconds" -rss_limit_mb=4096
