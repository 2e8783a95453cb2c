#!/usr/bin/env bash
# recovery.sh — how long brokerd takes to come back (scenario 13 of the
# crash tests, docs/testing.md): preload RECOVERY_BYTES through broker-bench
# (acks=all), kill -9, restart and time start to the "ready" line (an unclean
# start: every partition scans what its last checkpoint does not cover); then
# SIGTERM, restart and time it again (a clean start: nothing scanned).
# Usage: tests/bench/recovery.sh BUILD_DIR (needs BUILD_DIR/brokerd and
# BUILD_DIR/broker-bench; BENCH_PARTS=recovery tests/bench/run.sh BUILD_DIR
# runs it too).  About 1 minute on 2 cores, mostly the preload.
# Informational: exits non-zero only when a run fails.
#
# The worst case on purpose: checkpoint.interval.ms is an hour, so no
# checkpoint covers the preload and the unclean start scans all of it (the
# default, 60 s, bounds a scan to what was written in the last minute).  The
# page cache is warm (the preload just wrote it): the scan is CRC-bound, the
# disk is not measured.
#
# Environment (defaults):
#   BENCH_DIR=/tmp                a fresh sub-directory is made there and removed
#   RECOVERY_BYTES=2200000000     bytes to preload (>= 2 GiB)
#   RECOVERY_PARTITIONS=4         partitions of the one topic
#   RECOVERY_SIZE=1024            bytes per record
set -euo pipefail
shopt -s inherit_errexit

BUILD=${1:?usage: recovery.sh BUILD_DIR}
BB=$BUILD/broker-bench
BROKERD=$BUILD/brokerd
RECOVERY_BYTES=${RECOVERY_BYTES:-2200000000}
RECOVERY_PARTITIONS=${RECOVERY_PARTITIONS:-4}
RECOVERY_SIZE=${RECOVERY_SIZE:-1024}

for f in "$BB" "$BROKERD"; do
	[ -x "$f" ] || { echo "recovery.sh: $f not built (make $f)" >&2; exit 1; }
done

BENCH_NAME=recovery
WARM=0
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init

D=$DIR/r
mkdir -p "$D"
LOGN=0

# start: brokerd on $D/data; sets BROKER_PID, PORT, READY_S (start to the
# "ready" line, seconds) and OPEN_MS (the broker's own "opened in" figure).
start() {
	LOGN=$((LOGN + 1))
	local log=$D/broker.$LOGN.log t0 t1
	t0=$(date +%s%N)
	"$BROKERD" --listen "127.0.0.1:${PORT:-0}" --data-dir "$D/data" -o admin.listen=off \
		-o flush.mode=always -o checkpoint.interval.ms=3600000 2>"$log" &
	BROKER_PID=$!
	for _ in $(seq 60000); do
		if grep -q 'ready: listening on' "$log"; then
			t1=$(date +%s%N)
			READY_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
			PORT=$(sed -n 's/.*ready: listening on .*(port \([0-9]*\)).*/\1/p' "$log" | tail -n 1)
			OPEN_MS=$(sed -n 's/.*partitions opened in \([0-9.]*\) ms.*/\1/p' "$log" | tail -n 1)
			return 0
		fi
		kill -0 "$BROKER_PID" 2>/dev/null || break
		sleep 0.01
	done
	echo "recovery.sh: brokerd did not become ready; its log:" >&2
	cat "$log" >&2
	exit 1
}

log_bytes() { find "$D/data" -name '*.log' -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }'; }

start
n=$(( RECOVERY_BYTES / RECOVERY_SIZE + 1 ))
note "preload: $n records of $RECOVERY_SIZE B, $RECOVERY_PARTITIONS partitions, acks=all"
if ! out=$("$BB" --broker "127.0.0.1:$PORT" --topic rec --create --partitions "$RECOVERY_PARTITIONS" \
	--messages "$n" --size "$RECOVERY_SIZE" --producers 2 --consumers 0 --acks all -q 2>&1); then
	echo "recovery.sh: preload failed:" >&2
	echo "$out" >&2
	exit 1
fi
BYTES=$(log_bytes)
GIB=$(awk -v b="$BYTES" 'BEGIN { printf "%.2f", b / 1073741824 }')

kill -KILL "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null || true
BROKER_PID=""
start
UNCLEAN_S=$READY_S UNCLEAN_OPEN_MS=$OPEN_MS
grep -c 'unclean shutdown, scanning' "$D/broker.$LOGN.log" >/dev/null ||
	{ echo "recovery.sh: the restart after kill -9 did not recover (no scan logged)" >&2; exit 1; }

stop_broker
start
CLEAN_S=$READY_S CLEAN_OPEN_MS=$OPEN_MS
if grep -q 'unclean shutdown' "$D/broker.$LOGN.log"; then
	echo "recovery.sh: the restart after SIGTERM scanned (unclean)" >&2
	exit 1
fi
stop_broker

echo "recovery: data=${GIB} GiB (${BYTES} B) partitions=$RECOVERY_PARTITIONS" \
	"after_kill9_ready_s=$UNCLEAN_S (opened in ${UNCLEAN_OPEN_MS} ms)" \
	"after_sigterm_ready_s=$CLEAN_S (opened in ${CLEAN_OPEN_MS} ms)" \
	"scan_MBps=$(awk -v b="$BYTES" -v ms="$UNCLEAN_OPEN_MS" 'BEGIN { printf "%.0f", b / 1e6 / (ms / 1e3) }')"
