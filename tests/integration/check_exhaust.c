/* check_exhaust — resource exhaustion of a real brokerd: out of file
 * descriptors (RLIMIT_NOFILE 256, soft and hard) with many partitions and
 * clients; 10,000 idle connections beside active producers; a consumer
 * reading its socket at a trickle while producers saturate the broker.
 * Memory is the broker's RSS from /proc/<pid>/status, CPU time from
 * /proc/<pid>/stat; no assertion is on speed, only on bounds. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/harness.h"

static struct tb b;

static void setup(void)
{
	memset(&b, 0, sizeof(b));
}

static void teardown(void)
{
	tb_cleanup(&b);
}

/* Raise this process's RLIMIT_NOFILE towards want; returns the limit. */
static rlim_t raise_fds(rlim_t want)
{
	struct rlimit rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
		ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	return rl.rlim_cur;
}

/* Small ASan quarantine for the broker (RSS then tracks live memory). */
static void small_quarantine(void)
{
	const char *old = getenv("ASAN_OPTIONS");
	char buf[512];

	snprintf(buf, sizeof(buf), "%s%squarantine_size_mb=4", old ? old : "", old ? ":" : "");
	setenv("ASAN_OPTIONS", buf, 1);
}

/* api_versions on fd: 1 answered OK, 0 refused for lack of descriptors
 * (the refusal names it, then the connection closes).  Anything else
 * (no answer within 5 s, another error) fails the test. */
static int hello(int fd)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ApiVersionsRequest q = BROKERD__API_VERSIONS_REQUEST__INIT;
	Brokerd__Response *r;
	int ok;

	req.correlation_id = 3;
	req.op_case = BROKERD__REQUEST__OP_API_VERSIONS;
	req.api_versions = &q;
	/* a refused peer may have closed already: the send may fail */
	(void)tc_send(fd, &req);
	r = tc_recv(fd);
	ck_assert_msg(r != NULL, "connection neither served nor refused within 5 s");
	if (r->error == BROKERD__ERROR_CODE__TOO_MANY_CONNECTIONS) {
		ck_assert_ptr_nonnull(strstr(r->error_message, "RLIMIT_NOFILE"));
		tc_free(r);
		ck_assert(tc_closed(fd));
		return 0;
	}
	TC_OK(r);
	ck_assert_uint_eq(r->correlation_id, 3);
	ok = 1;
	tc_free(r);
	return ok;
}

static void produce_ok(int fd, const char *topic, uint32_t p)
{
	size_t len;
	uint8_t *batch = tc_batch("x", 0, 3, &len);
	Brokerd__Response *r = tc_produce(fd, topic, p, BROKERD__ACKS__ACKS_ALL, batch, len);

	TC_OK(r);
	tc_free(r);
	free(batch);
}

/* brokerd limited to 256 descriptors (soft and hard): a topic of 200
 * partitions (2 descriptors each) cannot be opened and is refused, the
 * broker serving on; with 100 partitions and 300 clients every client is
 * served or told why it is refused (no client hangs in the backlog); while
 * out of descriptors the broker does not spin (CPU time over 3 s of
 * refusals stays small); existing clients keep working; it serves new
 * clients again once descriptors are freed. */
START_TEST(emfile_refuses_cleanly)
{
	enum { NP = 100, NC = 300, CPU_BOUND_MS = 1000 };
	static int fds[NC];
	static int served[NC];
	int adm, nserved = 0, nrefused = 0, storm = 0, again = 0;
	int64_t cpu0, cpu1, t0, wall;
	Brokerd__Response *r;

	raise_fds(NC + 200);
	b.nofile = 256;
	tb_start(&b);
	adm = tc_connect(b.port);
	r = tc_create_topic(adm, "huge", 200);
	ck_assert_int_ne(r->error, BROKERD__ERROR_CODE__OK);
	ck_assert_str_ne(r->error_message, "");
	printf("emfile: 200 partitions under 256 descriptors: error %d: %s\n", r->error,
	       r->error_message);
	ck_assert_ptr_nonnull(strstr(r->error_message, "Too many open files"));
	tc_free(r);
	for (int p = 0; p < 200; p++) { /* the refused create left nothing */
		char path[512];
		struct stat st;

		snprintf(path, sizeof(path), "%s/huge-%d", b.dir, p);
		ck_assert_msg(stat(path, &st) < 0, "%s left behind", path);
	}
	r = tc_create_topic(adm, "wide", NP);
	TC_OK(r);
	tc_free(r);
	for (uint32_t p = 0; p < NP; p += 7)
		produce_ok(adm, "wide", p);
	for (int i = 0; i < NC; i++)
		fds[i] = tc_connect(b.port);
	for (int i = 0; i < NC; i++) {
		served[i] = hello(fds[i]);
		if (served[i]) {
			nserved++;
		} else {
			nrefused++;
			close(fds[i]);
			fds[i] = -1;
		}
	}
	printf("emfile: RLIMIT_NOFILE 256, %d partitions: %d of %d clients served, %d refused\n",
	       NP, nserved, NC, nrefused);
	fflush(stdout);
	ck_assert_int_gt(nrefused, 0);
	ck_assert_int_gt(nserved, 0);
	/* 3 s of new clients arriving while out of descriptors */
	cpu0 = tb_cpu_ms(&b);
	t0 = tb_now_ms();
	while (tb_now_ms() - t0 < 3000) {
		int fd = tc_connect(b.port);

		ck_assert_int_eq(hello(fd), 0);
		close(fd);
		storm++;
		produce_ok(adm, "wide", (uint32_t)storm % NP);
		usleep(50 * 1000);
	}
	cpu1 = tb_cpu_ms(&b);
	wall = tb_now_ms() - t0;
	printf("emfile: %d clients refused over %lld ms; broker CPU %lld ms (bound %d ms)\n", storm,
	       (long long)wall, (long long)(cpu1 - cpu0), CPU_BOUND_MS);
	fflush(stdout);
	ck_assert_msg(cpu1 - cpu0 < CPU_BOUND_MS, "broker used %lld ms of CPU in %lld ms",
		      (long long)(cpu1 - cpu0), (long long)wall);
	ck_assert(tb_log_contains(&b, "accept failed"));
	/* existing clients keep working */
	for (int i = 0; i < NC; i++)
		if (fds[i] >= 0)
			ck_assert_int_eq(hello(fds[i]), 1);
	/* free 100 descriptors: new clients are served again */
	for (int i = 0, closed = 0; i < NC && closed < 100; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
			closed++;
		}
	usleep(300 * 1000);
	for (int i = 0; i < 50; i++) {
		int fd = tc_connect(b.port);
		again += hello(fd);
		close(fd);
	}
	printf("emfile: after freeing 100 descriptors, %d of 50 new clients served\n", again);
	ck_assert_int_eq(again, 50);
	produce_ok(adm, "wide", NP - 1);
	for (int i = 0; i < NC; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	close(adm);
}
END_TEST

static int cmp_i64(const void *a, const void *b2)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b2;

	return x < y ? -1 : x > y;
}

/* n acks=all produces round-robin over fds (partition i % np); their
 * latencies in us into lat.  Fails if one takes 2 s or more. */
static void timed_produces(const int *fds, int nfds, int np, int n, int64_t *lat)
{
	size_t len;
	uint8_t *batch = tc_batch("lat", 0, 10, &len);

	for (int i = 0; i < n; i++) {
		struct timespec a, z;
		Brokerd__Response *r;

		clock_gettime(CLOCK_MONOTONIC, &a);
		r = tc_produce(fds[i % nfds], "act", (uint32_t)(i % np), BROKERD__ACKS__ACKS_ALL,
			       batch, len);
		clock_gettime(CLOCK_MONOTONIC, &z);
		TC_OK(r);
		tc_free(r);
		lat[i] = (int64_t)(z.tv_sec - a.tv_sec) * 1000000 + (z.tv_nsec - a.tv_nsec) / 1000;
		ck_assert_msg(lat[i] < 2000000, "produce %d took %lld us", i, (long long)lat[i]);
	}
	free(batch);
	qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
}

/* 10,000 idle connections (or as many as RLIMIT_NOFILE allows) beside 4
 * active producers: every produce completes within 2 s; p50/p99 printed
 * with and without the idle crowd. */
START_TEST(ten_thousand_idle)
{
	enum { WANT = 10000, NACT = 4, NP = 4, NREQ = 200 };
	static int idle[WANT];
	static int64_t base[NREQ], loaded[NREQ];
	int act[NACT], n;
	rlim_t lim = raise_fds(WANT + 256);
	long rss0, rss1;
	Brokerd__Response *r;
	char kv[64];

	n = lim >= WANT + 256 ? WANT : (int)lim - 256;
	ck_assert_int_gt(n, 1000);
	snprintf(kv, sizeof(kv), "max.connections=%d", n + 64);
	tb_set(&b, kv);
	tb_start(&b);
	for (int i = 0; i < NACT; i++)
		act[i] = tc_connect(b.port);
	r = tc_create_topic(act[0], "act", NP);
	TC_OK(r);
	tc_free(r);
	timed_produces(act, NACT, NP, NREQ, base);
	rss0 = tb_status_kib(&b, "VmRSS");
	for (int i = 0; i < n; i++)
		idle[i] = tc_connect(b.port);
	r = tc_broker_status(act[0]);
	TC_OK(r);
	ck_assert_uint_eq(r->broker_status->connections, (uint32_t)(n + NACT));
	tc_free(r);
	timed_produces(act, NACT, NP, NREQ, loaded);
	rss1 = tb_status_kib(&b, "VmRSS");
	printf("idle: %d idle connections (RLIMIT_NOFILE %llu); produce acks=all p50/p99/max: "
	       "%lld/%lld/%lld us alone, %lld/%lld/%lld us beside them; broker RSS %ld -> %ld KiB\n",
	       n, (unsigned long long)lim, (long long)base[NREQ / 2],
	       (long long)base[NREQ * 99 / 100], (long long)base[NREQ - 1],
	       (long long)loaded[NREQ / 2], (long long)loaded[NREQ * 99 / 100],
	       (long long)loaded[NREQ - 1], rss0, rss1);
	/* the idle ones are all still usable */
	for (int i = 0; i < n; i += n / 10) {
		r = tc_api_versions(idle[i]);
		TC_OK(r);
		tc_free(r);
	}
	for (int i = 0; i < n; i++)
		close(idle[i]);
	for (int i = 0; i < NACT; i++)
		close(act[i]);
}
END_TEST

/* A consumer pipelines 400 long-poll fetches of 1 MiB each and reads its
 * socket at a trickle (64 bytes every 200 ms) while 4 producers push
 * ~48 MiB with acks=all: every produce is acknowledged and the broker's
 * peak RSS grows by less than 64 MiB.  The bound: fetched records are
 * file ranges (sendfile), the consumer's connection stops being read once
 * 8 MiB of answers wait (docs/operations.md#memory), each producer holds
 * at most 16 frames of ~40 KiB in flight here. */
START_TEST(slow_consumer_bounded)
{
	enum { NPROD = 4, PER = 300, WINDOW = 16, NFETCH = 400, BOUND_KIB = 64 << 10 };
	int prod[NPROD], sent[NPROD] = { 0 }, acked[NPROD] = { 0 }, slow, adm;
	size_t len, trickled = 0;
	uint8_t *batch;
	long rss0, hwm, rss1;
	int64_t next_read, t0;
	Brokerd__Response *r;

	small_quarantine();
	tb_start(&b);
	adm = tc_connect(b.port);
	r = tc_create_topic(adm, "s", 1);
	TC_OK(r);
	tc_free(r);
	batch = tc_batch("payload-payload-payload", 0, 1500, &len);
	rss0 = tb_status_kib(&b, "VmRSS");
	tb_reset_peak(&b);
	slow = tc_connect(b.port);
	for (int i = 0; i < NFETCH; i++)
		ck_assert_int_eq(tc_send_fetch(slow, (uint64_t)i + 1, "s", 0, 0, 1 << 20, 500,
					       1 << 20),
				 0);
	for (int i = 0; i < NPROD; i++)
		prod[i] = tc_connect(b.port);
	t0 = tb_now_ms();
	next_read = t0;
	for (int done = 0; done < NPROD;) {
		struct pollfd pf[NPROD];

		done = 0;
		for (int i = 0; i < NPROD; i++) {
			while (sent[i] < PER && sent[i] - acked[i] < WINDOW) {
				ck_assert_int_eq(tc_send_produce(prod[i], (uint64_t)sent[i] + 1, "s", 0,
								 BROKERD__ACKS__ACKS_ALL, batch, len),
						 0);
				sent[i]++;
			}
			pf[i] = (struct pollfd){ .fd = prod[i], .events = POLLIN };
			done += acked[i] == PER;
		}
		ck_assert_msg(tb_now_ms() - t0 < 60000, "producers not done within 60 s");
		if (poll(pf, NPROD, 50) > 0)
			for (int i = 0; i < NPROD; i++)
				if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
					r = tc_recv(prod[i]);
					ck_assert_msg(r != NULL, "producer %d: no answer", i);
					TC_OK(r);
					ck_assert_uint_eq(r->correlation_id, (uint64_t)acked[i] + 1);
					tc_free(r);
					acked[i]++;
				}
		if (tb_now_ms() >= next_read) {
			uint8_t tiny[64];
			ssize_t got = recv(slow, tiny, sizeof(tiny), MSG_DONTWAIT);

			if (got > 0)
				trickled += (size_t)got;
			next_read += 200;
		}
	}
	hwm = tb_status_kib(&b, "VmHWM");
	rss1 = tb_status_kib(&b, "VmRSS");
	printf("slow consumer: %d producers x %d batches of %zu bytes acked in %lld ms; consumer "
	       "read %zu bytes; broker RSS %ld KiB before, %ld KiB after, peak %ld KiB "
	       "(growth %ld KiB, bound %d KiB)\n",
	       NPROD, PER, len, (long long)(tb_now_ms() - t0), trickled, rss0, rss1, hwm,
	       hwm - rss0, BOUND_KIB);
	fflush(stdout);
	ck_assert_msg(hwm - rss0 < BOUND_KIB, "broker RSS grew by %ld KiB", hwm - rss0);
	r = tc_list_offsets(adm, "s", 0, -1);
	TC_OK(r);
	ck_assert_int_eq(r->list_offsets->offset, (int64_t)NPROD * PER * 1500);
	tc_free(r);
	free(batch);
	close(slow);
	for (int i = 0; i < NPROD; i++)
		close(prod[i]);
	close(adm);
}
END_TEST

Suite *exhaust_suite(void);
Suite *exhaust_suite(void)
{
	Suite *s = suite_create("exhaust");
	TCase *tc = tcase_create("limits");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, emfile_refuses_cleanly);
	tcase_add_test(tc, ten_thousand_idle);
	tcase_add_test(tc, slow_consumer_bounded);
	suite_add_tcase(s, tc);
	return s;
}
