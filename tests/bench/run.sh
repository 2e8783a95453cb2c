#!/usr/bin/env bash
# run.sh — `make bench`: the storage benchmark (fio baselines and bench_log on
# one directory), then the network (wire.sh) and client (client.sh) parts.
# Usage: tests/bench/run.sh BUILD_DIR        (make bench runs it on build/rel)
# Prints raw result lines as it goes, then a summary table with the issue's
# two floors (PASS/BELOW).  Informational: exits 0 when a floor is missed,
# non-zero only when a program fails.  About 2.5 minutes on 2 cores.
#
# Environment (defaults):
#   BENCH_DIR=/tmp        a fresh sub-directory is made there and removed
#   FIO_SIZE=1g           bytes per fio sequential-write job
#   FIO_RUNTIME=20        cap in seconds per fio job
#   BENCH_TOTAL=1g        bench_log --total-bytes per throughput run
#   BENCH_SECONDS=8       bench_log --seconds per throughput run
#   GC_SECONDS=5          bench_log --seconds per group-commit run
#   GC_APPENDERS=64       appenders of the group-commit run
#   BENCH_PREALLOC=1      also compare fallocate / pre-zeroed / O_DIRECT
#   PREALLOC_SIZE=64m     bytes per prealloc job (capped at 10 s each)
#   BENCH_WARM=1          write+delete a scratch file before big jobs (see warm)
#   BENCH_RUNS=2          rounds of parts 1-2 (median reported; ~55 s each)
#   BENCH_PARTS="storage wire client recovery"  any of "storage" (this
#                         script), "wire" (tests/bench/wire.sh: the network
#                         benchmark beside Redis, ~3 min), "client"
#                         (tests/bench/client.sh: broker-bench through the
#                         client library, ~35 s) and "recovery"
#                         (tests/bench/recovery.sh: time to ready after kill -9
#                         and after SIGTERM with >= 2 GiB of data, ~1 min), run
#                         in that order
set -euo pipefail
shopt -s inherit_errexit

BUILD=${1:?usage: run.sh BUILD_DIR}
BENCH_PARTS=${BENCH_PARTS:-storage wire client recovery}
WIRE_SH=$(dirname "$0")/wire.sh
CLIENT_SH=$(dirname "$0")/client.sh
RECOVERY_SH=$(dirname "$0")/recovery.sh
for part in $BENCH_PARTS; do
	case $part in
	storage | wire | client | recovery) ;;
	*) echo "run.sh: BENCH_PARTS='$BENCH_PARTS': expected storage, wire, client and/or recovery" >&2
	   exit 2 ;;
	esac
done
has_part() { case " $BENCH_PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
# The parts after storage, each a script of its own.
other_parts() {
	if has_part wire; then "$WIRE_SH" "$BUILD"; fi
	if has_part client; then "$CLIENT_SH" "$BUILD"; fi
	if has_part recovery; then "$RECOVERY_SH" "$BUILD"; fi
}
if ! has_part storage; then
	other_parts
	exit 0
fi
BENCH_LOG=$BUILD/bench/bench_log
FIO_SIZE=${FIO_SIZE:-1g}
FIO_RUNTIME=${FIO_RUNTIME:-20}
BENCH_TOTAL=${BENCH_TOTAL:-1g}
BENCH_SECONDS=${BENCH_SECONDS:-8}
GC_SECONDS=${GC_SECONDS:-5}
GC_APPENDERS=${GC_APPENDERS:-64}
BENCH_PREALLOC=${BENCH_PREALLOC:-1}
PREALLOC_SIZE=${PREALLOC_SIZE:-64m}
BENCH_WARM=${BENCH_WARM:-1}
BENCH_RUNS=${BENCH_RUNS:-2}
SIZES="16k 1m"
MODES="os interval always"

[ -x "$BENCH_LOG" ] || { echo "run.sh: $BENCH_LOG not built (make $BENCH_LOG)" >&2; exit 1; }
command -v fio >/dev/null || { echo "run.sh: fio not found (apt-get install fio; make bench does)" >&2; exit 1; }
if command -v python3 >/dev/null; then JSON=python3
elif command -v jq >/dev/null; then JSON=jq
else echo "run.sh: need python3 or jq to read fio's JSON" >&2; exit 1
fi

DIR=$(mktemp -d "${BENCH_DIR:-/tmp}/brokerd-bench.XXXXXX")
cleanup() { rm -rf -- "$DIR"; }
trap cleanup EXIT
T0=$SECONDS

note() { printf '%s\n' "# $*" >&2; }

# "16k" / "1m" / "1g" / plain bytes -> bytes.
to_bytes() {
	local v=${1%[bB]} m=1
	v=${v%i}
	case $v in
	*[kK]) m=1024; v=${v%?} ;;
	*[mM]) m=$((1 << 20)); v=${v%?} ;;
	*[gG]) m=$((1 << 30)); v=${v%?} ;;
	esac
	echo $((v * m))
}

# On this VM (virtio_balloon free page reporting) memory that stayed free
# for ~2 s goes back to the host, and the first touch after that costs
# ~2.5 ms per MiB: a cold buffered write of 1 GiB runs at ~350 MB/s instead of
# ~2 GB/s, depending only on what ran before.  Only page-cache folios freed
# just before make the next job's page cache warm (touching anonymous or
# tmpfs memory does not), so write a scratch file as large as the job's and
# delete it (delalloc: it never reaches the disk).
warm() {
	[ "$BENCH_WARM" = 1 ] || return 0
	local mib=$((($(to_bytes "$1") >> 20) + 256))
	dd if=/dev/zero of="$DIR/warm.dat" bs=1M count="$mib" status=none
	rm -f -- "$DIR/warm.dat"
}

# Drop the previous job's file and let its discards/journal settle.
settle() {
	rm -f -- "$DIR"/fio.dat
	sync -f "$DIR" 2>/dev/null || sync
}

# fio_vals JSON -> "MB/s write_p50_us sync_p50_us sync_p99_us commit_mean_us"
fio_vals() {
	if [ "$JSON" = python3 ]; then
		python3 - "$1" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
w = j["write"]
def pct(d, p):
    return d.get("percentile", {}).get("%.6f" % p, 0) / 1000.0
s = j.get("sync", {}).get("lat_ns", {})
print("%.1f %.1f %.1f %.1f %.1f" % (w["bw_bytes"] / 1e6, pct(w["clat_ns"], 50),
      pct(s, 50), pct(s, 99), 1e6 / w["iops"] if w["iops"] else 0))
EOF
	else
		jq -r '.jobs[0] | [(.write.bw_bytes / 1e6),
			((.write.clat_ns.percentile["50.000000"] // 0) / 1000),
			((.sync.lat_ns.percentile["50.000000"] // 0) / 1000),
			((.sync.lat_ns.percentile["99.000000"] // 0) / 1000),
			(if .write.iops > 0 then 1e6 / .write.iops else 0 end)]
			| map(. * 10 | round / 10) | map(tostring) | join(" ")' "$1"
	fi
}

# fio_run NAME ARGS... -> prints fio_vals of the job; the file is fio.dat.
fio_run() {
	local name=$1 out=$DIR/$1.json
	shift
	fio --name="$name" --filename="$DIR/fio.dat" --output-format=json --output="$out" "$@" >&2
	fio_vals "$out"
}

# kv LINE KEY -> value of KEY=value in a bench_log line.
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# Float helpers.
calc() { awk "BEGIN { printf \"%.2f\", $* }"; }
calc1() { awk "BEGIN { printf \"%.1f\", $* }"; }
ge() { awk "BEGIN { exit !($1 >= $2) }"; }

# med "LIST" [DECIMALS] -> median of a space-separated list of numbers.
med() {
	tr ' ' '\n' <<<"$1" | grep . | sort -g |
		awk -v d="${2:-1}" '{ a[NR] = $1 }
			END { if (NR == 0) { print "-"; exit }
			      m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
			      printf "%.*f\n", d, m }'
}

hsize() { case $1 in 16k) echo "16 KiB" ;; 1m) echo "1 MiB" ;; *) echo "$1" ;; esac; }

echo "# brokerd storage benchmark: $(fio --version), $(nproc) CPUs, kernel $(uname -r)"
echo "# dir $DIR on [$(df --output=source,fstype,target "$DIR" | tail -n 1 | tr -s ' ')]"
echo "# fio: sequential write, buffered, $FIO_SIZE, no preallocation (as the log), --end_fsync=1 (in the time)"
echo "# bench_log: 100-byte records, 1 appender, acks=all, --total-bytes $BENCH_TOTAL --seconds $BENCH_SECONDS;"
echo "#   interval: the log fsyncs within flush.interval.ms (1000 ms) of the first unsynced write"

# --- 1+2. fio baselines and bench_log, BENCH_RUNS rounds --------------------------
# Values collect as space-separated lists, one entry per round.
declare -A FIO OURS_MB OURS_REC OURS_P50 GC
for ((round = 1; round <= BENCH_RUNS; round++)); do
	for bs in $SIZES; do
		for eng in psync uring1 uring8; do
			case $eng in
			psync)  args=(--ioengine=psync) ;;
			uring1) args=(--ioengine=io_uring --iodepth=1) ;;
			uring8) args=(--ioengine=io_uring --iodepth=8) ;;
			esac
			settle
			warm "$FIO_SIZE"
			note "round $round: fio seq write bs=$bs $eng"
			vals=$(fio_run "seq_${bs}_$eng" "${args[@]}" --rw=write --bs="$bs" \
				--size="$FIO_SIZE" --direct=0 --end_fsync=1 --fallocate=none \
				--runtime="$FIO_RUNTIME")
			read -r mbps _ <<<"$vals"
			FIO[$bs.$eng]+=" $mbps"
			echo "fio=seq_write bs=$bs engine=$eng MB_per_s=$mbps"
		done
	done
	settle

	for bs in $SIZES; do
		for mode in $MODES; do
			warm "$BENCH_TOTAL"
			note "round $round: bench_log mode=$mode batch=$bs"
			line=$("$BENCH_LOG" --dir "$DIR" --mode "$mode" --batch-bytes "$bs" \
				--appenders 1 --acks all --total-bytes "$BENCH_TOTAL" \
				--seconds "$BENCH_SECONDS")
			echo "$line"
			OURS_MB[$bs.$mode]+=" $(kv "$line" MB_per_s)"
			OURS_REC[$bs.$mode]+=" $(kv "$line" records_per_s)"
			OURS_P50[$bs.$mode]+=" $(kv "$line" p50_us)"
		done
	done

	note "round $round: bench_log group commit, 1 vs $GC_APPENDERS appenders"
	for k in 1 "$GC_APPENDERS"; do
		line=$("$BENCH_LOG" --dir "$DIR" --mode always --acks all --batch-bytes 1k \
			--appenders "$k" --seconds "$GC_SECONDS")
		echo "$line"
		for key in appends_per_s records_per_s p50_us p99_us; do
			GC[$k.$key]+=" $(kv "$line" "$key")"
		done
		GC_DESC="$(kv "$line" batch_len)-byte batches of $(kv "$line" records_per_batch) x 100 B"
	done
done

# --- 3. summary ------------------------------------------------------------------
echo
echo "== brokerd log vs fio (MB = 10^6 bytes; fio: buffered sequential write + final fsync;"
echo "   ours: 1 appender, acks=all; median of $BENCH_RUNS round(s)) =="
printf '%-7s %-9s %10s %12s %10s %10s %10s %11s %9s %9s\n' batch mode "ours MB/s" records/s \
	"psync MB/s" "uring QD1" "uring QD8" ours/psync ours/QD1 "p50 us"
for bs in $SIZES; do
	for mode in $MODES; do
		k=$bs.$mode
		mb=$(med "${OURS_MB[$k]}")
		printf '%-7s %-9s %10s %12s %10s %10s %10s %11s %9s %9s\n' "$(hsize "$bs")" "$mode" \
			"$mb" "$(med "${OURS_REC[$k]}" 0)" \
			"$(med "${FIO[$bs.psync]}")" "$(med "${FIO[$bs.uring1]}")" \
			"$(med "${FIO[$bs.uring8]}")" \
			"$(calc "$mb" / "$(med "${FIO[$bs.psync]}")")" \
			"$(calc "$mb" / "$(med "${FIO[$bs.uring1]}")")" \
			"$(med "${OURS_P50[$k]}")"
	done
done
a1=$(med "${GC[1.appends_per_s]}" 0)
an=$(med "${GC[$GC_APPENDERS.appends_per_s]}" 0)
ratio=$(calc "$an" / "$a1")
echo
echo "group commit (flush.mode=always, acks=all, $GC_DESC):"
for k in 1 "$GC_APPENDERS"; do
	printf '  %3s appender(s): %8s appends/s  %9s records/s  p50 %s us  p99 %s us\n' "$k" \
		"$(med "${GC[$k.appends_per_s]}" 0)" "$(med "${GC[$k.records_per_s]}" 0)" \
		"$(med "${GC[$k.p50_us]}")" "$(med "${GC[$k.p99_us]}")"
done
echo "  ratio ${ratio}x"

echo
os1m=$(med "${OURS_MB[1m.os]}")
psync1m=$(med "${FIO[1m.psync]}")
floor1=$(calc "$psync1m" '*' 0.8)
if ge "$os1m" "$floor1"; then v=PASS; else v=BELOW; fi
echo "floor 1: flush.mode=os, 1 MiB batches: $os1m MB/s >= 80% of fio psync $psync1m MB/s ($floor1): $v"
if ge "$ratio" 10; then v=PASS; else v=BELOW; fi
echo "floor 2: flush.mode=always, $GC_APPENDERS appenders: ${ratio}x >= 10x the appends/s of 1 appender: $v"

# --- 4. preallocation / pre-zeroing / O_DIRECT -------------------------------------
if [ "$BENCH_PREALLOC" = 1 ]; then
	declare -A PRE
	variants="append falloc overwrite direct direct_over"
	for bs in 4k 64k; do
		for v in $variants; do
			settle
			args=(--ioengine=io_uring --iodepth=1 --rw=write --bs="$bs" --size="$PREALLOC_SIZE"
			      --fdatasync=1 --runtime=10)
			case $v in
			append)    args+=(--direct=0 --fallocate=none) ;;
			falloc)    args+=(--direct=0 --fallocate=native) ;;
			overwrite) args+=(--direct=0 --overwrite=1) ;;
			direct)    args+=(--direct=1 --fallocate=native) ;;
			direct_over) args+=(--direct=1 --overwrite=1) ;;
			esac
			case $v in
			overwrite | direct_over)
				# Pre-zeroed: the file is written and synced before the job.
				fio --name=layout --filename="$DIR/fio.dat" --ioengine=psync --rw=write \
					--bs=1m --size="$PREALLOC_SIZE" --end_fsync=1 --output=/dev/null >&2 ;;
			esac
			note "fio write+fdatasync bs=$bs $v"
			PRE[$bs.$v]=$(fio_run "commit_${bs}_$v" "${args[@]}")
			echo "fio=commit bs=$bs variant=$v vals=${PRE[$bs.$v]// /,}"
		done
	done
	settle
	echo
	echo "== commit = one write + fdatasync, QD1, io_uring, $PREALLOC_SIZE per job (cap 10 s) =="
	echo "   (commit p50 ~ write p50 + fdatasync p50; mean = 1e6 / IOPS)"
	printf '%-5s %-34s %8s %10s %10s %10s %12s %11s\n' bs variant MB/s "write p50" "fsync p50" \
		"fsync p99" "commit p50~" "commit mean"
	for bs in 4k 64k; do
		for v in $variants; do
			case $v in
			append)      d="(a) append, no preallocation" ;;
			falloc)      d="(b) fallocated (unwritten extents)" ;;
			overwrite)   d="(c) overwrite (pre-zeroed file)" ;;
			direct)      d="(d) O_DIRECT, fallocated" ;;
			direct_over) d="(e) O_DIRECT, pre-zeroed file" ;;
			esac
			read -r mb wp sp sp99 cm <<<"${PRE[$bs.$v]}"
			printf '%-5s %-34s %8s %10s %10s %10s %12s %11s\n' "$bs" "$d" "$mb" "$wp" "$sp" \
				"$sp99" "$(calc1 "$wp" + "$sp")" "$cm"
		done
	done
fi

echo
echo "# done in $((SECONDS - T0)) s"

other_parts
