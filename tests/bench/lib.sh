# lib.sh — what the network benchmarks (wire.sh, client.sh) share: a
# brokerd on a free loopback port with a fresh data directory, page-cache
# warming, broker CPU accounting.  Sourced, not run.
# The caller sets BENCH_NAME (for messages), BROKERD and WARM (1 or 0),
# then calls bench_init; every function below uses $DIR.

bench_init() {
	DIR=$(mktemp -d "${BENCH_DIR:-/tmp}/brokerd-$BENCH_NAME.XXXXXX")
	BROKER_PID=""
	PORT=""
	trap bench_cleanup EXIT
}

stop_broker() {
	[ -n "$BROKER_PID" ] || return 0
	if kill -0 "$BROKER_PID" 2>/dev/null; then
		kill -TERM "$BROKER_PID"
		for _ in $(seq 300); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$BROKER_PID" 2>/dev/null; then
			echo "$BENCH_NAME.sh: brokerd $BROKER_PID ignored SIGTERM for 30 s; killing it" >&2
			kill -KILL "$BROKER_PID" 2>/dev/null || true
		fi
	fi
	wait "$BROKER_PID" 2>/dev/null || true
	BROKER_PID=""
}

bench_cleanup() { stop_broker; rm -rf -- "$DIR"; }

note() { printf '%s\n' "# $*" >&2; }

# On this VM (virtio_balloon free page reporting) the first touch of memory
# that stayed free for ~2 s costs ~2.5 ms per MiB, so a cold produce run
# measures the hypervisor (the io-wq writer spends its core faulting in page
# cache), not the broker.  As run.sh does: write and delete a scratch file as
# large as the run's log just before it (delalloc: it never reaches the disk).
warm() { # MiB
	[ "$WARM" = 1 ] || return 0
	note "warm: $1 MiB scratch file"
	dd if=/dev/zero of="$DIR/warm.dat" bs=1M count="$1" status=none
	rm -f -- "$DIR/warm.dat"
}

# start_broker NAME: a fresh data directory $DIR/NAME; sets BROKER_PID, PORT.
start_broker() {
	local d=$DIR/$1
	stop_broker
	mkdir -p "$d"
	"$BROKERD" --listen 127.0.0.1:0 --data-dir "$d/data" -o admin.listen=off \
		-o flush.mode=always 2>"$d/broker.log" &
	BROKER_PID=$!
	PORT=""
	for _ in $(seq 200); do
		PORT=$(sed -n 's/.*ready: listening on .*(port \([0-9]*\)).*/\1/p' "$d/broker.log" | tail -n 1)
		[ -n "$PORT" ] && return 0
		kill -0 "$BROKER_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "$BENCH_NAME.sh: brokerd did not become ready; its log:" >&2
	cat "$d/broker.log" >&2
	exit 1
}

# Broker CPU around one measurement, as the peer scripts report it:
# SRV_CPU = the broker process in % of one core; CPU_NOTE = "srv_cpu=..%
# all_cpu=..% steal=..%" with the machine's share and its steal too.
_proc_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
# busy (steal included), all, and steal ticks: steal is the time the
# hypervisor gave this VM's vCPUs to someone else; a latency figure taken
# while it is high says more about the host than about the broker.
_sys_ticks() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6, $9}' /proc/stat; }
cpu_begin() { CPU_P0=$(_proc_ticks "$BROKER_PID"); read -r CPU_B0 CPU_A0 CPU_S0 <<<"$(_sys_ticks)"; }
cpu_end() {
	local p1 b1 a1 s1
	p1=$(_proc_ticks "$BROKER_PID"); read -r b1 a1 s1 <<<"$(_sys_ticks)"
	read -r SRV_CPU CPU_NOTE <<<"$(awk -v p0="$CPU_P0" -v p1="$p1" -v b0="$CPU_B0" -v b1="$b1" \
		-v a0="$CPU_A0" -v a1="$a1" -v s0="$CPU_S0" -v s1="$s1" -v n="$(nproc)" 'BEGIN {
		da = a1 - a0; if (da <= 0) da = 1
		s = (p1 - p0) / (da / n) * 100
		printf "%.0f srv_cpu=%.0f%% all_cpu=%.0f%% steal=%.0f%%", s, s,
			(b1 - b0) / da * n * 100, (s1 - s0) / da * n * 100 }')"
}
