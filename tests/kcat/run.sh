#!/usr/bin/env bash
# End-to-end checks of a running Weir broker with kcat (Debian's kcat 1.7.1 /
# librdkafka 2.0.2, or any kcat on PATH; $KCAT overrides).
#
#   tests/kcat/run.sh 127.0.0.1:9092
#
# The broker must allow topic auto-creation (auto.create.topics.enable=true):
# kcat cannot create topics itself. Prints one line per check and
# "N passed, M failed" as the last line; exits non-zero if any check failed.
set -u -o pipefail

BOOTSTRAP="${1:?usage: $0 HOST:PORT}"
KCAT="${KCAT:-kcat}"
T="${KCAT_TIMEOUT:-30}"        # seconds per kcat invocation
RUN_ID="$$-${RANDOM}${RANDOM}"
PASSED=0
FAILED=0
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

pass() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
fail() {
    FAILED=$((FAILED + 1)); echo "FAIL - $1"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then sed -n '1,20p' "$2" | sed 's/^/       | /'; fi
}

kc() { timeout "$T" "$KCAT" -b "$BOOTSTRAP" "$@"; }

# Wait (bounded) until `kcat -L -t TOPIC` shows the topic with a leader for partition 0.
wait_topic() {
    local topic="$1" i
    for i in $(seq 1 50); do
        if kc -L -t "$topic" -m 5 2>/dev/null | grep -q "partition 0, leader 1"; then return 0; fi
        sleep 0.2
    done
    return 1
}

# check_roundtrip NAME TOPIC EXPECTED_FILE [consume args...]
check_consume() {
    local name="$1" topic="$2" expected="$3"; shift 3
    local got="$WORK/got-$name" err="$WORK/err-$name"
    if ! kc -C -t "$topic" -e -o beginning -q "$@" >"$got" 2>"$err"; then
        fail "$name: kcat -C exited non-zero" "$err"; return
    fi
    if diff -u "$expected" "$got" >"$WORK/diff-$name"; then
        pass "$name ($(wc -l <"$expected") records)"
    else
        fail "$name: consumed records differ from produced" "$WORK/diff-$name"
    fi
}

echo "# kcat $("$KCAT" -V 2>&1 | grep -o 'Version [0-9.]*' | head -1) with $("$KCAT" -V 2>&1 | grep -o 'librdkafka [0-9.]*' | head -1) against $BOOTSTRAP"

# --- metadata -----------------------------------------------------------------
META_TOPIC="kcat-meta-$RUN_ID"
printf 'hello\n' | kc -P -t "$META_TOPIC" -p 0 2>"$WORK/err-meta"
if wait_topic "$META_TOPIC"; then pass "auto-created topic $META_TOPIC has a leader"; else fail "topic $META_TOPIC never got a leader" "$WORK/err-meta"; fi
kc -L -m 10 >"$WORK/meta" 2>&1
HOSTPORT="$BOOTSTRAP"
if grep -Eq "^ +broker 1 at ${HOSTPORT//./\\.}( \(controller\))?\$" "$WORK/meta"; then
    pass "kcat -L lists broker 1 at $HOSTPORT"
else
    fail "kcat -L does not list broker 1 at $HOSTPORT" "$WORK/meta"
fi
if grep -Eq "^ +topic \"$META_TOPIC\" with [0-9]+ partitions:" "$WORK/meta"; then
    pass "kcat -L lists topic $META_TOPIC"
else
    fail "kcat -L does not list topic $META_TOPIC" "$WORK/meta"
fi
printf 'hello\n' >"$WORK/exp-meta"
check_consume "plain-value" "$META_TOPIC" "$WORK/exp-meta" -p 0 -f '%s\n'

# --- keyed records in each codec, one partition so order is exact ---------------
for codec in none gzip snappy lz4 zstd; do
    topic="kcat-$codec-$RUN_ID"
    : >"$WORK/in-$codec"; : >"$WORK/exp-$codec"
    for i in $(seq 1 200); do
        printf 'key-%d:value-%s-%d-%s\n' "$i" "$codec" "$i" "padding-padding-padding" >>"$WORK/in-$codec"
        printf 'key-%d=value-%s-%d-%s\n' "$i" "$codec" "$i" "padding-padding-padding" >>"$WORK/exp-$codec"
    done
    if ! kc -P -t "$topic" -p 0 -K: -z "$codec" -X linger.ms=50 <"$WORK/in-$codec" 2>"$WORK/err-p-$codec"; then
        fail "produce with -z $codec exited non-zero" "$WORK/err-p-$codec"; continue
    fi
    check_consume "keyed-$codec" "$topic" "$WORK/exp-$codec" -p 0 -f '%k=%s\n'
    # offsets are dense from 0
    seq 0 199 >"$WORK/exp-off-$codec"
    check_consume "offsets-$codec" "$topic" "$WORK/exp-off-$codec" -p 0 -f '%o\n'
done

# --- keyed records without a fixed partition: all partitions, compare as sets ----
topic="kcat-keyed-any-$RUN_ID"
: >"$WORK/in-any"
for i in $(seq 1 100); do printf 'k%d:v%d\n' "$i" "$i" >>"$WORK/in-any"; done
if kc -P -t "$topic" -K: <"$WORK/in-any" 2>"$WORK/err-p-any"; then
    sed 's/:/=/' "$WORK/in-any" | sort >"$WORK/exp-any"
    if kc -C -t "$topic" -e -o beginning -q -f '%k=%s\n' 2>"$WORK/err-any" | sort >"$WORK/got-any"; then
        if diff -u "$WORK/exp-any" "$WORK/got-any" >"$WORK/diff-any"; then pass "keyed-any-partition (100 records)"
        else fail "keyed-any-partition: records differ" "$WORK/diff-any"; fi
    else
        fail "keyed-any-partition: kcat -C exited non-zero" "$WORK/err-any"
    fi
    # the same key always lands in the same partition
    # the same key always lands in the same partition (send the keys again, then check)
    kc -P -t "$topic" -K: <"$WORK/in-any" 2>/dev/null
    kc -C -t "$topic" -e -o beginning -q -f '%k %p\n' 2>/dev/null | sort -u >"$WORK/key-parts"
    awk '{print $1}' "$WORK/key-parts" | uniq -d >"$WORK/split-keys"
    if [ "$(wc -l <"$WORK/key-parts")" -eq 100 ] && [ ! -s "$WORK/split-keys" ]; then
        pass "each of 100 keys in a single partition"
    else
        fail "keys split over partitions or missing ($(wc -l <"$WORK/key-parts") key/partition pairs)" "$WORK/split-keys"
    fi
else
    fail "keyed-any-partition: produce exited non-zero" "$WORK/err-p-any"
fi

# --- headers ---------------------------------------------------------------------
topic="kcat-headers-$RUN_ID"
if printf 'hv\n' | kc -P -t "$topic" -p 0 -H "h1=one" -H "h2=two" 2>"$WORK/err-p-h"; then
    printf 'h1=one,h2=two|hv\n' >"$WORK/exp-h"
    check_consume "headers" "$topic" "$WORK/exp-h" -p 0 -f '%h|%s\n'
else
    fail "headers: produce exited non-zero" "$WORK/err-p-h"
fi

# --- a consumer group through kcat's balanced consumer (-G) ----------------------
topic="kcat-none-$RUN_ID"
group="kcat-group-$RUN_ID"
if timeout "$T" "$KCAT" -b "$BOOTSTRAP" -G "$group" -X auto.offset.reset=earliest -e -q -f '%k=%s\n' "$topic" >"$WORK/got-group" 2>"$WORK/err-group"; then
    if diff -u "$WORK/exp-none" "$WORK/got-group" >"$WORK/diff-group"; then pass "balanced consumer -G reads the topic (200 records)"
    else fail "balanced consumer -G: records differ" "$WORK/diff-group"; fi
else
    fail "balanced consumer -G exited non-zero" "$WORK/err-group"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
