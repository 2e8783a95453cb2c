/* check_conns — connections and process limits of a real brokerd: 1,000
 * concurrent clients, max.connections, the data-directory lock against a
 * second broker, start-up with a bad configuration value, and the idle
 * timeout. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

/* Let this process hold `n` more descriptors than it has. */
static void want_fds(rlim_t n)
{
	struct rlimit rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < n) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= n ? n : rl.rlim_max;
		ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	ck_assert_msg(rl.rlim_cur >= n, "RLIMIT_NOFILE hard limit %llu < %llu",
		      (unsigned long long)rl.rlim_max, (unsigned long long)n);
}

static uint32_t connections(int fd)
{
	Brokerd__Response *r = tc_broker_status(fd);
	uint32_t n;

	TC_OK(r);
	n = r->broker_status->connections;
	tc_free(r);
	return n;
}

START_TEST(thousand_connections)
{
	enum { N = 1000, NP = 4 };
	static int fds[N];
	int64_t produced[NP] = { 0 }, deadline;
	Brokerd__Response *r;
	int adm;

	want_fds(N + 64);
	tb_start(&b);
	adm = tc_connect(b.port);
	r = tc_create_topic(adm, "many", NP);
	TC_OK(r);
	tc_free(r);
	for (int i = 0; i < N; i++)
		fds[i] = tc_connect(b.port);
	/* A request on every one before reading any answer: even ones ask
	 * api_versions, odd ones produce (acks=all, group commit). */
	for (int i = 0; i < N; i++) {
		Brokerd__Request req = BROKERD__REQUEST__INIT;
		Brokerd__ApiVersionsRequest q = BROKERD__API_VERSIONS_REQUEST__INIT;

		if (i % 2 == 0) {
			req.correlation_id = (uint64_t)i + 1;
			req.op_case = BROKERD__REQUEST__OP_API_VERSIONS;
			req.api_versions = &q;
			ck_assert_int_eq(tc_send(fds[i], &req), 0);
		} else {
			char prefix[32];
			size_t len;
			uint8_t *batch;

			snprintf(prefix, sizeof(prefix), "c%d", i);
			batch = tc_batch(prefix, 0, 2, &len);
			ck_assert_int_eq(tc_send_produce(fds[i], (uint64_t)i + 1, "many",
							 (uint32_t)(i / 2) % NP,
							 BROKERD__ACKS__ACKS_ALL, batch, len),
					 0);
			free(batch);
		}
	}
	for (int i = 0; i < N; i++) {
		r = tc_recv(fds[i]);
		ck_assert_msg(r != NULL, "no answer on connection %d", i);
		ck_assert_uint_eq(r->correlation_id, (uint64_t)i + 1);
		TC_OK(r);
		if (i % 2 == 0) {
			ck_assert_int_eq(r->op_case, BROKERD__RESPONSE__OP_API_VERSIONS);
		} else {
			ck_assert_int_eq(r->op_case, BROKERD__RESPONSE__OP_PRODUCE);
			ck_assert_uint_eq(r->produce->partition, (uint32_t)(i / 2) % NP);
			produced[r->produce->partition] += 2;
		}
		tc_free(r);
	}
	ck_assert_uint_eq(connections(adm), N + 1);
	for (uint32_t p = 0; p < NP; p++) {
		r = tc_list_offsets(adm, "many", p, -1);
		TC_OK(r);
		ck_assert_int_eq(r->list_offsets->offset, produced[p]);
		tc_free(r);
	}
	/* All still usable: a second round on every one. */
	for (int i = 0; i < N; i++) {
		r = tc_api_versions(fds[i]);
		TC_OK(r);
		tc_free(r);
	}
	for (int i = 0; i < N; i++)
		close(fds[i]);
	deadline = tb_now_ms() + 10000;
	while (connections(adm) != 1 && tb_now_ms() < deadline)
		usleep(20000);
	ck_assert_uint_eq(connections(adm), 1);
	close(adm);
}
END_TEST

/* api_versions on fd answered OK. */
static void assert_works(int fd)
{
	Brokerd__Response *r = tc_api_versions(fd);

	TC_OK(r);
	tc_free(r);
}

START_TEST(max_connections)
{
	int fds[5], extra, again = -1;
	Brokerd__Response *r;
	int64_t deadline;

	tb_set(&b, "max.connections=5");
	tb_start(&b);
	for (int i = 0; i < 5; i++) {
		fds[i] = tc_connect(b.port);
		assert_works(fds[i]); /* accepted, not just queued */
	}
	/* The sixth: TOO_MANY_CONNECTIONS, then closed. */
	extra = tc_connect(b.port);
	r = tc_recv(extra);
	ck_assert_msg(r != NULL, "no TOO_MANY_CONNECTIONS answer");
	TC_ERR(r, BROKERD__ERROR_CODE__TOO_MANY_CONNECTIONS);
	tc_free(r);
	ck_assert(tc_closed(extra));
	close(extra);
	/* The five still work. */
	for (int i = 0; i < 5; i++)
		assert_works(fds[i]);
	/* Closing one makes room again (the close is noticed asynchronously:
	 * retry for a bounded time). */
	close(fds[0]);
	deadline = tb_now_ms() + 5000;
	while (tb_now_ms() < deadline) {
		int fd = tc_connect(b.port);
		Brokerd__Response *a = tc_api_versions(fd);
		if (a->error == BROKERD__ERROR_CODE__OK) {
			tc_free(a);
			again = fd;
			break;
		}
		TC_ERR(a, BROKERD__ERROR_CODE__TOO_MANY_CONNECTIONS);
		tc_free(a);
		close(fd);
		usleep(20000);
	}
	ck_assert_msg(again >= 0, "no room after a connection closed");
	assert_works(again);
	for (int i = 1; i < 5; i++) {
		assert_works(fds[i]);
		close(fds[i]);
	}
	close(again);
}
END_TEST

START_TEST(second_broker_same_dir)
{
	struct tb twin;
	Brokerd__Response *r;
	size_t len;
	uint8_t *batch;
	int fd, st;

	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_create_topic(fd, "locked", 1);
	TC_OK(r);
	tc_free(r);
	tb_twin(&b, &twin);
	st = tb_try_start(&twin);
	ck_assert_msg(st != 0, "a second brokerd started on the same data directory");
	ck_assert_int_eq(st, 1);
	ck_assert_msg(tb_log_contains(&twin, "lock"), "the second broker's log does not mention the lock");
	tb_twin_free(&twin);
	/* The first keeps serving, its data intact. */
	batch = tc_batch("l", 0, 3, &len);
	r = tc_produce(fd, "locked", 0, BROKERD__ACKS__ACKS_ALL, batch, len);
	free(batch);
	TC_OK(r);
	ck_assert_int_eq(r->produce->base_offset, 0);
	tc_free(r);
	r = tc_fetch(fd, "locked", 0, 0, 1 << 20, 0, 0);
	TC_OK(r);
	ck_assert_int_eq(r->fetch->high_watermark, 3);
	tc_free(r);
	close(fd);
	/* Once the first is gone, the directory can be opened again. */
	ck_assert_int_eq(tb_stop(&b), 0);
	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_list_offsets(fd, "locked", 0, -1);
	TC_OK(r);
	ck_assert_int_eq(r->list_offsets->offset, 3);
	tc_free(r);
	close(fd);
}
END_TEST

/* Start brokerd with the single bad setting kv: it must exit 1 and its
 * log name `key`. */
static void bad_start(const char *kv, const char *key)
{
	struct tb x;
	int st;

	memset(&x, 0, sizeof(x));
	tb_set(&x, kv);
	st = tb_try_start(&x);
	ck_assert_msg(st == 1, "brokerd -o %s: exit status %d, expected 1", kv, st);
	ck_assert_msg(tb_log_contains(&x, key), "brokerd -o %s: the log does not name %s", kv, key);
	tb_cleanup(&x);
}

START_TEST(bad_config_exits)
{
	bad_start("segment.bytes=12", "segment.bytes");
	bad_start("retention.check.interval.ms=5", "retention.check.interval.ms");
	bad_start("flush.mode=sometimes", "flush.mode");
	bad_start("no.such.key=1", "no.such.key");
	bad_start("max.connections=0", "max.connections");
	bad_start("auto.create.topics=perhaps", "auto.create.topics");
}
END_TEST

START_TEST(idle_timeout)
{
	int idle, busy, poller;
	int64_t t0, dt;
	Brokerd__Response *r;

	tb_set(&b, "idle.timeout.ms=300");
	tb_start(&b);
	busy = tc_connect(b.port);
	r = tc_create_topic(busy, "idle", 1);
	TC_OK(r);
	tc_free(r);
	t0 = tb_now_ms();
	idle = tc_connect(b.port);
	poller = tc_connect(b.port);
	tc_set_timeout(poller, 10000);
	/* A long poll of 1 s is a request in flight, not idleness.  (Not a
	 * multiple of the idle timeout: an answer in the same loop turn as
	 * the idle close is idle_close_drops_answer.) */
	ck_assert_int_eq(tc_send_fetch(poller, 3, "idle", 0, 0, 1 << 20, 1000, 1), 0);
	/* A client sending every 100 ms for 1.5 s stays connected. */
	for (int i = 0; i < 15; i++) {
		assert_works(busy);
		usleep(100000);
	}
	/* The idle one was closed, and not before its 300 ms. */
	ck_assert(tc_closed(idle));
	dt = tb_now_ms() - t0;
	ck_assert_int_ge(dt, 250);
	close(idle);
	r = tc_recv(poller);
	ck_assert_msg(r != NULL, "the long poll's connection was closed as idle");
	ck_assert_uint_eq(r->correlation_id, 3);
	TC_OK(r);
	tc_free(r);
	/* Measure the idle close on its own. */
	t0 = tb_now_ms();
	idle = tc_connect(b.port);
	ck_assert(tc_closed(idle));
	dt = tb_now_ms() - t0;
	ck_assert_msg(dt >= 250 && dt < 4000, "idle connection closed after %lld ms",
		      (long long)dt);
	close(idle);
	ck_assert(tb_log_contains(&b, "idle"));
	close(busy);
	close(poller);
}
END_TEST

/* When the idle timer fires in the loop turn in which a request was
 * answered (here a long poll whose max_wait_ms equals idle.timeout.ms, so
 * both timers expire together), the answer still in the output buffer must
 * reach the client before the close.  Many connections, so that the
 * coincidence happens. */
START_TEST(idle_close_drops_answer)
{
	enum { N = 40, ROUNDS = 3 };
	int fds[N], lost = 0, tries = 0, adm;
	Brokerd__Response *r;

	tb_set(&b, "idle.timeout.ms=300");
	tb_start(&b);
	adm = tc_connect(b.port);
	r = tc_create_topic(adm, "idle", 1);
	TC_OK(r);
	tc_free(r);
	for (int i = 0; i < N; i++)
		fds[i] = tc_connect(b.port);
	/* Each round, every connection still open long-polls once more. */
	for (int round = 0; round < ROUNDS; round++) {
		for (int i = 0; i < N; i++)
			if (fds[i] >= 0)
				ck_assert_int_eq(tc_send_fetch(fds[i], (uint64_t)round + 1, "idle", 0,
							       0, 1 << 20, 300, 1),
						 0);
		for (int i = 0; i < N; i++) {
			if (fds[i] < 0)
				continue;
			tries++;
			r = tc_recv(fds[i]);
			if (r != NULL) {
				ck_assert_uint_eq(r->correlation_id, (uint64_t)round + 1);
				tc_free(r);
				continue;
			}
			lost++;
			close(fds[i]);
			fds[i] = -1;
		}
	}
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	ck_assert_msg(lost == 0, "%d of %d long polls closed as idle without their answer", lost,
		      tries);
	close(adm);
}
END_TEST

Suite *conns_suite(void);
Suite *conns_suite(void)
{
	Suite *s = suite_create("conns");
	TCase *tc = tcase_create("conns");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, thousand_connections);
	tcase_add_test(tc, max_connections);
	tcase_add_test(tc, second_broker_same_dir);
	tcase_add_test(tc, bad_config_exits);
	tcase_add_test(tc, idle_timeout);
	tcase_add_test(tc, idle_close_drops_answer);
	suite_add_tcase(s, tc);
	return s;
}
