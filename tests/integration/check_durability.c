/* check_durability — what brokerd acknowledged is what it has after a
 * crash: acks=all produces answered just before a kill -9 are all there
 * after the restart, offsets dense and unchanged; and a SIGTERM with a long
 * poll and produces in flight answers them, exits 0 and logs a clean
 * shutdown. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

enum { NP = 4, MAXREC = 4096 };

/* What one partition must hold: values[o] is the record at offset o. */
struct expect {
	char *values[MAXREC];
	int64_t acked;   /* offsets below this were acknowledged */
	int64_t n;       /* records acknowledged or possibly written */
};

static void expect_free(struct expect *e)
{
	for (int64_t i = 0; i < e->n; i++)
		free(e->values[i]);
	e->n = e->acked = 0;
}

/* Read partition p whole and check it: every acknowledged record at its
 * offset, offsets dense from 0; records past the acknowledged ones (sent
 * but unanswered at the kill) may be there only whole and in order.
 * Returns the high watermark, and drops the expectations past it. */
static int64_t verify_partition(int fd, const char *topic, uint32_t p, struct expect *e)
{
	int64_t at = 0, hw = -1;

	for (;;) {
		Brokerd__Response *r = tc_fetch(fd, topic, p, at, 256 << 10, 0, 0);
		char **v;
		int64_t last;
		int n;

		TC_OK(r);
		hw = r->fetch->high_watermark;
		n = tc_values(r->fetch, at, &v, &last);
		for (int i = 0; i < n; i++) {
			int64_t o = at + i;
			ck_assert_msg(o < e->n, "partition %u: unexpected record '%s' at offset %lld",
				      p, v[i], (long long)o);
			ck_assert_msg(strcmp(v[i], e->values[o]) == 0,
				      "partition %u offset %lld: '%s', expected '%s'", p, (long long)o,
				      v[i], e->values[o]);
		}
		if (n > 0)
			ck_assert_int_eq(last, at + n - 1);
		tc_free_values(v, n);
		tc_free(r);
		if (n == 0)
			break;
		at += n;
	}
	ck_assert_int_eq(at, hw);
	ck_assert_msg(hw >= e->acked, "partition %u: high watermark %lld after the restart, "
		      "but %lld records were acknowledged", p, (long long)hw, (long long)e->acked);
	for (int64_t i = hw; i < e->n; i++)
		free(e->values[i]);
	e->n = e->acked = hw;
	return hw;
}

START_TEST(acked_survives_kill9)
{
	enum { ROUNDS = 5, BATCHES = 24, INFLIGHT = 8 };
	static struct expect ex[NP];
	Brokerd__Response *r;
	int fd[2];

	memset(ex, 0, sizeof(ex));
	tb_start(&b);
	fd[0] = tc_connect(b.port);
	r = tc_create_topic(fd[0], "dur", NP);
	TC_OK(r);
	tc_free(r);
	close(fd[0]);
	for (int round = 0; round < ROUNDS; round++) {
		uint64_t corr = 1;
		uint32_t part[BATCHES];
		int64_t want_base[BATCHES];

		fd[0] = tc_connect(b.port);
		fd[1] = tc_connect(b.port);
		/* BATCHES acks=all produces pipelined over two connections (so
		 * concurrent batches share fdatasyncs; partition p always on
		 * connection p % 2, so its batches keep their order), then
		 * INFLIGHT more sent without waiting, then kill -9 as soon as
		 * the last of the first BATCHES is answered. */
		for (int k = 0; k < BATCHES + INFLIGHT; k++) {
			uint32_t p = (uint32_t)(k * 7 + round) % NP;
			char prefix[64];
			size_t len;
			uint8_t *batch;
			struct expect *e = &ex[p];
			int n = 1 + (k + round) % 5;

			snprintf(prefix, sizeof(prefix), "r%d-b%d-p%u", round, k, p);
			batch = tc_batch(prefix, 0, n, &len);
			ck_assert_int_lt(e->n + n, MAXREC);
			if (k < BATCHES) {
				part[k] = p;
				want_base[k] = e->n;
			}
			for (int i = 0; i < n; i++)
				ck_assert_int_ge(asprintf(&e->values[e->n + i], "%s-%d", prefix, i), 0);
			e->n += n;
			ck_assert_int_eq(tc_send_produce(fd[p % 2], corr++, "dur", p,
							 BROKERD__ACKS__ACKS_ALL, batch, len),
					 0);
			free(batch);
			if (k != BATCHES - 1)
				continue;
			/* The answers of the first BATCHES, in order per connection. */
			for (int c = 0; c < 2; c++) {
				for (int j = 0; j < BATCHES; j++) {
					Brokerd__Response *a;
					if (part[j] % 2 != (uint32_t)c)
						continue;
					a = tc_recv(fd[c]);
					ck_assert_msg(a != NULL, "round %d: no answer to produce %d",
						      round, j);
					ck_assert_uint_eq(a->correlation_id, (uint64_t)j + 1);
					TC_OK(a);
					ck_assert_uint_eq(a->produce->partition, part[j]);
					ck_assert_int_eq(a->produce->base_offset, want_base[j]);
					tc_free(a);
				}
			}
			/* Every record sent so far was acknowledged. */
			for (uint32_t q = 0; q < NP; q++)
				ex[q].acked = ex[q].n;
		}
		tb_kill9(&b);
		close(fd[0]);
		close(fd[1]);

		tb_start(&b);
		fd[0] = tc_connect(b.port);
		for (uint32_t p = 0; p < NP; p++)
			verify_partition(fd[0], "dur", p, &ex[p]);
		close(fd[0]);
	}
	for (uint32_t p = 0; p < NP; p++)
		expect_free(&ex[p]);
}
END_TEST

/* The exact base offsets that acks=all answers give are where the records
 * are after a kill -9, on one connection (answers in offset order). */
START_TEST(acked_offsets_identical_after_kill9)
{
	enum { N = 40 };
	int64_t base[N];
	Brokerd__Response *r;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_create_topic(fd, "exact", 1);
	TC_OK(r);
	tc_free(r);
	for (int k = 0; k < N; k++) {
		char prefix[32];
		size_t len;
		uint8_t *batch;

		snprintf(prefix, sizeof(prefix), "b%d", k);
		batch = tc_batch(prefix, 0, 1 + k % 3, &len);
		ck_assert_int_eq(tc_send_produce(fd, (uint64_t)k + 1, "exact", 0,
						 BROKERD__ACKS__ACKS_ALL, batch, len),
				 0);
		free(batch);
	}
	for (int k = 0; k < N; k++) {
		r = tc_recv(fd);
		ck_assert_ptr_nonnull(r);
		ck_assert_uint_eq(r->correlation_id, (uint64_t)k + 1);
		TC_OK(r);
		base[k] = r->produce->base_offset;
		if (k > 0)
			ck_assert_int_eq(base[k], base[k - 1] + 1 + (k - 1) % 3);
		tc_free(r);
	}
	tb_kill9(&b);
	close(fd);
	tb_start(&b);
	fd = tc_connect(b.port);
	for (int k = 0; k < N; k++) {
		char want[32];
		char **v;
		int64_t last;
		int n;

		r = tc_fetch(fd, "exact", 0, base[k], 1, 0, 0);
		TC_OK(r);
		ck_assert_int_eq(r->fetch->high_watermark, base[N - 1] + 1 + (N - 1) % 3);
		n = tc_values(r->fetch, base[k], &v, &last);
		ck_assert_int_eq(n, 1 + k % 3);
		snprintf(want, sizeof(want), "b%d-0", k);
		ck_assert_str_eq(v[0], want);
		tc_free_values(v, n);
		tc_free(r);
	}
	close(fd);
}
END_TEST

START_TEST(sigterm_answers_in_flight)
{
	enum { NPROD = 30 };
	Brokerd__Response *r;
	int adm, poll_fd, prod;
	int64_t t0, dt;
	int answered = 0, acked = 0, st;
	int64_t acked_records = 0;

	tb_start(&b);
	adm = tc_connect(b.port);
	r = tc_create_topic(adm, "stop", 2);
	TC_OK(r);
	tc_free(r);
	/* A long poll on partition 1 (nothing will be produced there) ... */
	poll_fd = tc_connect(b.port);
	tc_set_timeout(poll_fd, 30000);
	ck_assert_int_eq(tc_send_fetch(poll_fd, 9, "stop", 1, 0, 1 << 20, 25000, 1), 0);
	ck_assert_msg(!tc_readable(poll_fd, 300), "the long poll did not wait");
	/* ... and pipelined produces to partition 0, then SIGTERM at once. */
	prod = tc_connect(b.port);
	tc_set_timeout(prod, 30000);
	for (int k = 0; k < NPROD; k++) {
		size_t len;
		uint8_t *batch = tc_batch("s", k * 3, 3, &len);
		ck_assert_int_eq(tc_send_produce(prod, (uint64_t)k + 1, "stop", 0,
						 BROKERD__ACKS__ACKS_ALL, batch, len),
				 0);
		free(batch);
	}
	t0 = tb_now_ms();
	ck_assert_int_eq(kill(b.pid, SIGTERM), 0);
	/* More produces while it stops (they may fail to send once the
	 * broker has closed the connection). */
	for (int k = NPROD; k < 2 * NPROD; k++) {
		size_t len;
		uint8_t *batch = tc_batch("s", k * 3, 3, &len);
		int rc = tc_send_produce(prod, (uint64_t)k + 1, "stop", 0, BROKERD__ACKS__ACKS_ALL,
					 batch, len);
		free(batch);
		if (rc < 0)
			break;
	}

	/* The long poll is answered early (not after its 25 s), empty. */
	r = tc_recv(poll_fd);
	dt = tb_now_ms() - t0;
	ck_assert_msg(r != NULL, "long poll not answered at shutdown");
	ck_assert_uint_eq(r->correlation_id, 9);
	TC_OK(r);
	ck_assert_msg(dt < 8000, "long poll answered %lld ms after SIGTERM", (long long)dt);
	ck_assert_uint_eq(r->fetch->records.len, 0);
	tc_free(r);
	ck_assert(tc_closed(poll_fd));
	/* Each produce the broker read is answered, in order: OK with its
	 * offset, or BROKER_SHUTTING_DOWN; the rest are never read and the
	 * connection closes. */
	while ((r = tc_recv(prod)) != NULL) {
		answered++;
		ck_assert_uint_eq(r->correlation_id, (uint64_t)answered);
		if (r->error == BROKERD__ERROR_CODE__OK) {
			ck_assert_int_eq(answered, acked + 1); /* no OK after a refusal */
			ck_assert_int_eq(r->produce->base_offset, acked_records);
			acked++;
			acked_records += 3;
		} else {
			TC_ERR(r, BROKERD__ERROR_CODE__BROKER_SHUTTING_DOWN);
		}
		tc_free(r);
	}
	ck_assert_int_le(answered, 2 * NPROD);
	st = tb_wait_exit(&b);
	ck_assert_msg(st == 0, "brokerd exited with status %d after SIGTERM", st);
	ck_assert(tb_log_contains(&b, "clean shutdown"));
	close(poll_fd);
	close(prod);
	close(adm);

	/* Every acknowledged produce is there after the restart. */
	tb_start(&b);
	adm = tc_connect(b.port);
	r = tc_list_offsets(adm, "stop", 0, -1);
	TC_OK(r);
	ck_assert_int_ge(r->list_offsets->offset, acked_records);
	tc_free(r);
	if (acked_records > 0) {
		char **v;
		int64_t last;
		int n;

		r = tc_fetch(adm, "stop", 0, 0, 1 << 20, 0, 0);
		TC_OK(r);
		n = tc_values(r->fetch, 0, &v, &last);
		ck_assert_int_ge(n, 1);
		ck_assert_str_eq(v[0], "s-0");
		tc_free_values(v, n);
		tc_free(r);
	}
	close(adm);
}
END_TEST

/* A broker stopped with nothing in flight: also exit 0, clean shutdown,
 * and the restart needs no recovery of what was written. */
START_TEST(sigterm_idle)
{
	Brokerd__Response *r;
	size_t len;
	uint8_t *batch;
	int fd;

	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_create_topic(fd, "idle", 1);
	TC_OK(r);
	tc_free(r);
	batch = tc_batch("i", 0, 5, &len);
	r = tc_produce(fd, "idle", 0, BROKERD__ACKS__ACKS_LEADER, batch, len);
	free(batch);
	TC_OK(r);
	tc_free(r);
	/* An idle client connection does not hold the shutdown up. */
	ck_assert_int_eq(tb_stop(&b), 0);
	ck_assert(tb_log_contains(&b, "clean shutdown"));
	ck_assert(tc_closed(fd));
	close(fd);
	tb_start(&b);
	fd = tc_connect(b.port);
	r = tc_list_offsets(fd, "idle", 0, -1);
	TC_OK(r);
	ck_assert_int_eq(r->list_offsets->offset, 5);
	tc_free(r);
	close(fd);
}
END_TEST

Suite *durability_suite(void);
Suite *durability_suite(void)
{
	Suite *s = suite_create("durability");
	TCase *tc = tcase_create("crash");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, acked_survives_kill9);
	tcase_add_test(tc, acked_offsets_identical_after_kill9);
	tcase_add_test(tc, sigterm_answers_in_flight);
	tcase_add_test(tc, sigterm_idle);
	suite_add_tcase(s, tc);
	return s;
}
