#!/usr/bin/env bash
# client.sh — brokerd through its client library: broker-bench (tools/) against
# a fresh brokerd on a loopback port.  Usage: tests/bench/client.sh BUILD_DIR
# (needs BUILD_DIR/brokerd and BUILD_DIR/broker-bench; BENCH_PARTS=client
# tests/bench/run.sh BUILD_DIR runs it too).  About 35 s on 2 cores.
# Informational: exits non-zero only when a run fails (a delivery error, a
# lost or duplicated record, a broker that does not start).  Raw result
# lines as it goes, then one table.
#
# What is measured:
#  - produce: CLIENT_PRODUCERS threads, each its own bk_producer (batch_size
#    64 KiB, linger 5 ms, 32 MiB buffer: the library's defaults), keyless
#    records spread over CLIENT_PARTITIONS partitions, acks=all on a
#    flush.mode=always broker (every ack follows an fdatasync, group commit).
#    Produce latency is send call to delivery callback: flat out it is mostly
#    time queued in the producer's buffer, as in kafka-producer-perf-test.
#  - consume: CLIENT_CONSUMERS threads, each its own bk_consumer on a share of
#    the partitions, read what produce wrote from the earliest offset to the
#    high watermarks (every batch CRC-checked by the library).
#  - e2e: producers paced to CLIENT_E2E_RATE records/s in total for
#    CLIENT_E2E_SECONDS while the consumers tail from the latest offset; the
#    value carries the send time (CLOCK_MONOTONIC), so end-to-end = send call
#    to bk_consumer_poll returning the record.  Under flush.mode=always the
#    consumers see only synced records, so it includes an fdatasync.  Run
#    with linger 0 (latency first) and with the default linger 5 ms.
#  - broker-bench checks every record arrives exactly once (missing and
#    duplicates) in the e2e runs, and the consume counts against the produce.
#
# Environment (defaults):
#   BENCH_DIR=/tmp            a fresh sub-directory is made there and removed
#   CLIENT_N_100=2000000      records of the 100 B produce
#   CLIENT_N_1K=500000        records of the 1 KiB produce
#   CLIENT_PRODUCERS=2 CLIENT_CONSUMERS=2 CLIENT_PARTITIONS=4
#   CLIENT_E2E_RATE=10000     records/s of the e2e runs (all producers)
#   CLIENT_E2E_SECONDS=10     seconds per e2e run
#   CLIENT_WARM=1             warm the page cache before produce runs (as wire.sh)
set -euo pipefail
shopt -s inherit_errexit

BUILD=${1:?usage: client.sh BUILD_DIR}
BB=$BUILD/broker-bench
BROKERD=$BUILD/brokerd
CLIENT_N_100=${CLIENT_N_100:-2000000}
CLIENT_N_1K=${CLIENT_N_1K:-500000}
CLIENT_PRODUCERS=${CLIENT_PRODUCERS:-2}
CLIENT_CONSUMERS=${CLIENT_CONSUMERS:-2}
CLIENT_PARTITIONS=${CLIENT_PARTITIONS:-4}
CLIENT_E2E_RATE=${CLIENT_E2E_RATE:-10000}
CLIENT_E2E_SECONDS=${CLIENT_E2E_SECONDS:-10}
CLIENT_WARM=${CLIENT_WARM:-1}

for f in "$BB" "$BROKERD"; do
	[ -x "$f" ] || { echo "client.sh: $f not built (make $f)" >&2; exit 1; }
done

BENCH_NAME=client
WARM=$CLIENT_WARM
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init
T0=$SECONDS

# bb ARGS...: run broker-bench against the broker; its result line, with the
# broker's CPU appended, is printed and left in LINE.  A failed run prints
# everything broker-bench said and ends the script.
bb() {
	local out
	cpu_begin
	if ! out=$("$BB" --broker "127.0.0.1:$PORT" --duration 60 -q "$@" 2>&1); then
		printf '%s\n' "$out" >&2
		echo "client.sh: broker-bench $* failed" >&2
		exit 1
	fi
	cpu_end
	LINE="$(grep '^broker-bench result=' <<<"$out") srv_cpu=$SRV_CPU%"
	echo "$LINE"
}

kv() { sed -n "s/.*[ ^]$2=\([^ ]*\).*/\1/p" <<<" $1" | head -n 1; }
hnum() { awk -v v="$1" 'BEGIN { if (v >= 1e6) printf "%.2fM", v / 1e6; else if (v >= 1e3) printf "%.0fk", v / 1e3; else printf "%.0f", v }'; }

P=$CLIENT_PRODUCERS C=$CLIENT_CONSUMERS PARTS=$CLIENT_PARTITIONS
echo "# brokerd client benchmark: $(nproc) CPUs, kernel $(uname -r), $("$BROKERD" --version 2>&1 | head -n 1)"
echo "# broker-bench: $P producers, $C consumers, $PARTS partitions, acks=all, flush.mode=always, loopback"

start_broker main
note "broker pid $BROKER_PID port $PORT"
declare -A R
# e2e first, before gigabytes of writes stir the disk (as wire.sh).
for linger in 0 5; do
	n=$((CLIENT_E2E_RATE * CLIENT_E2E_SECONDS))
	note "e2e: $CLIENT_E2E_RATE records/s for $CLIENT_E2E_SECONDS s, 100 B, linger $linger ms"
	bb --topic "e2e-l$linger" --create --partitions "$PARTS" --producers "$P" --consumers "$C" \
		--messages "$n" --rate "$CLIENT_E2E_RATE" --size 100 --linger-ms "$linger" --acks all
	R[e2e.$linger]=$LINE
done
for size in 100 1024; do
	if [ "$size" = 100 ]; then n=$CLIENT_N_100; else n=$CLIENT_N_1K; fi
	warm $((n * (size + 16) / 1048576 + 256))
	note "produce: $n x $size B, acks=all"
	bb --topic "p$size" --create --partitions "$PARTS" --producers "$P" --consumers 0 \
		--messages "$n" --size "$size" --acks all
	R[produce.$size]=$LINE
done
for size in 100 1024; do
	note "consume: p$size from the earliest offset"
	bb --topic "p$size" --producers 0 --consumers "$C" --from earliest
	R[consume.$size]=$LINE
	got=$(kv "$LINE" consumed) want=$(kv "${R[produce.$size]}" produced)
	if [ "$got" != "$want" ]; then
		echo "client.sh: consumed $got records of p$size, produced $want" >&2
		exit 1
	fi
done
stop_broker

echo
echo "== brokerd through libbrokerc: broker-bench, $P producers / $C consumers," \
	"$PARTS partitions, acks=all, flush.mode=always =="
row() { printf '%-34s %10s %9s %10s %10s %10s %10s %10s %7s\n' "$@"; }
row scenario records/s MB/s "p50 us" "p95 us" "p99 us" "p99.9 us" "max us" broker
lat() { # LINE PREFIX -> the five latency columns
	local k
	for k in p50 p95 p99 p999 max; do
		printf '%s\n' "$(kv "$1" "${2}_${k}_us" | awk '{ printf "%.0f", $1 }')"
	done
}
for size in 100 1024; do
	l=${R[produce.$size]}
	mapfile -t L < <(lat "$l" produce)
	row "produce $size B (send->ack)" "$(hnum "$(kv "$l" produce_records_per_s)")" \
		"$(kv "$l" produce_MB_per_s)" "${L[@]}" "$(kv "$l" srv_cpu)"
done
for size in 100 1024; do
	l=${R[consume.$size]}
	row "consume $size B" "$(hnum "$(kv "$l" consume_records_per_s)")" \
		"$(kv "$l" consume_MB_per_s)" - - - - - "$(kv "$l" srv_cpu)"
done
for linger in 0 5; do
	l=${R[e2e.$linger]}
	mapfile -t L < <(lat "$l" produce)
	row "e2e ${CLIENT_E2E_RATE}/s linger $linger: send->ack" \
		"$(hnum "$(kv "$l" produce_records_per_s)")" "$(kv "$l" produce_MB_per_s)" "${L[@]}" \
		"$(kv "$l" srv_cpu)"
	mapfile -t L < <(lat "$l" e2e)
	row "  send->consumer poll" "$(hnum "$(kv "$l" consume_records_per_s)")" \
		"$(kv "$l" consume_MB_per_s)" "${L[@]}" ""
done
echo "MB = 10^6 bytes of values; broker = brokerd CPU in % of one core (machine: $(nproc)00%);"
echo "produce latency flat out is mostly time queued in the producer's 32 MiB buffer;"
echo "every e2e record arrived exactly once (missing=0 duplicates=0, checked by broker-bench)."
echo
echo "# done in $((SECONDS - T0)) s"
