#!/bin/sh
# run.sh BUILD SECONDS TARGET... — run each libFuzzer target BUILD/fuzz/TARGET
# for SECONDS on its checked-in seeds (tests/fuzz/corpus/TARGET) plus a
# working corpus kept in BUILD/fuzz-work/corpus/TARGET (new inputs go there,
# never into the source tree).  A crash, sanitizer report, leak, timeout or
# out-of-memory fails the target; its input is saved as
# BUILD/fuzz-work/artifacts/TARGET-crash-<sha1> and the report is printed.
# At the end: executions per target from libFuzzer's final stats and the
# seed each used, then "fuzz: N passed, N failed".  Exit status 1 if any
# target failed.  FUZZ_SEED=N fixes libFuzzer's seed (`make check` does, so
# that its runs try the same inputs, up to how far each gets in the time,
# and a failure there can be replayed); unset, each run draws its own.
set -u
build=$1
secs=$2
shift 2
# Fuzzing tests parsing, not durability: a tmpfs makes the targets that
# write files (request, recovery) several times faster.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
	TMPDIR=/dev/shm
	export TMPDIR
fi
work=$build/fuzz-work
mkdir -p "$work/artifacts"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
pass=0
fail=0
table=""
for t in "$@"; do
	bin=$build/fuzz/$t
	log=$work/$t.log
	mkdir -p "$work/corpus/$t"
	echo "fuzz: $t for ${secs}s (log $log)"
	# -timeout: one input running 30 s is a hang; -rss_limit_mb: the
	# default 2 GiB, stated.
	"$bin" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
		${FUZZ_SEED:+-seed="$FUZZ_SEED"} -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/$t-" \
		"$work/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')
	seed=$(sed -n 's/^INFO: Seed: *//p' "$log" | head -1)
	if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
		pass=$((pass + 1))
		res=ok
	else
		fail=$((fail + 1))
		res="FAILED (exit $rc)"
		echo "fuzz: $t failed; the end of its log:"
		tail -60 "$log"
	fi
	table="$table$(printf '  %-10s %12s execs %8s/s  cov %6s  seed %-10s  %s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${seed:-?}" "$res")
"
done
echo "fuzz: executions per target (${secs}s each):"
printf '%s' "$table"
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
