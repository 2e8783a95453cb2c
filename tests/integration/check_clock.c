/* check_clock — wall-clock steps under a running brokerd, and record
 * timestamps from a producer whose clock is wrong.
 *
 * The broker runs under libfaketime (Debian package `faketime`), preloaded
 * with FAKETIME_TIMESTAMP_FILE (an offset like "+30d" that the test
 * rewrites), FAKETIME_NO_CACHE (re-read on every call) and
 * FAKETIME_DONT_FAKE_MONOTONIC (only the wall clock steps, as an NTP step
 * or an operator's `date -s` does).  libfaketime wraps clock_gettime, which
 * is what brokerd, its logging and libevent call; each test first proves
 * the step reached the broker by reading the time stamp of a log line.
 * A missing libfaketime fails the test, naming the package. */
#include <check.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/unit/testutil.h"

#define DAY_MS (INT64_C(24) * 3600 * 1000)

static struct tb b;
static char *ft_dir;      /* holds the faketime offset file */
static char ft_file[512];

static void setup(void)
{
	memset(&b, 0, sizeof(b));
	ft_dir = NULL;
}

static void teardown(void)
{
	unsetenv("LD_PRELOAD");
	unsetenv("FAKETIME_TIMESTAMP_FILE");
	tb_cleanup(&b);
	if (ft_dir != NULL)
		tu_rmtree(ft_dir);
	free(ft_dir);
}

/* Set the broker's wall-clock offset ("+0", "+30d", "-1d"); atomically, so
 * the broker never reads half a file. */
static void ft_set(const char *offset)
{
	char tmp[600];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", ft_file);
	f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s\n", offset);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rename(tmp, ft_file), 0);
}

/* Arrange for the next tb_start to run brokerd under libfaketime with a
 * wall-clock offset of "+0" (the real time). */
static void ft_init(void)
{
	static const char *const where[] = {
		"/usr/lib/*/faketime/libfaketime.so.1",
		"/usr/lib/faketime/libfaketime.so.1",
		"/usr/local/lib/faketime/libfaketime.so.1",
	};
	const char *asan = getenv("ASAN_OPTIONS");
	char *opts = NULL;
	glob_t g;
	int found = 0;

	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]) && !found; i++) {
		if (glob(where[i], 0, NULL, &g) == 0) {
			ck_assert_int_eq(setenv("LD_PRELOAD", g.gl_pathv[0], 1), 0);
			found = 1;
		}
		globfree(&g);
	}
	ck_assert_msg(found, "libfaketime.so.1 not found: these tests need the Debian package "
			     "'faketime' (scripts/install-deps.sh installs it)");
	ft_dir = tu_mkdtemp();
	ck_assert_ptr_nonnull(ft_dir);
	snprintf(ft_file, sizeof(ft_file), "%s/faketime", ft_dir);
	ft_set("+0");
	ck_assert_int_eq(setenv("FAKETIME_TIMESTAMP_FILE", ft_file, 1), 0);
	ck_assert_int_eq(setenv("FAKETIME_NO_CACHE", "1", 1), 0);
	ck_assert_int_eq(setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1), 0);
	/* The sanitizer runtime wants to be first in the library list; with
	 * libfaketime preloaded it is second, which is harmless here. */
	ck_assert_int_ge(asprintf(&opts, "%s%sverify_asan_link_order=0", asan ? asan : "",
				  asan && *asan ? ":" : ""),
			 0);
	ck_assert_int_eq(setenv("ASAN_OPTIONS", opts, 1), 0);
	free(opts);
}

static void create(int fd, const char *topic, const char *const *kv, size_t n)
{
	Brokerd__Response *r = tc_create_topic_cfg(fd, topic, 1, kv, n);

	TC_OK(r);
	tc_free(r);
}

/* The broker's wall clock minus ours, in ms, read from the time stamp
 * ("2026-01-02T03:04:05.678Z") of the log line that creating topic
 * `probe` writes. */
static int64_t broker_clock_offset(int fd, const char *probe)
{
	char needle[128], line[1024], stamp[32] = "";
	struct tm tm;
	int64_t ours, theirs;
	FILE *f;

	ours = tb_wall_ms();
	create(fd, probe, NULL, 0);
	snprintf(needle, sizeof(needle), "topic '%s'", probe);
	f = fopen(b.log, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, needle) != NULL)
			snprintf(stamp, sizeof(stamp), "%.19s", line);
	fclose(f);
	memset(&tm, 0, sizeof(tm));
	ck_assert_msg(stamp[0] != '\0' && strptime(stamp, "%Y-%m-%dT%H:%M:%S", &tm) != NULL,
		      "no time-stamped log line mentions %s in %s", needle, b.log);
	theirs = (int64_t)timegm(&tm) * 1000;
	return theirs - ours;
}

/* Fail unless the broker's wall clock is `want` ms off ours (within an
 * hour): proves libfaketime reached what brokerd calls. */
static void expect_broker_offset(int fd, const char *probe, int64_t want)
{
	int64_t off = broker_clock_offset(fd, probe);

	ck_assert_msg(off > want - 3600 * 1000 && off < want + 3600 * 1000,
		      "brokerd's wall clock is %lld ms off ours, expected about %lld: libfaketime "
		      "(package 'faketime') does not intercept its clock_gettime",
		      (long long)off, (long long)want);
}

/* Produce n records of ~1 KiB with timestamps at ts (our wall clock when
 * ts < 0), acks=all; returns the response's error. */
static Brokerd__ErrorCode produce_at(int fd, const char *topic, int n, int64_t ts, char *msg,
				     size_t msglen)
{
	static char prefix[1001];
	Brokerd__ErrorCode code;
	Brokerd__Response *r;
	uint8_t *batch;
	size_t len;

	memset(prefix, 'c', 1000);
	batch = tc_batch_ts(prefix, 0, n, ts < 0 ? tb_wall_ms() : ts, &len);
	r = tc_produce(fd, topic, 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	free(batch);
	code = r->error;
	if (msg != NULL)
		snprintf(msg, msglen, "%s", r->error_message);
	tc_free(r);
	return code;
}

static void produce_ok(int fd, const char *topic, int n)
{
	char msg[512];

	ck_assert_msg(produce_at(fd, topic, n, -1, msg, sizeof(msg)) == BROKERD__ERROR_CODE__OK,
		      "produce to %s: %s", topic, msg);
}

struct pstate {
	int64_t start;
	uint32_t segments;
};

static struct pstate describe(int fd, const char *topic)
{
	Brokerd__Response *r = tc_describe_topic(fd, topic);
	struct pstate st;

	TC_OK(r);
	st.start = r->describe_topic->topic->partitions[0]->log_start_offset;
	st.segments = r->describe_topic->topic->partitions[0]->segment_count;
	tc_free(r);
	return st;
}

/* Make the broker run at least one whole retention pass from now on: a
 * size-retained canary topic gets new segments, and its log start must
 * move (twice, so one pass started after the call and ended). */
static void await_retention_pass(int fd, const char *canary)
{
	for (int round = 0; round < 2; round++) {
		int64_t before = describe(fd, canary).start, deadline;

		for (int i = 0; i < 8; i++)
			produce_ok(fd, canary, 2);
		deadline = tb_now_ms() + 15000;
		while (describe(fd, canary).start == before && tb_now_ms() < deadline)
			usleep(50000);
		ck_assert_msg(describe(fd, canary).start > before,
			      "no retention pass within 15 s (canary log start %lld)",
			      (long long)before);
	}
}

/* A forward step of the wall clock (+30 days) while running does not
 * expire segments whose records are minutes old by elapsed time. */
START_TEST(forward_step_keeps_segments)
{
	static const char *const kept[] = { "segment.bytes=4096", "retention.ms=1h" };
	static const char *const canary[] = { "segment.bytes=4096", "retention.bytes=4096" };
	struct pstate before, after;
	int fd;

	ft_init();
	tb_set(&b, "retention.check.interval.ms=100");
	tb_start(&b);
	fd = tc_connect(b.port);
	expect_broker_offset(fd, "probe0", 0);
	create(fd, "kept", kept, 2);
	create(fd, "canary", canary, 2);
	for (int i = 0; i < 10; i++)
		produce_ok(fd, "kept", 2);
	before = describe(fd, "kept");
	ck_assert_int_eq(before.start, 0);
	ck_assert_uint_ge(before.segments, 4);

	ft_set("+30d");
	expect_broker_offset(fd, "probe1", 30 * DAY_MS);
	await_retention_pass(fd, "canary");
	after = describe(fd, "kept");
	ck_assert_msg(after.start == 0 && after.segments == before.segments,
		      "a +30 d wall-clock step expired segments: log start %lld, %u of %u "
		      "segments left",
		      (long long)after.start, after.segments, before.segments);
	/* Producers with the right clock are 30 days "behind" the broker's
	 * wall clock: still accepted, and still kept. */
	produce_ok(fd, "kept", 2);
	await_retention_pass(fd, "canary");
	ck_assert_int_eq(describe(fd, "kept").start, 0);
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
	ck_assert(!tb_log_contains(&b, "AddressSanitizer"));
}
END_TEST

/* A backward step (-1 day) does not freeze time retention: segments whose
 * records are older than retention.ms by elapsed time still go. */
START_TEST(backward_step_still_expires)
{
	static const char *const cfg[] = { "segment.bytes=4096", "retention.ms=2s" };
	int64_t deadline;
	int fd;

	ft_init();
	tb_set(&b, "retention.check.interval.ms=100");
	tb_start(&b);
	fd = tc_connect(b.port);
	expect_broker_offset(fd, "probe0", 0);
	create(fd, "old", cfg, 2);
	for (int i = 0; i < 10; i++)
		produce_ok(fd, "old", 2);
	ck_assert_uint_ge(describe(fd, "old").segments, 4);

	ft_set("-1d");
	expect_broker_offset(fd, "probe1", -DAY_MS);
	/* Our clock is now a day ahead of the broker's wall clock: within
	 * message.timestamp.after.max.ms of its retention clock, accepted. */
	produce_ok(fd, "old", 2);
	deadline = tb_now_ms() + 20000;
	while (describe(fd, "old").start == 0 && tb_now_ms() < deadline)
		usleep(100000);
	ck_assert_msg(describe(fd, "old").start > 0,
		      "a -1 d wall-clock step froze time retention (nothing deleted in 20 s)");
	ck_assert(tb_log_contains(&b, "retention deleted segment 00000000000000000000"));
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
	ck_assert(!tb_log_contains(&b, "AddressSanitizer"));
}
END_TEST

/* Timers run on the monotonic clock: after a backward step of the wall
 * clock a long poll and an idle connection still end within seconds (not a
 * day later), and a forward step does not end them early. */
START_TEST(timers_ignore_wall_steps)
{
	Brokerd__Response *r;
	int fd, lp, idle;

	ft_init();
	tb_set(&b, "idle.timeout.ms=3s");
	tb_start(&b);
	fd = tc_connect(b.port);
	expect_broker_offset(fd, "probe0", 0);
	create(fd, "t", NULL, 0);

	/* Backward: a 1.5 s long poll and a 3 s idle timeout still fire. */
	lp = tc_connect(b.port);
	idle = tc_connect(b.port);
	ck_assert_int_eq(tc_send_fetch(lp, 1, "t", 0, 0, 1 << 20, 1500, 1), 0);
	ft_set("-1d");
	expect_broker_offset(fd, "probe1", -DAY_MS);
	ck_assert_msg(tc_readable(lp, 15000), "a long poll outlived a -1 d wall-clock step");
	r = tc_recv(lp);
	ck_assert_ptr_nonnull(r);
	TC_OK(r);
	ck_assert_uint_eq(r->fetch->records.len, 0);
	tc_free(r);
	ck_assert_msg(tc_readable(idle, 15000) && tc_closed(idle),
		      "an idle connection outlived a -1 d wall-clock step");
	close(idle);

	/* Forward: a 3 s long poll and a fresh idle connection are not ended
	 * by the step (1 s after it they still wait), then end as due. */
	close(fd); /* idle too long: the broker closes them */
	close(lp);
	fd = tc_connect(b.port);
	lp = tc_connect(b.port);
	idle = tc_connect(b.port);
	ck_assert_int_eq(tc_send_fetch(lp, 2, "t", 0, 0, 1 << 20, 3000, 1), 0);
	ft_set("+30d");
	expect_broker_offset(fd, "probe2", 30 * DAY_MS);
	ck_assert_msg(!tc_readable(lp, 1000), "a +30 d wall-clock step ended a long poll");
	ck_assert_msg(!tc_readable(idle, 100), "a +30 d wall-clock step closed an idle connection");
	ck_assert_msg(tc_readable(lp, 15000), "the long poll never ended");
	r = tc_recv(lp);
	ck_assert_ptr_nonnull(r);
	TC_OK(r);
	tc_free(r);
	close(idle);
	close(lp);
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
	ck_assert(!tb_log_contains(&b, "AddressSanitizer"));
}
END_TEST

/* Record timestamps too far in the future are refused, naming the
 * timestamp and the bound; within the bound, or with the bound off, they
 * are accepted.  No faketime: this is the producer's clock. */
START_TEST(future_timestamps_bounded)
{
	static const char *const tight[] = { "message.timestamp.after.max.ms=1s" };
	static const char *const off[] = { "message.timestamp.after.max.ms=-1" };
	char msg[512], want[128];
	int64_t now;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	create(fd, "dflt", NULL, 0);
	create(fd, "tight", tight, 1);
	create(fd, "off", off, 1);
	now = tb_wall_ms();

	/* Default bound: 1 h. */
	ck_assert_int_eq(produce_at(fd, "dflt", 1, now + 2 * 3600 * 1000, msg, sizeof(msg)),
			 BROKERD__ERROR_CODE__INVALID_RECORD_BATCH);
	snprintf(want, sizeof(want), "record timestamp %lld", (long long)(now + 2 * 3600 * 1000));
	ck_assert_msg(strstr(msg, want) != NULL, "'%s' does not name '%s'", msg, want);
	ck_assert_msg(strstr(msg, "message.timestamp.after.max.ms = 3600000") != NULL,
		      "'%s' does not name the bound", msg);
	ck_assert_int_eq(produce_at(fd, "dflt", 1, now + 600 * 1000, msg, sizeof(msg)),
			 BROKERD__ERROR_CODE__OK);
	/* A clock gone wild, near the end of time: refused, no overflow. */
	ck_assert_int_eq(produce_at(fd, "dflt", 1, INT64_MAX - 10, msg, sizeof(msg)),
			 BROKERD__ERROR_CODE__INVALID_RECORD_BATCH);
	/* A tight bound; the past is never refused. */
	ck_assert_int_eq(produce_at(fd, "tight", 1, now + 600 * 1000, msg, sizeof(msg)),
			 BROKERD__ERROR_CODE__INVALID_RECORD_BATCH);
	ck_assert_msg(strstr(msg, "message.timestamp.after.max.ms = 1000") != NULL, "%s", msg);
	ck_assert_int_eq(produce_at(fd, "tight", 1, now - 30 * DAY_MS, msg, sizeof(msg)),
			 BROKERD__ERROR_CODE__OK);
	/* Bound off: accepted as sent. */
	ck_assert_int_eq(produce_at(fd, "off", 1, now + 2 * 3600 * 1000, msg, sizeof(msg)),
			 BROKERD__ERROR_CODE__OK);
	/* Only accepted batches reached the logs. */
	{
		Brokerd__Response *r = tc_list_offsets(fd, "dflt", 0, -1);
		TC_OK(r);
		ck_assert_int_eq(r->list_offsets->offset, 1);
		tc_free(r);
	}
	close(fd);
	ck_assert_int_eq(tb_stop(&b), 0);
}
END_TEST

Suite *clock_suite(void);
Suite *clock_suite(void)
{
	Suite *s = suite_create("clock");
	TCase *tc = tcase_create("clock");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, forward_step_keeps_segments);
	tcase_add_test(tc, backward_step_still_expires);
	tcase_add_test(tc, timers_ignore_wall_steps);
	tcase_add_test(tc, future_timestamps_bounded);
	suite_add_tcase(s, tc);
	return s;
}
